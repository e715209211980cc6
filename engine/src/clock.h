/* SPDX-License-Identifier: MIT */
/* The engine's clock: CLOCK_MONOTONIC in ns, the clock process.hrtime.bigint()
 * reads in TypeScript, so descriptor tx_time values compare directly. */
#ifndef REFLECTOR_CLOCK_H
#define REFLECTOR_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t rf_now_ns(void)
{
	struct timespec ts;

	/* vDSO: no system call */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline struct timespec rf_ns_to_timespec(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };
	return ts;
}

#endif
