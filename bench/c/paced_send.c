/* SPDX-License-Identifier: MIT */
/*
 * The bare C sleep-then-spin sender of bench/precision.ts: the baseline the
 * engine is compared with on the same schedule, in the same run.
 *   paced_send --schedule FILE [--base NS] --dst ADDR --port P --sport0 S [--spin-us 50]
 * FILE holds 32-byte records in time order:
 *   int64  t_ns    when to send, CLOCK_MONOTONIC ns after NS (default 0)
 *   uint16 sock    which socket: it is bound to source port S + sock
 *   uint16 len     payload bytes (<= 1472)
 *   uint32 off     where in the payload the tag goes (off + 16 <= len)
 *   uint8  tag[16] what the receiver reads to find the packet's schedule
 * Each packet: clock_nanosleep (absolute) until spin-us before its time,
 * then spin on the clock to the time, then one sendto() on a UDP socket.
 * Packets already due go at once, back to back. Prints one JSON line:
 *   {"sent":N,"sleeps":S,"lateMaxNs":L}
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

struct sched {
	int64_t t_ns;
	uint16_t sock;
	uint16_t len;
	uint32_t off;
	uint8_t tag[16];
};

int main(int argc, char **argv)
{
	const char *file = NULL, *dst = NULL;
	unsigned port = 0, sport0 = 0;
	long long spin_us = 50, base = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		const char *a = argv[i], *v = argv[i + 1];

		if (!strcmp(a, "--schedule"))
			file = v;
		else if (!strcmp(a, "--dst"))
			dst = v;
		else if (!strcmp(a, "--port"))
			port = (unsigned)atoi(v);
		else if (!strcmp(a, "--sport0"))
			sport0 = (unsigned)atoi(v);
		else if (!strcmp(a, "--base"))
			base = atoll(v);
		else if (!strcmp(a, "--spin-us"))
			spin_us = atoll(v);
		else {
			fprintf(stderr, "paced_send: unknown option %s\n", a);
			return 2;
		}
	}
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	if (!file || !dst || !port || port > 65535 || !sport0 || inet_pton(AF_INET, dst, &to.sin_addr) != 1 ||
	    spin_us < 0) {
		fprintf(stderr, "usage: paced_send --schedule FILE [--base NS] --dst ADDR --port P --sport0 S [--spin-us 50]\n");
		return 2;
	}
	FILE *f = fopen(file, "rb");
	struct stat st;

	if (!f || fstat(fileno(f), &st) < 0) {
		perror("paced_send: schedule");
		return 1;
	}
	size_t n = (size_t)st.st_size / sizeof(struct sched);
	struct sched *s = malloc(n * sizeof(*s) + 1);
	unsigned socks = 0;

	if (!s || fread(s, sizeof(*s), n, f) != n) {
		perror("paced_send: read");
		return 1;
	}
	fclose(f);
	for (size_t i = 0; i < n; i++) {
		if (s[i].len > 1472 || s[i].off + 16u > s[i].len || (i && s[i].t_ns < s[i - 1].t_ns)) {
			fprintf(stderr, "paced_send: record %zu: bad length, tag offset or order\n", i);
			return 1;
		}
		if (s[i].sock + 1u > socks)
			socks = s[i].sock + 1u;
	}
	if (sport0 + socks > 65536) {
		fprintf(stderr, "paced_send: %u sockets from port %u do not fit\n", socks, sport0);
		return 1;
	}
	int *fd = calloc(socks + 1, sizeof(*fd));

	for (unsigned k = 0; k < socks; k++) {
		struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons((uint16_t)(sport0 + k)) };
		int sndbuf = 4 << 20;

		fd[k] = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd[k] < 0 || bind(fd[k], (struct sockaddr *)&me, sizeof(me)) < 0 ||
		    connect(fd[k], (struct sockaddr *)&to, sizeof(to)) < 0) {
			perror("paced_send: socket");
			return 1;
		}
		setsockopt(fd[k], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	}
	/* the engine's TX thread sleeps with a 1 us timer slack too (50 us is the default) */
	(void)prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	static uint8_t buf[1472];
	long long sent = 0, sleeps = 0;
	int64_t late_max = 0;

	for (size_t i = 0; i < n; i++) {
		int64_t t = base + s[i].t_ns, now = (int64_t)bench_now_ns();

		if (t - now > spin_us * 1000) {
			int64_t wake = t - spin_us * 1000;
			struct timespec ts = { (time_t)(wake / 1000000000ll), (long)(wake % 1000000000ll) };

			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
			sleeps++;
		}
		while ((now = (int64_t)bench_now_ns()) < t)
			;
		if (now - t > late_max)
			late_max = now - t;
		memcpy(buf + s[i].off, s[i].tag, sizeof(s[i].tag));
		if (send(fd[s[i].sock], buf, s[i].len, 0) == (ssize_t)s[i].len)
			sent++;
	}
	printf("{\"sent\":%lld,\"sleeps\":%lld,\"lateMaxNs\":%lld}\n", sent, sleeps, (long long)late_max);
	return 0;
}
