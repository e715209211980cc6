/* SPDX-License-Identifier: MIT */
/*
 * Baseline sender for the TX benchmark (bench/tx.ts, issue #2): a UDP socket
 * and a sendmmsg() loop, `--batch` datagrams per call (the best the kernel
 * stack does without a packet ring).
 *
 *   sendmmsg_bench --dst IPV4 [--port 9] [--size 64] [--batch 64]
 *                  [--count N] [--warmup-ms 200] [--duration-ms 1000]
 *
 * Sends for warmup-ms, then measures for duration-ms (or `count` packets),
 * and prints one JSON line: packets, seconds, totalPackets (warmup included),
 * cpuUser/cpuSys/ctx* (getrusage over the window), syscalls (sendmmsg calls
 * in the window), and pps, cpu_s_per_mpkt, syscalls_per_pkt, ctxsw_per_pkt.
 * Run it inside the sender's namespace (ip netns exec). Exit 2 on bad usage,
 * 1 on a system error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"

#define USAGE "--dst IPV4 [--port 9] [--size 64] [--batch 64] [--count N] [--warmup-ms 200] [--duration-ms 1000]"
#define MAXB 1024

int main(int argc, char **argv)
{
	static struct mmsghdr msgs[MAXB];
	static struct iovec iov[MAXB];
	static uint8_t payload[1500];
	struct bench_opts o;
	struct sockaddr_in to = { .sin_family = AF_INET };
	struct bench_window w;
	uint64_t sent = 0, calls = 0;
	int fd, sndbuf = 4 << 20;
	unsigned i;

	bench_parse(argc, argv, &o, USAGE);
	if (inet_pton(AF_INET, o.dst, &to.sin_addr) != 1)
		bench_usage(argv[0], USAGE);
	to.sin_port = htons((uint16_t)o.port);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof(to))) {
		perror("sendmmsg_bench: socket/connect");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	memset(payload, 0x5a, sizeof(payload));
	for (i = 0; i < o.batch; i++) {
		iov[i].iov_base = payload;
		iov[i].iov_len = o.size;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	bench_window_arm(&w, &o);
	for (;;) {
		int n = sendmmsg(fd, msgs, o.batch, 0);

		calls++;
		if (n < 0) {
			if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR ||
			    errno == ECONNREFUSED)
				continue;
			perror("sendmmsg_bench: sendmmsg");
			return 1;
		}
		sent += (uint64_t)n;
		if (bench_window_tick(&w, &o, sent, calls))
			break;
	}
	bench_window_end(&w, "sendmmsg", &o, sent, calls, sent);
	close(fd);
	return 0;
}
