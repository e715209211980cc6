/* SPDX-License-Identifier: MIT */
/*
 * How often a spinning thread loses its CPU, and for how long: reads
 * CLOCK_MONOTONIC in a tight loop for --ms milliseconds and counts the gaps
 * between two readings longer than 10, 20, 50, 100 and 1,000 us (interrupts,
 * the timer tick, other tasks, the hypervisor pausing the vCPU). The floor
 * under any sender's tail latency on this CPU, bench/precision.ts prints it.
 *   hiccups [--ms 2000]
 * Prints one JSON line: {"ms":..,"gaps":{"10":n,..},"lostUs":{"10":us,..},"maxUs":..}
 * where lostUs[T] is the time spent in gaps longer than T us.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"

int main(int argc, char **argv)
{
	static const int64_t bound_us[] = { 10, 20, 50, 100, 1000 };
	enum { NB = sizeof(bound_us) / sizeof(bound_us[0]) };
	long long ms = 2000, gaps[NB] = { 0 };
	int64_t lost[NB] = { 0 }, max = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--ms"))
			ms = atoll(argv[i + 1]);
		else {
			fprintf(stderr, "hiccups: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (ms <= 0) {
		fprintf(stderr, "usage: hiccups [--ms 2000]\n");
		return 2;
	}
	int64_t start = (int64_t)bench_now_ns(), end = start + ms * 1000000ll, prev = start, now;

	while ((now = (int64_t)bench_now_ns()) < end) {
		int64_t gap = now - prev;

		if (gap > max)
			max = gap;
		for (int b = 0; b < NB; b++) {
			if (gap > bound_us[b] * 1000) {
				gaps[b]++;
				lost[b] += gap;
			}
		}
		prev = now;
	}
	printf("{\"ms\":%lld,\"gaps\":{", ms);
	for (int b = 0; b < NB; b++)
		printf("%s\"%lld\":%lld", b ? "," : "", (long long)bound_us[b], gaps[b]);
	printf("},\"lostUs\":{");
	for (int b = 0; b < NB; b++)
		printf("%s\"%lld\":%lld", b ? "," : "", (long long)bound_us[b], (long long)(lost[b] / 1000));
	printf("},\"maxUs\":%lld}\n", (long long)(max / 1000));
	return 0;
}
