/* SPDX-License-Identifier: MIT */
/*
 * Engine lifecycle and the TX path on the null backend: start/stop/start,
 * doorbells and engine_state published, descriptors consumed from every lane,
 * slots returned to the lane's free ring, seq gaps counted, bad slot / dest /
 * len dropped and counted (slots still returned), timed packets not sent
 * early, late packets dropped past late_drop_ns, every sent packet in one
 * histogram bucket, policy messages acked, slots in the wheel returned at
 * destroy, a lane waiting for slots woken at its low-water mark.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "reflector/engine.h"
#include "reflector/ring.h"
#include "testlib.h"

#define MS 1000000ull
#define US 1000ull

static const struct rf_region_params params = {
	.lanes = 2, .slots_per_lane = 64, .slot_size = 2048, .submit_entries = 128,
	.dests_per_lane = 8, .policy_entries = 16, .event_entries = 64,
	.max_streams = 16, .max_outputs = 4,
};

static uint8_t *mem;
static struct rf_region_hdr *h;
static struct rf_ring_cursor lane_sub[2], lane_free[2];
static uint32_t lane_seq[2];

/* atomic: the TX thread writes the counters concurrently */
static uint64_t ctr(enum rf_thread_id t, int c)
{
	return __atomic_load_n(&rf_counters(mem, h, t)[c], __ATOMIC_RELAXED);
}

static struct rf_stream_counters *stream(uint32_t s)
{
	return (struct rf_stream_counters *)(mem + h->stream_counters_off) + s;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Wait up to 2 s for a counter to reach v. */
static int wait_ctr(enum rf_thread_id t, int c, uint64_t v)
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
static void ring_doorbell(enum rf_thread_id t)
{
	uint64_t one = 1;
	int fd;

	/* pairs with the engine's fence after setting `sleeping` */
	rf_smp_mb();
	fd = (int)rf_load_acquire((uint32_t *)&h->doorbell[t].fd);
	if (rf_load_relaxed(&h->doorbell[t].sleeping) && fd >= 0)
		(void)!write(fd, &one, sizeof(one));
}

/* A lane's free ring consumer that sleeps for `want` slots the way
 * ring.ts waitAvailable() does; records what it saw when woken. */
struct waiter {
	struct rf_ring *ring;
	uint32_t want;
	uint32_t ready;
	uint64_t woke_ns;
	int rc;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	struct timespec to = { 5, 0 };
	int i;

	w->rc = -1;
	for (i = 0; i < 100; i++) {
		uint32_t seen = rf_load_acquire(&w->ring->producer);

		rf_store_relaxed(&w->ring->consumer_waiting, w->want);
		/* announce, then re-check: pairs with the engine's fence between
		 * its `producer` store and its consumer_waiting load */
		rf_smp_mb();
		w->ready = rf_ring_count(w->ring);
		if (w->ready) {
			w->rc = 0;
			break;
		}
		if (syscall(SYS_futex, &w->ring->producer, FUTEX_WAIT_PRIVATE, seen, &to, NULL, 0) &&
		    errno == ETIMEDOUT)
			break;
	}
	w->woke_ns = rf_now_ns();
	rf_store_relaxed(&w->ring->consumer_waiting, 0);
	return NULL;
}

static uint32_t alloc_slot(int lane)
{
	uint32_t idx, slot;

	REQUIRE(rf_ring_peek(&lane_free[lane], 1, &idx) == 1, "lane %d has a free slot", lane);
	slot = *(uint32_t *)rf_ring_entry(&lane_free[lane], idx);
	rf_ring_release(&lane_free[lane], 1);
	return slot;
}

static void submit(int lane, uint32_t slot, uint32_t dest, uint16_t len, uint64_t tx_time,
		   uint32_t stream_id)
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
}

static void publish(int lane)
{
	rf_ring_submit(&lane_sub[lane]);
	ring_doorbell(RF_THREAD_TX);
}

static uint32_t free_count(int lane)
{
	return rf_ring_count(rf_ring_at(mem, h->lanes[lane].free_off));
}

static void write_dests(void)
{
	struct rf_dest *dests = (struct rf_dest *)(mem + h->dest_off);
	uint32_t i;

	for (i = 0; i < h->dest_count; i++) {
		struct rf_dest *d = &dests[i];

		memset(d, 0, sizeof(*d));
		d->family = i % 2 ? 6 : 4;
		d->flags = RF_DEST_F_VALID;
		d->src_port = htons(5000);
		d->dst_port = htons((uint16_t)(6000 + i));
		d->src_addr[0] = 198;
		d->src_addr[1] = 18;
		d->dst_addr[0] = 198;
		d->dst_addr[1] = 19;
	}
	dests[7].flags = 0; /* lane 0's dest 7 is not valid */
}

static struct rf_engine *make_engine(uint64_t late_drop_ns, uint64_t tx_window_ns)
{
	struct rf_engine_config cfg;
	struct rf_engine *e = NULL;
	char err[256] = "";
	int i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = RF_BACKEND_NULL;
	cfg.ifname = "null0";
	cfg.cpu_tx = cfg.cpu_rx = -1;
	cfg.late_drop_ns = late_drop_ns;
	cfg.tx_window_ns = tx_window_ns;
	REQUIRE(rf_engine_create(&e, mem, h->region_size, &cfg, err, sizeof(err)) == 0,
		"create: %s", err);
	REQUIRE(rf_engine_start(e, err, sizeof(err)) == 0, "start: %s", err);
	for (i = 0; i < 2; i++) {
		rf_cursor_init_prod(&lane_sub[i], rf_ring_at(mem, h->lanes[i].submit_off));
		rf_cursor_init_cons(&lane_free[i], rf_ring_at(mem, h->lanes[i].free_off));
	}
	return e;
}

int main(void)
{
	struct rf_region_layout l;
	struct rf_engine *e;
	char err[256];
	uint64_t t0, base;
	uint32_t i, s;

	REQUIRE(rf_region_layout(&params, &l, err, sizeof(err)) == 0, "%s", err);
	mem = aligned_alloc(RF_PAGE, l.size);
	REQUIRE(mem && rf_region_init(mem, l.size, &params, err, sizeof(err)) == 0, "init");
	h = rf_hdr(mem);
	write_dests();

	/* bad config is refused with a message naming the setting */
	{
		struct rf_engine_config cfg = { .backend = RF_BACKEND_NULL, .ifname = "x",
						.burst = 100000, .cpu_tx = -1, .cpu_rx = -1 };

		CHECK(rf_engine_create(&e, mem, l.size, &cfg, err, sizeof(err)) < 0 &&
			      strstr(err, "burst"), "burst refused: %s", err);
		cfg.burst = 0;
		cfg.backend = (enum rf_backend)7;
		CHECK(rf_engine_create(&e, mem, l.size, &cfg, err, sizeof(err)) < 0 &&
			      strstr(err, "backend"), "backend refused: %s", err);
		cfg.backend = RF_BACKEND_NULL;
		CHECK(rf_engine_create(&e, mem, RF_PAGE - 1, &cfg, err, sizeof(err)) < 0,
		      "short region refused: %s", err);
		/* a damaged shared header is refused, naming what is wrong */
		h->lane_count = 65;
		CHECK(rf_engine_create(&e, mem, l.size, &cfg, err, sizeof(err)) == -EINVAL &&
			      strstr(err, "lane_count"), "lane_count 65 refused: %s", err);
		h->lane_count = 2;
		h->lanes[1].dest_count = 1000;
		CHECK(rf_engine_create(&e, mem, l.size, &cfg, err, sizeof(err)) == -EINVAL &&
			      strstr(err, "lane 1 destinations"), "lane dest slice refused: %s", err);
		h->lanes[1].dest_count = params.dests_per_lane;
		rf_ring_at(mem, h->lanes[1].submit_off)->entries = 1u << 30;
		CHECK(rf_engine_create(&e, mem, l.size, &cfg, err, sizeof(err)) == -EINVAL &&
			      strstr(err, "submit ring (lane 1)"), "bad ring header refused: %s", err);
		rf_ring_at(mem, h->lanes[1].submit_off)->entries = params.submit_entries;
		h->slot_size = 3000;
		CHECK(rf_engine_create(&e, mem, l.size, &cfg, err, sizeof(err)) == -EINVAL &&
			      strstr(err, "slot_size"), "slot_size refused: %s", err);
		h->slot_size = params.slot_size;
	}

	e = make_engine(0, 0);
	CHECK(rf_engine_running(e), "running");
	CHECK(h->engine_state == RF_STATE_RUNNING, "engine_state RUNNING");
	CHECK(h->doorbell[RF_THREAD_TX].fd >= 0 && h->doorbell[RF_THREAD_RX].fd >= 0,
	      "doorbells published");

	/* 1. 60 packets for now from lane 0, 20 from lane 1 (in two submissions) */
	for (i = 0; i < 60; i++)
		submit(0, alloc_slot(0), i % 7, (uint16_t)(100 + i), 0, 3);
	publish(0);
	for (i = 0; i < 20; i++)
		submit(1, alloc_slot(1), 8 + i % 8, 1200, 0, 4);
	publish(1);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 80), "80 sent (got %llu)",
	      (unsigned long long)ctr(RF_THREAD_TX, RF_C_TX_PACKETS));
	CHECK(ctr(RF_THREAD_TX, RF_C_DESC_CONSUMED) == 80, "80 consumed");
	sleep_ms(5);
	CHECK(free_count(0) == 64 - 0 && free_count(1) == 64, "every slot back (lane0 %u, lane1 %u)",
	      free_count(0), free_count(1));
	CHECK(stream(3)->packets == 60 && stream(4)->packets == 20, "stream packets");
	{
		uint64_t bytes = 0, hist = 0;

		for (i = 0; i < 60; i++)
			bytes += (i % 7) % 2 ? 62 + 100 + i : 42 + 100 + i;
		CHECK(stream(3)->bytes == bytes, "stream 3 bytes %llu want %llu",
		      (unsigned long long)stream(3)->bytes, (unsigned long long)bytes);
		for (i = 0; i < RF_HIST_BUCKETS; i++)
			hist += ctr(RF_THREAD_TX, RF_C_HIST_BASE + i);
		CHECK(hist == 80, "every sent packet in one histogram bucket (%llu)",
		      (unsigned long long)hist);
	}
	CHECK(ctr(RF_THREAD_TX, RF_C_DESC_SEQ_GAP) == 0, "no seq gap yet");
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_FLUSHES) >= 1 && ctr(RF_THREAD_TX, RF_C_TX_FLUSHES) <= 80,
	      "flushes");
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_SYSCALLS) == 0, "null port makes no system call");
	CHECK(ctr(RF_THREAD_TX, RF_C_LATE_PACKETS) == 0, "tx_time 0 is never late");

	/* 2. drops: bad slot, bad dest (other lane's, invalid entry, huge), bad len */
	base = ctr(RF_THREAD_TX, RF_C_DESC_CONSUMED);
	submit(0, 64 + 3, 0, 100, 0, 5);           /* lane 1's slot */
	submit(0, 0xffffffffu, 0, 100, 0, 5);      /* no such slot */
	submit(0, alloc_slot(0), 8, 100, 0, 5);    /* lane 1's dest */
	submit(0, alloc_slot(0), 7, 100, 0, 5);    /* invalid entry */
	submit(0, alloc_slot(0), 0xfffffff0u, 100, 0, 5);
	submit(0, alloc_slot(0), 0, 1473, 0, 5);   /* IPv4: 28 + 1473 > 1500 */
	submit(0, alloc_slot(0), 1, 1453, 0, 5);   /* IPv6: 48 + 1453 > 1500 */
	submit(0, alloc_slot(0), 0, 1472, 0, 5);   /* fits exactly */
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_DESC_CONSUMED, base + 8), "8 consumed");
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 81), "the good one sent");
	sleep_ms(5);
	CHECK(ctr(RF_THREAD_TX, RF_C_DROP_BAD_SLOT) == 2, "bad slot x2");
	CHECK(ctr(RF_THREAD_TX, RF_C_DROP_BAD_DEST) == 3, "bad dest x3 (%llu)",
	      (unsigned long long)ctr(RF_THREAD_TX, RF_C_DROP_BAD_DEST));
	CHECK(ctr(RF_THREAD_TX, RF_C_DROP_BAD_LEN) == 2, "bad len x2");
	CHECK(stream(5)->dropped == 7 && stream(5)->packets == 1, "stream 5: 7 dropped, 1 sent");
	CHECK(free_count(0) == 64, "dropped descriptors' slots came back (%u)", free_count(0));
	CHECK(free_count(1) == 64, "lane 1's slot untouched");

	/* 3. seq gap */
	lane_seq[0] += 5;
	submit(0, alloc_slot(0), 0, 10, 0, 0);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_DESC_SEQ_GAP, 1), "seq gap counted");

	/* 4. timed: +30 ms is not sent before, and goes soon after */
	sleep_ms(20); /* the TX thread is asleep now */
	base = ctr(RF_THREAD_TX, RF_C_TX_PACKETS);
	t0 = rf_now_ns();
	for (i = 0; i < 10; i++)
		submit(0, alloc_slot(0), 2, 200, t0 + 30 * MS, 6);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_DESC_CONSUMED, 99), "timed consumed");
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_PACKETS) == base || rf_now_ns() >= t0 + 30 * MS,
	      "not sent early");
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, base + 10), "timed sent");
	CHECK(rf_now_ns() >= t0 + 30 * MS, "sent at or after its time");
	CHECK(ctr(RF_THREAD_TX, RF_C_WAKEUPS) >= 1 && ctr(RF_THREAD_TX, RF_C_SLEEPS) >= 1,
	      "the thread slept and was rung");

	/* 5. policy: a message the table refuses is acked with its status */
	{
		struct rf_ring_cursor pp, ec;
		struct rf_policy_msg *m;
		uint32_t idx;

		rf_cursor_init_prod(&pp, rf_ring_at(mem, h->policy_off));
		rf_cursor_init_cons(&ec, rf_ring_at(mem, h->event_off));
		REQUIRE(rf_ring_reserve(&pp, 1, &idx) == 1, "policy room");
		m = rf_ring_entry(&pp, idx);
		memset(m, 0, sizeof(*m));
		m->op = 0xdeadu;
		m->seq = 77;
		rf_ring_submit(&pp);
		ring_doorbell(RF_THREAD_RX);
		CHECK(wait_ctr(RF_THREAD_RX, RF_C_POLICY_REJECTED, 1), "bogus op rejected");
		for (i = 0; i < 200 && !rf_ring_peek(&ec, 1, &idx); i++)
			sleep_ms(1);
		REQUIRE(rf_ring_peek(&ec, 1, &idx) == 1, "an event");
		{
			struct rf_event *ev = rf_ring_entry(&ec, idx);

			CHECK(ev->type == RF_EVENT_POLICY_ACK && ev->a == 77 && ev->b != 0,
			      "ack: type %u seq %llu status %llu", ev->type,
			      (unsigned long long)ev->a, (unsigned long long)ev->b);
		}
		rf_ring_release(&ec, 1);
	}

	/* 6. stop, submit while stopped, start: consumed after the restart */
	rf_engine_stop(e);
	rf_engine_stop(e); /* idempotent */
	CHECK(!rf_engine_running(e) && h->engine_state == RF_STATE_STOPPED, "stopped");
	CHECK(h->doorbell[0].fd == -1 && h->doorbell[1].fd == -1, "doorbells withdrawn");
	base = ctr(RF_THREAD_TX, RF_C_TX_PACKETS);
	for (i = 0; i < 5; i++)
		submit(0, alloc_slot(0), 0, 64, 0, 0);
	publish(0);
	sleep_ms(10);
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_PACKETS) == base, "nothing sent while stopped");
	REQUIRE(rf_engine_start(e, err, sizeof(err)) == 0, "restart: %s", err);
	CHECK(h->engine_state == RF_STATE_RUNNING, "running again");
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, base + 5), "sent after restart");

	/* 7. far future packets are in the wheel at destroy: slots come back */
	t0 = rf_now_ns();
	for (i = 0; i < 4; i++)
		submit(0, alloc_slot(0), 0, 64, t0 + 3600ull * 1000 * MS, 0);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_DESC_CONSUMED, 108), "far ones consumed (%llu)",
	      (unsigned long long)ctr(RF_THREAD_TX, RF_C_DESC_CONSUMED));
	sleep_ms(2);
	CHECK(free_count(0) == 60, "four slots held by the wheel (%u free)", free_count(0));
	rf_engine_destroy(e);
	CHECK(h->engine_state == RF_STATE_STOPPED, "stopped after destroy");
	CHECK(free_count(0) == 64, "slots returned at destroy (%u free)", free_count(0));

	/* 8. a new engine on the same region: late packets dropped past 20 ms
	 * (generous: the host pauses vCPUs for a few ms now and then) */
	/* a new engine expects seq = submit ring index (what TypeScript sends) */
	for (i = 0; i < 2; i++)
		lane_seq[i] = rf_ring_at(mem, h->lanes[i].submit_off)->producer;
	e = make_engine(20 * MS, 0);
	memset(rf_counters(mem, h, RF_THREAD_TX), 0, RF_COUNTERS_PER_BLOCK * 8);
	s = (uint32_t)stream(9)->dropped;
	t0 = rf_now_ns();
	for (i = 0; i < 6; i++)
		submit(0, alloc_slot(0), 0, 64, i < 3 ? t0 - 200 * MS : t0 + 2 * MS, 9);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_DROP_LATE, 3), "3 late drops");
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 3), "3 on time");
	CHECK(stream(9)->dropped == s + 3, "stream dropped");
	CHECK(ctr(RF_THREAD_TX, RF_C_DESC_SEQ_GAP) == 0, "seq = ring index: no gap on a new engine");
	sleep_ms(5);
	CHECK(free_count(0) == 64, "late drops return their slots (%u)", free_count(0));
	rf_engine_destroy(e);

	/* 9. late but allowed: counted late, in a later histogram bucket */
	e = make_engine(0, 0);
	memset(rf_counters(mem, h, RF_THREAD_TX), 0, RF_COUNTERS_PER_BLOCK * 8);
	t0 = rf_now_ns();
	submit(0, alloc_slot(0), 0, 64, t0 - 5 * MS, 10);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 1), "late packet sent");
	CHECK(ctr(RF_THREAD_TX, RF_C_LATE_PACKETS) == 1 && stream(10)->late == 1, "late counted");
	/* 5 ms late: bucket 13 (<= 8.192 ms) or later, never the first ones */
	{
		uint64_t low = 0;

		for (i = 0; i < 13; i++)
			low += ctr(RF_THREAD_TX, RF_C_HIST_BASE + i);
		CHECK(low == 0, "a 5 ms late packet is not in a bucket below 8 ms");
	}
	rf_engine_destroy(e);

	/* 9b. tx_window_ns: a packet due 30 us after another leaves in the
	 * other's flush with a 100 us window (both within the window, one flush),
	 * and a packet 50 ms later still waits for its time (one more flush) */
	e = make_engine(0, 100 * US);
	memset(rf_counters(mem, h, RF_THREAD_TX), 0, RF_COUNTERS_PER_BLOCK * 8);
	t0 = rf_now_ns() + 20 * MS;
	submit(0, alloc_slot(0), 0, 64, t0, 11);
	submit(0, alloc_slot(0), 1, 64, t0 + 30 * US, 11);
	submit(0, alloc_slot(0), 2, 64, t0 + 50 * MS, 11);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 2), "window: the first two sent");
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_FLUSHES) == 1, "window: in one flush (%llu)",
	      (unsigned long long)ctr(RF_THREAD_TX, RF_C_TX_FLUSHES));
	CHECK(rf_now_ns() < t0 + 50 * MS - 100 * US && ctr(RF_THREAD_TX, RF_C_TX_PACKETS) == 2,
	      "window: the third is not sent 50 ms early");
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 3), "window: the third sent at its time");
	CHECK(rf_now_ns() >= t0 + 50 * MS - 100 * US, "window: not earlier than the window");
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_FLUSHES) == 2, "window: a flush of its own");
	rf_engine_destroy(e);

	/* 10. low-water wake (region.h consumer_waiting): a lane waiting for 16
	 * slots is not woken for fewer while the engine still holds one of its
	 * slots, is woken once none is left in flight, and is woken at 16
	 * before the engine is done */
	for (i = 0; i < 2; i++)
		lane_seq[i] = rf_ring_at(mem, h->lanes[i].submit_off)->producer;
	e = make_engine(0, 0);
	{
		struct waiter w = { .ring = rf_ring_at(mem, h->lanes[1].free_off), .want = 16 };
		uint32_t held[64], n = 0;
		pthread_t th;

		while (free_count(1))
			held[n++] = alloc_slot(1);
		REQUIRE(n == 64, "lane 1 took all its slots (%u)", n);
		base = ctr(RF_THREAD_TX, RF_C_TX_PACKETS);
		REQUIRE(pthread_create(&th, NULL, waiter_main, &w) == 0, "waiter thread");
		while (!rf_load_acquire(&w.ring->consumer_waiting))
			sleep_ms(1);
		sleep_ms(5); /* asleep on the futex now */
		t0 = rf_now_ns();
		for (i = 0; i < 8; i++)
			submit(1, held[--n], 8, 64, 0, 11);
		submit(1, held[--n], 8, 64, t0 + 200 * MS, 11);
		publish(1);
		pthread_join(th, NULL);
		CHECK(w.rc == 0, "waiter woken (rc %d)", w.rc);
		CHECK(w.ready == 9, "woken with all 9 back, not at 8 (ready %u)", w.ready);
		CHECK(w.woke_ns >= t0 + 200 * MS, "woken once the timed slot came back");
		CHECK(ctr(RF_THREAD_TX, RF_C_TX_PACKETS) == base + 9, "9 sent");

		/* give the 9 back to the cursor, then wait for 16 again */
		rf_cursor_init_cons(&lane_free[1], w.ring);
		while (free_count(1))
			(void)alloc_slot(1);
		w.rc = -1;
		w.ready = 0;
		REQUIRE(pthread_create(&th, NULL, waiter_main, &w) == 0, "waiter thread");
		while (!rf_load_acquire(&w.ring->consumer_waiting))
			sleep_ms(1);
		sleep_ms(5);
		t0 = rf_now_ns();
		for (i = 0; i < 20; i++)
			submit(1, held[--n], 8, 64, 0, 11);
		submit(1, held[--n], 8, 64, t0 + 2000 * MS, 11);
		publish(1);
		pthread_join(th, NULL);
		CHECK(w.rc == 0, "waiter woken (rc %d)", w.rc);
		CHECK(w.ready >= 16, "woken at the low-water mark (ready %u)", w.ready);
		CHECK(w.woke_ns < t0 + 2000 * MS, "before the engine was done with the lane");
		CHECK(rf_load_relaxed(&w.ring->consumer_waiting) == 0, "consumer_waiting cleared");
	}
	rf_engine_destroy(e);
	free(mem);
	return t_result("engine_null");
}
