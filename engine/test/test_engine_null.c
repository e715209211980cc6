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
#include <linux/futex.h>
#include <sys/syscall.h>

#include "nullbed.h"

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

/* Lane 0's destination 7 is not a valid entry (RF_DEST_F_VALID clear). */
static void invalidate_dest7(void)
{
	struct rf_dest d;

	memset(&d, 0, sizeof(d));
	d.family = 4;
	rf_dest_write((struct rf_dest *)(mem + h->dest_off) + 7, &d);
}

int main(void)
{
	struct rf_engine *e;
	char err[256];
	uint64_t t0, base;
	uint32_t i, s;
	uint32_t size;

	region_new();
	invalidate_dest7();
	size = region_size;

	/* bad config is refused with a message naming the setting */
	{
		struct rf_engine_config cfg = { .backend = RF_BACKEND_NULL, .ifname = "x",
						.burst = 100000, .cpu_tx = -1, .cpu_rx = -1 };

		CHECK(rf_engine_create(&e, mem, size, &cfg, err, sizeof(err)) < 0 &&
			      strstr(err, "burst"), "burst refused: %s", err);
		cfg.burst = 0;
		cfg.backend = (enum rf_backend)7;
		CHECK(rf_engine_create(&e, mem, size, &cfg, err, sizeof(err)) < 0 &&
			      strstr(err, "backend"), "backend refused: %s", err);
		cfg.backend = RF_BACKEND_NULL;
		CHECK(rf_engine_create(&e, mem, RF_PAGE - 1, &cfg, err, sizeof(err)) < 0,
		      "short region refused: %s", err);
		/* a damaged shared header is refused, naming what is wrong */
		h->lane_count = 65;
		CHECK(rf_engine_create(&e, mem, size, &cfg, err, sizeof(err)) == -EINVAL &&
			      strstr(err, "lane_count"), "lane_count 65 refused: %s", err);
		h->lane_count = 2;
		h->lanes[1].dest_count = 1000;
		CHECK(rf_engine_create(&e, mem, size, &cfg, err, sizeof(err)) == -EINVAL &&
			      strstr(err, "lane 1 destinations"), "lane dest slice refused: %s", err);
		h->lanes[1].dest_count = params.dests_per_lane;
		rf_ring_at(mem, h->lanes[1].submit_off)->entries = 1u << 30;
		CHECK(rf_engine_create(&e, mem, size, &cfg, err, sizeof(err)) == -EINVAL &&
			      strstr(err, "submit ring (lane 1)"), "bad ring header refused: %s", err);
		rf_ring_at(mem, h->lanes[1].submit_off)->entries = params.submit_entries;
		h->slot_size = 3000;
		CHECK(rf_engine_create(&e, mem, size, &cfg, err, sizeof(err)) == -EINVAL &&
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
	CHECK(STREAM(3, packets) == 60 && STREAM(4, packets) == 20, "stream packets");
	{
		uint64_t bytes = 0, hist = 0;

		for (i = 0; i < 60; i++)
			bytes += (i % 7) % 2 ? 62 + 100 + i : 42 + 100 + i;
		CHECK(STREAM(3, bytes) == bytes, "stream 3 bytes %llu want %llu",
		      (unsigned long long)STREAM(3, bytes), (unsigned long long)bytes);
		for (i = 0; i < RF_HIST_BUCKETS; i++)
			hist += ctr(RF_THREAD_TX, RF_C_HIST_BASE + i);
		CHECK(hist == 80, "every sent packet in one histogram bucket (%llu)",
		      (unsigned long long)hist);
	}
	CHECK(ctr(RF_THREAD_TX, RF_C_DESC_SEQ_GAP) == 0, "no seq gap yet");
	/* one flush per round of due packets: the 80 came in one or two rounds
	 * (60 + 20, or 64 + 16 when both were there), never one per packet */
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_FLUSHES) == 2, "80 packets in 2 flushes (%llu)",
	      (unsigned long long)ctr(RF_THREAD_TX, RF_C_TX_FLUSHES));
	CHECK(rf_port_null_flushed(e->th[RF_THREAD_TX].port) == 80,
	      "every frame handed to the port was flushed (%llu)",
	      (unsigned long long)rf_port_null_flushed(e->th[RF_THREAD_TX].port));
	CHECK(LANE(0, taken) == 60 && LANE(0, sent) == 60 && LANE(1, taken) == 20 &&
		      LANE(1, sent) == 20 && LANE(0, dropped) == 0 && LANE(1, dropped) == 0,
	      "per lane: taken = sent");
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
	CHECK(STREAM(5, dropped) == 7 && STREAM(5, packets) == 1, "stream 5: 7 dropped, 1 sent");
	CHECK(LANE(0, taken) == 68 && LANE(0, sent) == 61 && LANE(0, dropped) == 7,
	      "lane 0: 68 taken = 61 sent + 7 dropped");
	CHECK(free_count(0) == 64, "dropped descriptors' slots came back (%u)", free_count(0));
	CHECK(free_count(1) == 64, "lane 1's slot untouched");

	/* 3. seq gap */
	lane_seq[0] += 5;
	submit(0, alloc_slot(0), 0, 10, 0, 0);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_DESC_SEQ_GAP, 1), "seq gap counted");

	/* 4. timed: +30 ms is not sent before, and goes soon after. Sampled
	 * every millisecond until just before its time (a host pause can eat
	 * samples; at least one before the time is required) */
	sleep_ms(20); /* the TX thread is asleep now */
	base = ctr(RF_THREAD_TX, RF_C_TX_PACKETS);
	t0 = rf_now_ns();
	for (i = 0; i < 10; i++)
		submit(0, alloc_slot(0), 2, 200, t0 + 30 * MS, 6);
	publish(0);
	{
		uint32_t samples = 0, early = 0;

		for (;;) {
			uint64_t sent = ctr(RF_THREAD_TX, RF_C_TX_PACKETS), now = rf_now_ns();

			if (now >= t0 + 30 * MS)
				break;
			samples++;
			early += sent != base;
			sleep_ms(1);
		}
		CHECK(samples > 0 && early == 0, "not sent early (%u of %u samples before its time saw it sent)",
		      early, samples);
	}
	CHECK(ctr(RF_THREAD_TX, RF_C_DESC_CONSUMED) == 99, "timed consumed");
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, base + 10), "timed sent");
	{
		/* when they left: the lateness histogram counts them at most a few
		 * ms late, never before their time (a packet sent early would be
		 * late 0 too: the samples above rule that out) */
		uint64_t late = 0;

		for (i = 14; i < RF_HIST_BUCKETS; i++)
			late += ctr(RF_THREAD_TX, RF_C_HIST_BASE + i);
		CHECK(late == 0, "none more than 16 ms late");
	}
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

	/* 7. packets 10 s ahead (within the 16 s horizon) are in the wheel at
	 * destroy: their slots come back */
	t0 = rf_now_ns();
	for (i = 0; i < 4; i++)
		submit(0, alloc_slot(0), 0, 64, t0 + 10000 * MS, 0);
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
	s = (uint32_t)STREAM(9, dropped);
	t0 = rf_now_ns();
	for (i = 0; i < 6; i++)
		submit(0, alloc_slot(0), 0, 64, i < 3 ? t0 - 200 * MS : t0 + 2 * MS, 9);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_DROP_LATE, 3), "3 late drops");
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 3), "3 on time");
	CHECK(STREAM(9, dropped) == s + 3, "stream dropped");
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
	CHECK(ctr(RF_THREAD_TX, RF_C_LATE_PACKETS) == 1 && STREAM(10, late) == 1, "late counted");
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
	 * slots is not woken at once for fewer while the engine still holds one
	 * of its slots, but it does not sleep while slots are free either: it
	 * is woken within RF_LANE_WAKE_NS (1 ms) of the 8 coming back, not when
	 * the 9th comes back 200 ms later; and it is woken at 16 before the
	 * engine is done */
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
		CHECK(w.ready == 8, "woken with the 8 free, the 9th still in flight (ready %u)", w.ready);
		CHECK(w.woke_ns < t0 + 100 * MS, "woken %llu ms after the submit, not 200 ms later",
		      (unsigned long long)(w.woke_ns - t0) / MS);
		CHECK(ctr(RF_THREAD_TX, RF_C_TX_PACKETS) == base + 8, "8 sent, the 9th waits for its time");
		CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, base + 9), "9 sent");
		sleep_ms(2);

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
	mem = NULL;
	return t_result("engine_null");
}
