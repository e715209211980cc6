/* SPDX-License-Identifier: MIT */
/*
 * Receive-timestamp recorder for bench/precision.ts, run in the receiving
 * namespace:
 *   recv_ts --bind ADDR --port P --out FILE --count N --timeout-ms T [--idle-ms I] [--peek OFF]
 *           [--ring IFNAME]
 * Binds a UDP socket with SO_TIMESTAMPNS, reads with recvmmsg (64 at a time)
 * and writes one 32-byte record per datagram to FILE.
 *
 * --ring IFNAME reads the datagrams from the device instead: an AF_PACKET
 * TPACKET_V3 ring on IFNAME whose socket filter keeps IPv4 UDP to port P and
 * copies only the first 320 bytes of each frame. The socket sets
 * SO_TIMESTAMPNS, which makes the kernel stamp every received frame in
 * netif_rx (skb->tstamp), the same stamp a UDP socket's SO_TIMESTAMPNS
 * reports, and the ring hands that stamp over. The UDP stack and a
 * socket queue are skipped: at 190 kpps they took a whole CPU of this
 * 2-vCPU machine. The caller drops the frames after the tap (nftables netdev
 * ingress), so they go no further. Records are the same:
 *   int64 rx_mono_ns   kernel receive time, converted to CLOCK_MONOTONIC
 *   uint16 src_port    the sender's UDP port (identifies a session)
 *   uint16 len         payload bytes
 *   uint32 _pad
 *   uint8 peek[16]     payload bytes OFF..OFF+16 (the schedule or a tag)
 * The kernel stamps with CLOCK_REALTIME; the offset to CLOCK_MONOTONIC is
 * taken at start as the tightest of 100 bracketed readings (NTP slew over a
 * few seconds is far below the microseconds measured here).
 * Prints {"ready":true} once bound, then one JSON line:
 *   {"received":N,"timedOut":bool,"offsetErrNs":E}
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "recv_common.h"

#define BATCH 64
#define BUFSZ 2048

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000ll + t->tv_nsec;
}

/* realtime - monotonic, from the reading bracketed most tightly */
static int64_t clock_offset(int64_t *err)
{
	int64_t best = 0, best_w = INT64_MAX;

	for (int i = 0; i < 100; i++) {
		int64_t a = recv_now_ns(CLOCK_MONOTONIC);
		int64_t r = recv_now_ns(CLOCK_REALTIME);
		int64_t b = recv_now_ns(CLOCK_MONOTONIC);

		if (b - a < best_w) {
			best_w = b - a;
			best = r - (a + (b - a) / 2);
		}
	}
	*err = best_w / 2;
	return best;
}

/* The records file, the clock offset, then {"ready":true}: the caller may
 * start sending. NULL (after a message) when the file cannot be opened. */
static FILE *open_out(const char *out, int64_t *off, int64_t *off_err)
{
	FILE *f = fopen(out, "wb");

	if (!f) {
		perror("recv_ts: out");
		return NULL;
	}
	*off = clock_offset(off_err);
	printf("{\"ready\":true}\n");
	fflush(stdout);
	return f;
}

/* --ring: the AF_PACKET ring and its socket filter */
#define RING_BLOCK   (1u << 20)
#define RING_BLOCKS  64u
#define RING_SNAP    320u

static int open_ring(const char *ifname, unsigned port, uint8_t **ring)
{
	/* IPv4, not a fragment, UDP, destination port `port`: keep RING_SNAP bytes */
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 8),
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 0, 6),
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 20),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 4, 0),
		BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),
		BPF_STMT(BPF_LD | BPF_H | BPF_IND, 16),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, RING_SNAP),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };
	struct tpacket_req3 req = { .tp_block_size = RING_BLOCK, .tp_block_nr = RING_BLOCKS,
				    .tp_frame_size = RING_BLOCK / 64, .tp_frame_nr = RING_BLOCKS * 64,
				    .tp_retire_blk_tov = 10 };
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	int v3 = TPACKET_V3, one = 1;
	int fd = socket(AF_PACKET, SOCK_RAW, 0);

	if (fd < 0) {
		perror("recv_ts: AF_PACKET socket");
		return -1;
	}
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	if (!sll.sll_ifindex) {
		fprintf(stderr, "recv_ts: no interface %s\n", ifname);
		return -1;
	}
	/* filter before bind so nothing unfiltered is queued; the stamp option
	 * turns on netif_rx's software stamping for every frame */
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v3, sizeof(v3)) < 0 ||
	    setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0) {
		perror("recv_ts: ring setup");
		return -1;
	}
	*ring = mmap(NULL, (size_t)RING_BLOCK * RING_BLOCKS, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*ring == MAP_FAILED) {
		perror("recv_ts: mmap");
		return -1;
	}
	sll.sll_protocol = htons(ETH_P_ALL);
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		perror("recv_ts: bind ring");
		return -1;
	}
	return fd;
}

/* One retired block: a record per frame. Returns frames taken. */
static long long ring_block(const struct tpacket_block_desc *bd, int64_t off, unsigned peek,
			    FILE *f, long long room)
{
	const struct tpacket3_hdr *h =
		(const void *)((const uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt);
	long long n = 0;

	for (uint32_t i = 0; i < bd->hdr.bh1.num_pkts && n < room; i++) {
		const uint8_t *eth = (const uint8_t *)h + h->tp_mac;
		const uint8_t *ip = eth + 14;
		unsigned ihl = (ip[0] & 0xf) * 4u;
		const uint8_t *udp = ip + ihl;
		struct recv_rec r = { 0 };

		r.rx_ns = (int64_t)h->tp_sec * 1000000000ll + h->tp_nsec - off;
		r.src_port = (uint16_t)(udp[0] << 8 | udp[1]);
		r.len = (uint16_t)((udp[4] << 8 | udp[5]) - 8);
		if (14 + ihl + 8 + peek + 16 <= h->tp_snaplen)
			memcpy(r.peek, udp + 8 + peek, 16);
		fwrite(&r, sizeof(r), 1, f);
		n++;
		h = (const void *)((const uint8_t *)h + h->tp_next_offset);
	}
	return n;
}

static int ring_main(const char *ifname, const struct recv_opts *o)
{
	uint8_t *ring;
	int fd = open_ring(ifname, o->port, &ring);

	if (fd < 0)
		return 1;
	int64_t off_err, off;
	FILE *f = open_out(o->out, &off, &off_err);

	if (!f)
		return 1;

	long long got = 0;
	int timed_out = 0;
	uint32_t b = 0;
	int64_t deadline = recv_now_ns(CLOCK_MONOTONIC) + o->timeout_ms * 1000000ll, last_rx = 0;

	while (got < o->count) {
		struct tpacket_block_desc *bd = (void *)(ring + (size_t)b * RING_BLOCK);
		int64_t wait = recv_wait_ns(o, deadline, last_rx, got, recv_now_ns(CLOCK_MONOTONIC));

		if (wait <= 0) {
			timed_out = 1;
			break;
		}
		/* acquire: the block's frames are visible once its status says
		 * user; pairs with the kernel's release when it retires it */
		if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) {
			struct pollfd p = { .fd = fd, .events = POLLIN | POLLERR };

			poll(&p, 1, (int)(wait / 1000000 + 1));
			continue;
		}
		got += ring_block(bd, off, o->peek, f, o->count - got);
		last_rx = recv_now_ns(CLOCK_MONOTONIC);
		/* release: we are done reading before the kernel reuses it */
		__atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
		b = (b + 1) % RING_BLOCKS;
	}
	struct tpacket_stats_v3 st;
	socklen_t sl = sizeof(st);

	if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) < 0)
		memset(&st, 0, sizeof(st));
	fclose(f);
	printf("{\"received\":%lld,\"timedOut\":%s,\"offsetErrNs\":%lld,\"ringDrops\":%u}\n", got,
	       timed_out ? "true" : "false", (long long)off_err, st.tp_drops);
	return 0;
}

int main(int argc, char **argv)
{
	const char *bind_addr = "0.0.0.0", *ring_if = NULL;
	struct recv_opts o = RECV_OPTS_INIT;

	for (int i = 1; i + 1 < argc; i += 2) {
		const char *a = argv[i], *v = argv[i + 1];

		if (!strcmp(a, "--bind"))
			bind_addr = v;
		else if (!strcmp(a, "--ring"))
			ring_if = v;
		else if (!recv_opt(&o, a, v)) {
			fprintf(stderr, "recv_ts: unknown option %s\n", a);
			return 2;
		}
	}
	if (!recv_opts_ok(&o, ring_if ? RING_SNAP - (14 + 60 + 8 + 16) : BUFSZ - 16)) {
		fprintf(stderr, "usage: recv_ts --bind ADDR " RECV_OPTS_USAGE " [--ring IFNAME]\n");
		return 2;
	}
	if (ring_if)
		return ring_main(ring_if, &o);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int one = 1, rcvbuf = 32 << 20;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o.port) };

	if (fd < 0 || inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1) {
		perror("recv_ts: socket/address");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	/* deep queue: bursts arrive faster than one wake-up per packet; RCVBUFFORCE needs root, else capped */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("recv_ts: bind");
		return 1;
	}
	int64_t off_err, off;
	FILE *f = open_out(o.out, &off, &off_err);

	if (!f)
		return 1;

	static uint8_t bufs[BATCH][BUFSZ];
	static char ctrl[BATCH][256];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_in from[BATCH];
	long long got = 0;
	int timed_out = 0;
	int64_t deadline = recv_now_ns(CLOCK_MONOTONIC) + o.timeout_ms * 1000000ll;
	int64_t last_rx = 0;

	while (got < o.count) {
		int64_t wait = recv_wait_ns(&o, deadline, last_rx, got, recv_now_ns(CLOCK_MONOTONIC));

		if (wait <= 0) {
			timed_out = 1;
			break;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int pr = poll(&p, 1, (int)(wait / 1000000 + 1));

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){ bufs[i], BUFSZ };
			msgs[i].msg_hdr = (struct msghdr){ .msg_name = &from[i], .msg_namelen = sizeof(from[i]),
							   .msg_iov = &iov[i], .msg_iovlen = 1,
							   .msg_control = ctrl[i], .msg_controllen = sizeof(ctrl[i]) };
		}
		int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);

		if (n <= 0)
			continue;
		last_rx = recv_now_ns(CLOCK_MONOTONIC);
		for (int i = 0; i < n && got < o.count; i++) {
			struct recv_rec r = { 0 };
			struct cmsghdr *c;

			r.rx_ns = last_rx; /* fallback when no stamp came */
			for (c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
				if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
					struct timespec t;

					memcpy(&t, CMSG_DATA(c), sizeof(t));
					r.rx_ns = ts_ns(&t) - off;
				}
			}
			r.src_port = ntohs(from[i].sin_port);
			r.len = (uint16_t)msgs[i].msg_len;
			if (msgs[i].msg_len >= o.peek + 16)
				memcpy(r.peek, bufs[i] + o.peek, 16);
			fwrite(&r, sizeof(r), 1, f);
			got++;
		}
	}
	fclose(f);
	printf("{\"received\":%lld,\"timedOut\":%s,\"offsetErrNs\":%lld}\n", got, timed_out ? "true" : "false",
	       (long long)off_err);
	return 0;
}
