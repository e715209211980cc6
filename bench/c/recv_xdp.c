/* SPDX-License-Identifier: MIT */
/*
 * Receive-timestamp recorder for bench/precision.ts that stamps at the
 * receiving device with XDP, run in the receiving namespace:
 *   recv_xdp --ifname IF --obj FILE --port P --out FILE --count N --timeout-ms T
 *            [--idle-ms I] [--peek OFF]
 * Loads FILE (bench/c/recv_xdp.bpf.c, compiled with clang -target bpf) and
 * attaches it to IF in native mode. The program stamps each IPv4 UDP
 * datagram to port P with bpf_ktime_get_ns() when the device's receive poll
 * runs (for a veth, right after the sender's transmit), writes a record into
 * a BPF ring buffer and drops the frame: no skb for the stack, no tap copy,
 * no socket queue. That is the point: on a 2-vCPU machine a veth runs the
 * receiver's stack on the sender's CPU, and at 190 kpps the stack and an
 * AF_PACKET tap (recv_ts --ring) cost that CPU about as much as the sender.
 * Records are those of recv_ts.c, 32 bytes each:
 *   int64 rx_mono_ns   XDP receive time, CLOCK_MONOTONIC (no conversion)
 *   uint16 src_port    the sender's UDP port (identifies a session)
 *   uint16 len         payload bytes
 *   uint32 _pad
 *   uint8 peek[16]     payload bytes OFF..OFF+16 (the schedule or a tag)
 * Prints {"ready":true} once attached, then one JSON line:
 *   {"received":N,"timedOut":bool,"offsetErrNs":0,"ringDrops":D}
 * where D counts records the BPF ring buffer had no room for.
 * Needs libbpf (Debian: libbpf-dev) and root.
 */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "recv_common.h"

struct sink {
	FILE *f;
	long long got, count;
};

static int on_rec(void *ctx, void *data, size_t size)
{
	struct sink *s = ctx;

	if (size < sizeof(struct recv_rec) || s->got >= s->count)
		return 0;
	fwrite(data, sizeof(struct recv_rec), 1, s->f);
	s->got++;
	return 0;
}

int main(int argc, char **argv)
{
	const char *ifname = NULL, *obj_path = NULL;
	struct recv_opts o = RECV_OPTS_INIT;

	for (int i = 1; i + 1 < argc; i += 2) {
		const char *a = argv[i], *v = argv[i + 1];

		if (!strcmp(a, "--ifname"))
			ifname = v;
		else if (!strcmp(a, "--obj"))
			obj_path = v;
		else if (!recv_opt(&o, a, v)) {
			fprintf(stderr, "recv_xdp: unknown option %s\n", a);
			return 2;
		}
	}
	/* the BPF program reads the peek offset masked to 11 bits */
	if (!ifname || !obj_path || !recv_opts_ok(&o, 2000)) {
		fprintf(stderr, "usage: recv_xdp --ifname IF --obj FILE " RECV_OPTS_USAGE "\n");
		return 2;
	}
	int ifindex = (int)if_nametoindex(ifname);

	if (!ifindex) {
		fprintf(stderr, "recv_xdp: no interface %s\n", ifname);
		return 1;
	}
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	struct bpf_object *obj = bpf_object__open_file(obj_path, NULL);

	if (!obj || libbpf_get_error(obj)) {
		fprintf(stderr, "recv_xdp: cannot open %s\n", obj_path);
		return 1;
	}
	if (bpf_object__load(obj)) {
		fprintf(stderr, "recv_xdp: cannot load %s: %s\n", obj_path, strerror(errno));
		return 1;
	}
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, "recv_xdp");
	int cfg = bpf_object__find_map_fd_by_name(obj, "cfg");
	int recs = bpf_object__find_map_fd_by_name(obj, "recs");
	int lost = bpf_object__find_map_fd_by_name(obj, "lost");
	uint32_t k0 = 0, k1 = 1, vport = o.port, vpeek = o.peek;

	if (!prog || cfg < 0 || recs < 0 || lost < 0 ||
	    bpf_map_update_elem(cfg, &k0, &vport, BPF_ANY) || bpf_map_update_elem(cfg, &k1, &vpeek, BPF_ANY)) {
		fprintf(stderr, "recv_xdp: %s lacks the program or its maps\n", obj_path);
		return 1;
	}
	struct sink s = { .f = fopen(o.out, "wb"), .count = o.count };

	if (!s.f) {
		perror("recv_xdp: out");
		return 1;
	}
	struct ring_buffer *rb = ring_buffer__new(recs, on_rec, &s, NULL);
	/* a link detaches the program when this process exits, however it exits */
	struct bpf_link *link = bpf_program__attach_xdp(prog, ifindex);

	if (!rb || !link) {
		fprintf(stderr, "recv_xdp: cannot attach to %s: %s\n", ifname, strerror(errno));
		return 1;
	}
	printf("{\"ready\":true}\n");
	fflush(stdout);

	int timed_out = 0;
	int64_t deadline = recv_now_ns(CLOCK_MONOTONIC) + o.timeout_ms * 1000000ll, last_rx = 0;
	/* the program submits without a wake-up (one per record would cost the
	 * receiving CPU an irq_work each): poll the ring every millisecond */
	const struct timespec tick = { 0, 1000000 };

	while (s.got < o.count) {
		long long before = s.got;

		if (recv_wait_ns(&o, deadline, last_rx, s.got, recv_now_ns(CLOCK_MONOTONIC)) <= 0) {
			timed_out = 1;
			break;
		}
		if (ring_buffer__consume(rb) < 0)
			break;
		if (s.got > before)
			last_rx = recv_now_ns(CLOCK_MONOTONIC);
		else
			nanosleep(&tick, NULL);
	}
	uint64_t drops = 0;

	bpf_map_lookup_elem(lost, &k0, &drops);
	bpf_link__destroy(link);
	ring_buffer__free(rb);
	bpf_object__close(obj);
	fclose(s.f);
	printf("{\"received\":%lld,\"timedOut\":%s,\"offsetErrNs\":0,\"ringDrops\":%llu}\n", s.got,
	       timed_out ? "true" : "false", (unsigned long long)drops);
	return 0;
}
