/* SPDX-License-Identifier: MIT */
/*
 * What the engine tests on the null backend share (test_engine_null.c,
 * test_trust.c, test_accounting.c, test_events.c): a region of `params`
 * (2 lanes by default), lane cursors that play the TypeScript side,
 * descriptors, the doorbell, counters read atomically (the engine's
 * threads write them meanwhile) and waits bounded in time.
 */
#ifndef REFLECTOR_TEST_NULLBED_H
#define REFLECTOR_TEST_NULLBED_H

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "engine_internal.h"
#include "reflector/dest.h"
#include "reflector/engine.h"
#include "reflector/ring.h"
#include "testlib.h"

#define MS 1000000ull
#define US 1000ull
#define NB_LANES 3u

static struct rf_region_params params = {
	.lanes = 2, .slots_per_lane = 64, .slot_size = 2048, .submit_entries = 128,
	.dests_per_lane = 8, .policy_entries = 16, .event_entries = 64,
	.max_streams = 16, .max_outputs = 4,
};

static uint8_t *mem;
static struct rf_region_hdr *h;
static uint32_t region_size;
static struct rf_ring_cursor lane_sub[NB_LANES], lane_free[NB_LANES];
static uint32_t lane_seq[NB_LANES];

/* atomic: the TX thread writes the counters concurrently */
static inline uint64_t ctr(enum rf_thread_id t, int c)
{
	return __atomic_load_n(&rf_counters(mem, h, t)[c], __ATOMIC_RELAXED);
}

static inline uint64_t stream_ctr(uint32_t s, size_t field_off)
{
	uint8_t *sc = mem + h->stream_counters_off + (size_t)s * sizeof(struct rf_stream_counters);

	return __atomic_load_n((uint64_t *)(sc + field_off), __ATOMIC_RELAXED);
}
#define STREAM(s, f) stream_ctr(s, offsetof(struct rf_stream_counters, f))

/* Lane `lane`'s counters (lane == lane_count: the control channel's). */
static inline struct rf_lane_counters *lanec(uint32_t lane)
{
	return rf_lane_counters(mem, h, lane);
}
#define LANE(l, f) __atomic_load_n(&lanec(l)->f, __ATOMIC_RELAXED)

static inline void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Wait up to 2 s for a counter to reach v. */
static inline int wait_ctr(enum rf_thread_id t, int c, uint64_t v)
{
	int i;

	for (i = 0; i < 2000; i++) {
		if (ctr(t, c) >= v)
			return 1;
		sleep_ms(1);
	}
	return 0;
}

/* What the addon's ring() does: ring the doorbell if the thread sleeps. */
static inline void ring_doorbell(enum rf_thread_id t)
{
	uint64_t one = 1;
	int fd;

	/* pairs with the engine's fence after setting `sleeping` */
	rf_smp_mb();
	fd = (int)rf_load_acquire((uint32_t *)&h->doorbell[t].fd);
	if (rf_load_relaxed(&h->doorbell[t].sleeping) && fd >= 0)
		(void)!write(fd, &one, sizeof(one));
}

static inline uint32_t alloc_slot(int lane)
{
	uint32_t idx, slot;

	REQUIRE(rf_ring_peek(&lane_free[lane], 1, &idx) == 1, "lane %d has a free slot", lane);
	slot = *(uint32_t *)rf_ring_entry(&lane_free[lane], idx);
	rf_ring_release(&lane_free[lane], 1);
	return slot;
}

/* Reserve and write one descriptor (published by publish()); returns it. */
static inline struct rf_desc *submit(int lane, uint32_t slot, uint32_t dest, uint16_t len,
				     uint64_t tx_time, uint32_t stream_id)
{
	struct rf_desc *d;
	uint32_t idx;

	REQUIRE(rf_ring_reserve(&lane_sub[lane], 1, &idx) == 1, "submit ring has room");
	d = rf_ring_entry(&lane_sub[lane], idx);
	memset(d, 0, sizeof(*d));
	d->slot = slot;
	d->dest = dest;
	d->len = len;
	d->tx_time = tx_time;
	d->stream = stream_id;
	d->seq = lane_seq[lane]++;
	memset(rf_slot_data(mem, h, slot < h->slot_count ? slot : 0), 0x5a, len < 1900 ? len : 0);
	return d;
}

static inline void publish(int lane)
{
	rf_ring_submit(&lane_sub[lane]);
	ring_doorbell(RF_THREAD_TX);
}

/* Slots on lane `lane`'s free ring (published, not yet taken). */
static inline uint32_t free_count(int lane)
{
	return rf_ring_count(rf_ring_at(mem, h->lanes[lane].free_off));
}

/* Every slot of the lane is on its free ring exactly once (after a stop,
 * with the lane holding none). */
static inline int slots_conserved(int lane)
{
	struct rf_ring *r = rf_ring_at(mem, h->lanes[lane].free_off);
	uint32_t first = h->lanes[lane].slot_first, n = h->lanes[lane].slot_count, k;
	uint8_t seen[65536];
	uint32_t cons = rf_load_acquire(&r->consumer);

	if (rf_ring_count(r) != n)
		return 0;
	memset(seen, 0, n);
	for (k = 0; k < n; k++) {
		uint32_t s = ((uint32_t *)((uint8_t *)r + r->data_off))[(cons + k) & r->mask] - first;

		if (s >= n || seen[s]++)
			return 0;
	}
	return 1;
}

/* Destination `i` of the table: IPv4 when even, IPv6 when odd. */
static inline void write_dest(uint32_t i, uint16_t dst_port)
{
	struct rf_dest d;

	memset(&d, 0, sizeof(d));
	d.family = i % 2 ? 6 : 4;
	d.flags = RF_DEST_F_VALID;
	d.src_port = htons(5000);
	d.dst_port = htons(dst_port);
	d.src_addr[0] = 198;
	d.src_addr[1] = 18;
	d.dst_addr[0] = 198;
	d.dst_addr[1] = 19;
	rf_dest_write((struct rf_dest *)(mem + h->dest_off) + i, &d);
}

static inline void write_dests(void)
{
	uint32_t i;

	for (i = 0; i < h->dest_count; i++)
		write_dest(i, (uint16_t)(6000 + i));
}

/* A fresh region of `params`, every destination written. */
static inline void region_new(void)
{
	struct rf_region_layout l;
	char err[256];

	REQUIRE(rf_region_layout(&params, &l, err, sizeof(err)) == 0, "%s", err);
	free(mem);
	mem = aligned_alloc(RF_PAGE, l.size);
	REQUIRE(mem && rf_region_init(mem, l.size, &params, err, sizeof(err)) == 0, "init");
	h = rf_hdr(mem);
	region_size = l.size;
	memset(lane_seq, 0, sizeof(lane_seq));
	write_dests();
}

/* Attach the test's lane cursors where the region's indexes are now. */
static inline void lanes_attach(void)
{
	uint32_t i;

	for (i = 0; i < h->lane_count && i < NB_LANES; i++) {
		rf_cursor_init_prod(&lane_sub[i], rf_ring_at(mem, h->lanes[i].submit_off));
		rf_cursor_init_cons(&lane_free[i], rf_ring_at(mem, h->lanes[i].free_off));
		lane_seq[i] = rf_ring_at(mem, h->lanes[i].submit_off)->producer;
	}
}

static inline struct rf_engine *engine_create(uint64_t late_drop_ns, uint64_t tx_window_ns)
{
	struct rf_engine_config cfg;
	struct rf_engine *e = NULL;
	char err[256] = "";

	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = RF_BACKEND_NULL;
	cfg.ifname = "null0";
	cfg.cpu_tx = cfg.cpu_rx = -1;
	cfg.late_drop_ns = late_drop_ns;
	cfg.tx_window_ns = tx_window_ns;
	REQUIRE(rf_engine_create(&e, mem, region_size, &cfg, err, sizeof(err)) == 0, "create: %s",
		err);
	lanes_attach();
	return e;
}

static inline void engine_go(struct rf_engine *e)
{
	char err[256] = "";

	REQUIRE(rf_engine_start(e, err, sizeof(err)) == 0, "start: %s", err);
}

static inline struct rf_engine *make_engine(uint64_t late_drop_ns, uint64_t tx_window_ns)
{
	struct rf_engine *e = engine_create(late_drop_ns, tx_window_ns);

	engine_go(e);
	return e;
}

/* The TX thread's CPU time so far, in ns. */
static inline uint64_t thread_cpu_ns(const struct rf_engine *e, enum rf_thread_id t)
{
	clockid_t cid;
	struct timespec ts;

	REQUIRE(pthread_getcpuclockid(e->th[t].tid, &cid) == 0, "cpu clock");
	clock_gettime(cid, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU (ns) thread t used over the next `ms` of wall time. */
static inline uint64_t cpu_used(const struct rf_engine *e, enum rf_thread_id t, unsigned ms)
{
	uint64_t c0 = thread_cpu_ns(e, t);

	sleep_ms(ms);
	return thread_cpu_ns(e, t) - c0;
}

/* Wait up to 2 s for the null TX port to have flushed n frames. */
static inline uint64_t wait_flushed(struct rf_engine *e, uint64_t n)
{
	uint64_t t0 = rf_now_ns();

	while (rf_port_null_flushed(e->th[RF_THREAD_TX].port) < n && rf_now_ns() - t0 < 2000 * MS)
		sleep_ms(1);
	return rf_port_null_flushed(e->th[RF_THREAD_TX].port);
}

/* Lane 1 names lane 0's slot 0, 40 times: quarantined at fault 33. */
static inline int quarantine_lane1(void)
{
	uint32_t i;

	for (i = 0; i < 40; i++)
		submit(1, 0, 8, 64, 0, 5);
	publish(1);
	for (i = 0; i < 2000 && LANE(1, state) != RF_LANE_QUARANTINED; i++)
		sleep_ms(1);
	/* the TX thread adds a burst's `taken` after the burst */
	for (i = 0; i < 1000 && LANE(1, taken) < RF_LANE_FAULT_LIMIT + 1; i++)
		sleep_ms(1);
	return LANE(1, state) == RF_LANE_QUARANTINED;
}

#endif
