/* SPDX-License-Identifier: MIT */
/*
 * Paced origin for the relay benchmark (bench/relay.ts): sendmmsg() batches
 * of datagrams to one destination at a given rate (0 = as fast as possible)
 * for a given time, then prints {"sent":N,"seconds":S}.
 *
 *   relay_origin --dst IPV4:PORT --size BYTES --pps RATE --ms DURATION
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	static uint8_t payload[1500];
	static struct mmsghdr msgs[BATCH];
	static struct iovec iov[BATCH];
	struct sockaddr_in to = { .sin_family = AF_INET };
	const char *dst = NULL;
	unsigned size = 64, ms = 1000, i;
	double pps = 0;
	uint64_t t0, end, sent = 0;
	int fd, sndbuf = 4 << 20;

	for (i = 1; i + 1 < (unsigned)argc; i += 2) {
		if (!strcmp(argv[i], "--dst"))
			dst = argv[i + 1];
		else if (!strcmp(argv[i], "--size"))
			size = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--pps"))
			pps = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--ms"))
			ms = (unsigned)atoi(argv[i + 1]);
	}
	if (!dst || size < 8 || size > sizeof(payload) || !strchr(dst, ':')) {
		fprintf(stderr, "usage: %s --dst IPV4:PORT --size BYTES --pps RATE --ms DURATION\n", argv[0]);
		return 2;
	}
	{
		char host[64];
		size_t hl = (size_t)(strrchr(dst, ':') - dst);

		memcpy(host, dst, hl < 63 ? hl : 63);
		host[hl < 63 ? hl : 63] = 0;
		to.sin_port = htons((uint16_t)atoi(strrchr(dst, ':') + 1));
		if (inet_pton(AF_INET, host, &to.sin_addr) != 1)
			return 2;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
	if (connect(fd, (struct sockaddr *)&to, sizeof(to))) {
		perror("relay_origin: connect");
		return 1;
	}
	for (i = 0; i < BATCH; i++) {
		iov[i].iov_base = payload;
		iov[i].iov_len = size;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	t0 = now_ns();
	end = t0 + (uint64_t)ms * 1000000ull;
	for (;;) {
		uint64_t t = now_ns();
		int n;

		if (t >= end)
			break;
		if (pps > 0) {
			/* on schedule: sent so far vs. what the rate allows by now */
			uint64_t due = (uint64_t)((double)(t - t0) * pps / 1e9);

			if (sent >= due) {
				struct timespec d = { 0, 50000 };

				nanosleep(&d, NULL);
				continue;
			}
		}
		n = sendmmsg(fd, msgs, BATCH, 0);
		if (n > 0)
			sent += (uint64_t)n;
	}
	printf("{\"sent\":%llu,\"seconds\":%.6f}\n", (unsigned long long)sent, (double)(now_ns() - t0) / 1e9);
	return 0;
}
