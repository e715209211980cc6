/* SPDX-License-Identifier: MIT */
/* Shared by the C baseline senders: argument parsing, the measured window,
 * the JSON result line. Header-only so each bench is one compiler call. */
#ifndef REFLECTOR_BENCH_COMMON_H
#define REFLECTOR_BENCH_COMMON_H

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct bench_opts {
	const char *ifname, *src, *dst, *src_mac, *dst_mac;
	unsigned port, size, batch;
	unsigned long long count;  /* packets in the measured window, 0 = until duration */
	unsigned warmup_ms, duration_ms;
	unsigned interval_us;       /* engine_tx_bench: pace packets this far apart, 0 = as fast as possible */
	unsigned vnet;              /* txring_bench: 1 = frames behind a virtio_net_hdr (the engine's kernel path) */
};

/* Internet checksum (RFC 1071) over p[0..len), starting from the partial sum s. */
static inline uint16_t bench_csum(const uint8_t *p, size_t len, uint32_t s)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static inline int bench_parse_mac(const char *s, uint8_t m[6])
{
	return s && sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4],
			   &m[5]) == 6;
}

/*
 * The frame the raw senders copy into each ring or UMEM frame: Ethernet
 * (o->dst_mac, o->src_mac or zeros), IPv4 (DF, TTL 64) from o->src to o->dst,
 * UDP from port 40000 to o->port with its checksum, o->size bytes of 0x5a.
 * frame must hold 1600 bytes. Returns the frame's length, 0 on a bad MAC or
 * address.
 */
static inline uint32_t bench_udp_frame(uint8_t *frame, const struct bench_opts *o)
{
	uint8_t *ip = frame + 14, *udp = ip + 20, ph[12];
	uint32_t s = 0;
	uint16_t c;
	size_t i;

	memset(frame, 0, 1600);
	if (o->size > 1600 - 42 || !bench_parse_mac(o->dst_mac, frame) ||
	    (o->src_mac && !bench_parse_mac(o->src_mac, frame + 6)))
		return 0;
	frame[12] = 0x08;
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + 8 + o->size) >> 8);
	ip[3] = (uint8_t)(20 + 8 + o->size);
	ip[6] = 0x40;
	ip[8] = 64;
	ip[9] = 17;
	if (inet_pton(AF_INET, o->src, ip + 12) != 1 || inet_pton(AF_INET, o->dst, ip + 16) != 1)
		return 0;
	c = bench_csum(ip, 20, 0);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	udp[0] = 0x9c; /* source port 40000 */
	udp[1] = 0x40;
	udp[2] = (uint8_t)(o->port >> 8);
	udp[3] = (uint8_t)o->port;
	udp[4] = (uint8_t)((8 + o->size) >> 8);
	udp[5] = (uint8_t)(8 + o->size);
	memset(udp + 8, 0x5a, o->size);
	/* the pseudo-header: addresses, protocol, UDP length */
	memcpy(ph, ip + 12, 8);
	ph[8] = 0;
	ph[9] = 17;
	ph[10] = udp[4];
	ph[11] = udp[5];
	for (i = 0; i < 12; i += 2)
		s += (uint32_t)ph[i] << 8 | ph[i + 1];
	c = bench_csum(udp, 8 + o->size, s);
	if (!c)
		c = 0xffff;
	udp[6] = (uint8_t)(c >> 8);
	udp[7] = (uint8_t)c;
	return 14 + 20 + 8 + o->size;
}

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void bench_usage(const char *prog, const char *usage)
{
	fprintf(stderr, "usage: %s %s\n", prog, usage);
	exit(2);
}

static inline void bench_parse(int argc, char **argv, struct bench_opts *o, const char *usage)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->port = 9;
	o->size = 64;
	o->batch = 32;
	o->warmup_ms = 200;
	o->duration_ms = 1000;
	o->src = "0.0.0.0";
	/* --name value pairs */
	for (i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			bench_usage(argv[0], usage);
		if (!strcmp(a, "--ifname"))
			o->ifname = v;
		else if (!strcmp(a, "--src"))
			o->src = v;
		else if (!strcmp(a, "--dst"))
			o->dst = v;
		else if (!strcmp(a, "--src-mac"))
			o->src_mac = v;
		else if (!strcmp(a, "--dst-mac"))
			o->dst_mac = v;
		else if (!strcmp(a, "--port"))
			o->port = (unsigned)atoi(v);
		else if (!strcmp(a, "--size"))
			o->size = (unsigned)atoi(v);
		else if (!strcmp(a, "--batch"))
			o->batch = (unsigned)atoi(v);
		else if (!strcmp(a, "--count"))
			o->count = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--warmup-ms"))
			o->warmup_ms = (unsigned)atoi(v);
		else if (!strcmp(a, "--duration-ms"))
			o->duration_ms = (unsigned)atoi(v);
		else if (!strcmp(a, "--interval-us"))
			o->interval_us = (unsigned)atoi(v);
		else if (!strcmp(a, "--vnet"))
			o->vnet = (unsigned)atoi(v);
		else
			bench_usage(argv[0], usage);
	}
	if (!o->dst || o->size < 1 || o->size > 1472 || o->batch < 1 || o->batch > 1024 ||
	    o->port < 1 || o->port > 65535)
		bench_usage(argv[0], usage);
}

/* The measured window: resource usage and counts between start and end. */
struct bench_window {
	struct rusage r0;
	uint64_t t0, packets0, syscalls0;
	/* bench_window_tick(): the window opens at t_warm and closes at t_end
	 * (or after o->count packets) */
	uint64_t t_warm, t_end;
	int measuring;
};

static inline void bench_window_start(struct bench_window *w, uint64_t packets, uint64_t syscalls)
{
	getrusage(RUSAGE_SELF, &w->r0);
	w->t0 = bench_now_ns();
	w->packets0 = packets;
	w->syscalls0 = syscalls;
}

/* Arm the window: it opens after o->warmup_ms from now. */
static inline void bench_window_arm(struct bench_window *w, const struct bench_opts *o)
{
	memset(w, 0, sizeof(*w));
	w->t_warm = bench_now_ns() + (uint64_t)o->warmup_ms * 1000000ull;
}

/*
 * Call after every send call with the running totals: opens the window once
 * the warm-up is over, returns 1 once it is closed (o->duration_ms, or
 * o->count packets when set). Reads the clock every 16 calls only, except
 * while counting packets.
 */
static inline int bench_window_tick(struct bench_window *w, const struct bench_opts *o,
				    uint64_t packets, uint64_t syscalls)
{
	uint64_t now;

	if ((syscalls & 15) && !(o->count && w->measuring))
		return 0;
	now = bench_now_ns();
	if (!w->measuring && now >= w->t_warm) {
		bench_window_start(w, packets, syscalls);
		w->measuring = 1;
		w->t_end = now + (uint64_t)o->duration_ms * 1000000ull;
		return 0;
	}
	return w->measuring && (o->count ? packets - w->packets0 >= o->count : now >= w->t_end);
}

static inline double tv_s(struct timeval a, struct timeval b)
{
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_usec - a.tv_usec) / 1e6;
}

/* One JSON line: the fields bench/tx.ts reads (packets, seconds, cpuUser,
 * cpuSys, ctx*, syscalls, totalPackets) and the per-packet figures. */
static inline void bench_window_end(const struct bench_window *w, const char *method,
				    const struct bench_opts *o, uint64_t packets, uint64_t syscalls,
				    uint64_t total_packets)
{
	struct rusage r1;
	uint64_t t1 = bench_now_ns();
	double secs, user, sys, pk;
	long vol, invol;

	getrusage(RUSAGE_SELF, &r1);
	secs = (double)(t1 - w->t0) / 1e9;
	user = tv_s(w->r0.ru_utime, r1.ru_utime);
	sys = tv_s(w->r0.ru_stime, r1.ru_stime);
	vol = r1.ru_nvcsw - w->r0.ru_nvcsw;
	invol = r1.ru_nivcsw - w->r0.ru_nivcsw;
	pk = (double)(packets - w->packets0);
	printf("{\"method\":\"%s\",\"size\":%u,\"batch\":%u,\"packets\":%.0f,\"seconds\":%.6f,"
	       "\"totalPackets\":%llu,\"cpuUser\":%.6f,\"cpuSys\":%.6f,\"ctxVoluntary\":%ld,"
	       "\"ctxInvoluntary\":%ld,\"syscalls\":%llu,\"pps\":%.0f,\"cpu_s_per_mpkt\":%.4f,"
	       "\"syscalls_per_pkt\":%.5f,\"ctxsw_per_pkt\":%.6f}\n",
	       method, o->size, o->batch, pk, secs, (unsigned long long)total_packets, user, sys,
	       vol, invol, (unsigned long long)(syscalls - w->syscalls0), pk / secs,
	       pk ? (user + sys) / (pk / 1e6) : 0.0,
	       pk ? (double)(syscalls - w->syscalls0) / pk : 0.0,
	       pk ? (double)(vol + invol) / pk : 0.0);
	fflush(stdout);
}

#endif
