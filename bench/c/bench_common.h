/* SPDX-License-Identifier: MIT */
/* Shared by the C baseline senders: argument parsing, the measured window,
 * the JSON result line. Header-only so each bench is one compiler call. */
#ifndef REFLECTOR_BENCH_COMMON_H
#define REFLECTOR_BENCH_COMMON_H

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
};

static inline void bench_window_start(struct bench_window *w, uint64_t packets, uint64_t syscalls)
{
	getrusage(RUSAGE_SELF, &w->r0);
	w->t0 = bench_now_ns();
	w->packets0 = packets;
	w->syscalls0 = syscalls;
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
