/* SPDX-License-Identifier: MIT */
/*
 * What the precision bench's receivers (recv_ts.c, recv_xdp.c) share: the
 * record they write, the options every one of them takes, and when to stop
 * waiting. Each receiver is compiled on its own (bench/lib/measure.ts).
 */
#ifndef BENCH_RECV_COMMON_H
#define BENCH_RECV_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One received datagram, as bench/precision.ts reads it (32 bytes). */
struct recv_rec {
	int64_t rx_ns;     /* kernel receive time, CLOCK_MONOTONIC */
	uint16_t src_port; /* the sender's UDP port (identifies a session) */
	uint16_t len;      /* payload bytes */
	uint32_t pad;
	uint8_t peek[16];  /* payload bytes OFF..OFF+16 (the schedule or a tag) */
};

/* --port P --out FILE --count N --timeout-ms T [--idle-ms I] [--peek OFF] */
struct recv_opts {
	const char *out;
	unsigned port, peek;
	long long count, timeout_ms, idle_ms;
};

#define RECV_OPTS_INIT { .timeout_ms = 10000 }
#define RECV_OPTS_USAGE "--port P --out FILE --count N --timeout-ms T [--idle-ms I] [--peek OFF]"

/* Take option `a` with value `v` when it is one of recv_opts'; 1 if it was. */
static inline int recv_opt(struct recv_opts *o, const char *a, const char *v)
{
	if (!strcmp(a, "--port"))
		o->port = (unsigned)atoi(v);
	else if (!strcmp(a, "--out"))
		o->out = v;
	else if (!strcmp(a, "--count"))
		o->count = atoll(v);
	else if (!strcmp(a, "--timeout-ms"))
		o->timeout_ms = atoll(v);
	else if (!strcmp(a, "--idle-ms"))
		o->idle_ms = atoll(v);
	else if (!strcmp(a, "--peek"))
		o->peek = (unsigned)atoi(v);
	else
		return 0;
	return 1;
}

/* The options every receiver needs are there and in range. */
static inline int recv_opts_ok(const struct recv_opts *o, unsigned max_peek)
{
	return o->out && o->port && o->port <= 65535 && o->count > 0 && o->peek <= max_peek;
}

static inline int64_t recv_now_ns(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return (int64_t)t.tv_sec * 1000000000ll + t.tv_nsec;
}

/* How long to wait for more at `now`: to the run's deadline, or to idle_ms
 * after the last datagram once one came. <= 0: stop (timed out). */
static inline int64_t recv_wait_ns(const struct recv_opts *o, int64_t deadline, int64_t last_rx,
				   long long got, int64_t now)
{
	int64_t wait = deadline - now;

	if (o->idle_ms > 0 && got > 0 && last_rx + o->idle_ms * 1000000ll - now < wait)
		wait = last_rx + o->idle_ms * 1000000ll - now;
	return wait;
}

#endif
