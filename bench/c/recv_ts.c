/* SPDX-License-Identifier: MIT */
/*
 * Receive-timestamp recorder for bench/precision.ts, run in the receiving
 * namespace:
 *   recv_ts --bind ADDR --port P --out FILE --count N --timeout-ms T [--idle-ms I] [--peek OFF]
 * Binds a UDP socket with SO_TIMESTAMPNS, reads with recvmmsg (64 at a time)
 * and writes one 32-byte record per datagram to FILE:
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
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define BUFSZ 2048

struct rec {
	int64_t rx_ns;
	uint16_t src_port;
	uint16_t len;
	uint32_t pad;
	uint8_t peek[16];
};

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000ll + t->tv_nsec;
}

static int64_t now_ns(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return ts_ns(&t);
}

/* realtime - monotonic, from the reading bracketed most tightly */
static int64_t clock_offset(int64_t *err)
{
	int64_t best = 0, best_w = INT64_MAX;

	for (int i = 0; i < 100; i++) {
		int64_t a = now_ns(CLOCK_MONOTONIC);
		int64_t r = now_ns(CLOCK_REALTIME);
		int64_t b = now_ns(CLOCK_MONOTONIC);

		if (b - a < best_w) {
			best_w = b - a;
			best = r - (a + (b - a) / 2);
		}
	}
	*err = best_w / 2;
	return best;
}

int main(int argc, char **argv)
{
	const char *bind_addr = "0.0.0.0", *out = NULL;
	unsigned port = 0, peek = 0;
	long long count = 0, timeout_ms = 10000, idle_ms = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		const char *a = argv[i], *v = argv[i + 1];

		if (!strcmp(a, "--bind"))
			bind_addr = v;
		else if (!strcmp(a, "--port"))
			port = (unsigned)atoi(v);
		else if (!strcmp(a, "--out"))
			out = v;
		else if (!strcmp(a, "--count"))
			count = atoll(v);
		else if (!strcmp(a, "--timeout-ms"))
			timeout_ms = atoll(v);
		else if (!strcmp(a, "--idle-ms"))
			idle_ms = atoll(v);
		else if (!strcmp(a, "--peek"))
			peek = (unsigned)atoi(v);
		else {
			fprintf(stderr, "recv_ts: unknown option %s\n", a);
			return 2;
		}
	}
	if (!out || !port || count <= 0 || peek > BUFSZ - 16) {
		fprintf(stderr, "usage: recv_ts --bind ADDR --port P --out FILE --count N --timeout-ms T [--idle-ms I] [--peek OFF]\n");
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int one = 1, rcvbuf = 32 << 20;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

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
	FILE *f = fopen(out, "wb");

	if (!f) {
		perror("recv_ts: out");
		return 1;
	}
	int64_t off_err;
	int64_t off = clock_offset(&off_err);

	printf("{\"ready\":true}\n");
	fflush(stdout);

	static uint8_t bufs[BATCH][BUFSZ];
	static char ctrl[BATCH][256];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_in from[BATCH];
	long long got = 0;
	int timed_out = 0;
	int64_t deadline = now_ns(CLOCK_MONOTONIC) + timeout_ms * 1000000ll;
	int64_t last_rx = 0;

	while (got < count) {
		int64_t now = now_ns(CLOCK_MONOTONIC);
		int64_t wait = deadline - now;

		if (idle_ms > 0 && got > 0 && last_rx + idle_ms * 1000000ll - now < wait)
			wait = last_rx + idle_ms * 1000000ll - now;
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
		last_rx = now_ns(CLOCK_MONOTONIC);
		for (int i = 0; i < n && got < count; i++) {
			struct rec r = { 0 };
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
			if (msgs[i].msg_len >= peek + 16)
				memcpy(r.peek, bufs[i] + peek, 16);
			fwrite(&r, sizeof(r), 1, f);
			got++;
		}
	}
	fclose(f);
	printf("{\"received\":%lld,\"timedOut\":%s,\"offsetErrNs\":%lld}\n", got, timed_out ? "true" : "false",
	       (long long)off_err);
	return 0;
}
