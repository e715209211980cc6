/* SPDX-License-Identifier: MIT */
/*
 * The engine's TX path measured from C, without JavaScript: one producer
 * thread plays a lane (takes free slots, writes payloads, submits
 * descriptors with tx_time 0 in batches of --batch, rings the doorbell when
 * the TX thread sleeps), the engine's TX thread builds headers and sends on
 * the AF_PACKET TX ring (or discards on the null backend). Compared with
 * txring_bench it shows what the rings, validation, wheel and header
 * building cost per packet.
 *
 *   engine_tx_bench --ifname DEV --dst IPV4 --dst-mac MAC [--src IPV4]
 *                   [--src-mac MAC] [--port 9] [--size 64] [--batch 64]
 *                   [--count N] [--warmup-ms 200] [--duration-ms 1000]
 *                   [--interval-us N]
 *                   (--ifname null: the null backend)
 *
 * --interval-us N gives packet i the time start + i * N us (timed transmit):
 * the JSON line then also carries the TX thread's lateness histogram
 * ("late_hist": counts per bucket, bucket i = at most 2^i us late) and the
 * bounds p50_us / p99_us / p999_us read from it.
 *
 * Prints one JSON line like txring_bench: CPU is the whole process (producer
 * and engine threads), syscalls is the engine's tx_syscalls counter; then a
 * second line with the engine threads' CPU alone per Mpkt (the process minus
 * the producer thread, over the whole run).
 * Built by `make -C engine bench` (links the engine sources).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "bench_common.h"
#include "reflector/engine.h"
#include "reflector/ring.h"

#define USAGE "--ifname DEV|null --dst IPV4 --dst-mac MAC [--src IPV4] [--src-mac MAC] [--port 9] [--size 64] [--batch 64] [--count N] [--warmup-ms 200] [--duration-ms 1000]"

static atomic_int stop;
static double producer_cpu_s; /* CPU the producer (the lane) used, at its end */
static uint8_t *mem;
static struct rf_region_hdr *h;
static struct bench_opts o;

static void *producer(void *arg)
{
	struct rf_ring_cursor sub, fre;
	uint32_t seq = 0;
	uint64_t base = bench_now_ns() + 1000000ull;

	(void)arg;
	rf_cursor_init_prod(&sub, rf_ring_at(mem, h->lanes[0].submit_off));
	rf_cursor_init_cons(&fre, rf_ring_at(mem, h->lanes[0].free_off));
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		uint32_t fidx, sidx, n, m, k;

		n = rf_ring_peek(&fre, o.batch, &fidx);
		if (!n) {
			/* wait for the engine to return slots; sleep when pacing so
			 * the producer does not compete with the TX thread */
			if (o.interval_us)
				usleep(200);
			else
				__builtin_ia32_pause();
			continue;
		}
		m = rf_ring_reserve(&sub, n, &sidx);
		for (k = 0; k < m; k++) {
			uint32_t slot = *(uint32_t *)rf_ring_entry(&fre, fidx + k);
			struct rf_desc *d = rf_ring_entry(&sub, sidx + k);

			/* the payload is written into the slot, as a worker does */
			memset(rf_slot_data(mem, h, slot), 0x5a, o.size);
			d->tx_time = o.interval_us ? base + (uint64_t)seq * o.interval_us * 1000ull : 0;
			d->slot = slot;
			d->len = (uint16_t)o.size;
			d->flags = 0;
			d->dest = 0;
			d->stream = 0;
			d->seq = seq++;
		}
		rf_ring_release(&fre, m);
		rf_ring_submit(&sub);
		/* the addon's ring(): pairs with the engine's fence after it sets
		 * `sleeping` */
		rf_smp_mb();
		if (rf_load_relaxed(&h->doorbell[RF_THREAD_TX].sleeping)) {
			uint64_t one = 1;
			int fd = (int)rf_load_acquire((uint32_t *)&h->doorbell[RF_THREAD_TX].fd);

			if (fd >= 0)
				(void)!write(fd, &one, sizeof(one));
		}
	}
	{
		struct timespec ts;

		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
		producer_cpu_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	}
	return NULL;
}

static int parse_mac(const char *s, uint8_t m[6])
{
	return s && sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4],
			   &m[5]) == 6;
}

int main(int argc, char **argv)
{
	struct rf_region_params p = { .lanes = 1, .slots_per_lane = 4096, .slot_size = 2048,
				      .submit_entries = 4096, .dests_per_lane = 1,
				      .policy_entries = 16, .event_entries = 64,
				      .max_streams = 1, .max_outputs = 1 };
	struct rf_engine_config cfg;
	struct rf_region_layout l;
	struct rf_engine *e;
	struct rf_dest *d;
	struct bench_window w;
	pthread_t prod;
	uint64_t *c, t_warm, t_end;
	char err[256];
	int null;

	bench_parse(argc, argv, &o, USAGE);
	if (!o.ifname)
		bench_usage(argv[0], USAGE);
	null = !strcmp(o.ifname, "null");
	if (rf_region_layout(&p, &l, err, sizeof(err)) || !(mem = aligned_alloc(RF_PAGE, l.size)) ||
	    rf_region_init(mem, l.size, &p, err, sizeof(err))) {
		fprintf(stderr, "engine_tx_bench: %s\n", err);
		return 1;
	}
	h = rf_hdr(mem);
	d = (struct rf_dest *)(mem + h->dest_off);
	d->family = 4;
	d->flags = RF_DEST_F_VALID;
	d->src_port = htons(40000);
	d->dst_port = htons((uint16_t)o.port);
	if ((!null && !parse_mac(o.dst_mac, d->dst_mac)) || (o.src_mac && !parse_mac(o.src_mac, d->src_mac)) ||
	    inet_pton(AF_INET, o.src, d->src_addr) != 1 || inet_pton(AF_INET, o.dst, d->dst_addr) != 1)
		bench_usage(argv[0], USAGE);
	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = null ? RF_BACKEND_NULL : RF_BACKEND_AFPACKET;
	cfg.ifname = o.ifname;
	cfg.burst = o.batch > 256 ? 256 : o.batch;
	cfg.tx_frames = 1024;
	cfg.cpu_tx = cfg.cpu_rx = -1;
	if (rf_engine_create(&e, mem, l.size, &cfg, err, sizeof(err)) ||
	    rf_engine_start(e, err, sizeof(err))) {
		fprintf(stderr, "engine_tx_bench: %s\n", err);
		return 1;
	}
	c = rf_counters(mem, h, RF_THREAD_TX);
	pthread_create(&prod, NULL, producer, NULL);
	t_warm = bench_now_ns() + (uint64_t)o.warmup_ms * 1000000ull;
	while (bench_now_ns() < t_warm)
		usleep(1000);
	bench_window_start(&w, c[RF_C_TX_PACKETS], c[RF_C_TX_SYSCALLS]);
	t_end = w.t0 + (uint64_t)o.duration_ms * 1000000ull;
	while (o.count ? c[RF_C_TX_PACKETS] - w.packets0 < o.count : bench_now_ns() < t_end)
		usleep(o.count ? 100 : 1000);
	if (o.interval_us) {
		uint64_t tot = 0, acc = 0;
		double q[3] = { 0.5, 0.99, 0.999 }, b[3] = { -1, -1, -1 };
		unsigned i, k;

		for (i = 0; i < RF_HIST_BUCKETS; i++)
			tot += c[RF_C_HIST_BASE + i];
		for (i = 0; i < RF_HIST_BUCKETS; i++) {
			acc += c[RF_C_HIST_BASE + i];
			for (k = 0; k < 3; k++)
				if (b[k] < 0 && tot && (double)acc >= q[k] * (double)tot)
					b[k] = i == RF_HIST_BUCKETS - 1 ? 1e18 : (double)(1u << i);
		}
		printf("{\"late_hist\":[");
		for (i = 0; i < RF_HIST_BUCKETS; i++)
			printf("%s%llu", i ? "," : "", (unsigned long long)c[RF_C_HIST_BASE + i]);
		printf("],\"late_packets\":%llu,\"p50_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f,"
		       "\"sleeps\":%llu,\"wakeups\":%llu}\n",
		       (unsigned long long)c[RF_C_LATE_PACKETS], b[0], b[1], b[2],
		       (unsigned long long)c[RF_C_SLEEPS], (unsigned long long)c[RF_C_WAKEUPS]);
	}
	{
		/* the engine threads' CPU alone: the process minus the producer
		 * (which spins for free slots) over the whole run, per packet */
		struct rusage ru;
		double all;

		bench_window_end(&w, null ? "engine-c-null" : "engine-c", &o, c[RF_C_TX_PACKETS],
				 c[RF_C_TX_SYSCALLS], c[RF_C_TX_PACKETS]);
		atomic_store(&stop, 1);
		pthread_join(prod, NULL);
		getrusage(RUSAGE_SELF, &ru);
		all = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		printf("{\"engine_threads_cpu_s_per_mpkt\":%.4f,\"producer_cpu_s\":%.3f,"
		       "\"total_cpu_s\":%.3f,\"packets_all\":%llu}\n",
		       (all - producer_cpu_s) / ((double)c[RF_C_TX_PACKETS] / 1e6), producer_cpu_s, all,
		       (unsigned long long)c[RF_C_TX_PACKETS]);
	}
	rf_engine_destroy(e);
	free(mem);
	return 0;
}
