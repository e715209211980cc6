/* SPDX-License-Identifier: MIT */
/*
 * Every packet counted exactly once, on the null backend: for each lane and
 * stream, taken = sent + dropped, each drop under one named reason, whatever
 * the port does.
 *
 * - a port that refuses frames: dropped once (drop_tx_error, the stream's
 *   and the lane's `dropped`), not also sent, and its slot comes back;
 * - a port that takes only part of a flush: the rest leaves on a deadline,
 *   with no further packet to push it; a port that takes nothing: the TX
 *   thread waits on the deadline instead of spinning;
 * - tx_time UINT64_MAX and a deadline past the 16 s horizon: dropped and
 *   counted (drop_bad_time) at once, their slots back, instead of waiting in
 *   the wheel forever (UINT64_MAX was never due and its slot was lost);
 * - a mixed batch of good and bad descriptors: the totals add up per lane,
 *   per stream and per thread counter, and every slot is back exactly once.
 */
#include "nullbed.h"

static struct rf_port *txport(struct rf_engine *e)
{
	return e->th[RF_THREAD_TX].port;
}

/* Wait up to 2 s for lane `lane` to have sent + dropped `n`. */
static int wait_done(uint32_t lane, uint64_t n)
{
	int i;

	for (i = 0; i < 2000; i++) {
		if (LANE(lane, sent) + LANE(lane, dropped) >= n)
			return 1;
		sleep_ms(1);
	}
	return 0;
}

static void refused_frames(void)
{
	struct rf_engine *e;
	uint32_t i;

	region_new();
	e = engine_create(0, 0);
	/* frames above 42 + 500 bytes are refused by the port */
	rf_port_null_faults(txport(e), UINT32_MAX, 0, 42 + 500);
	engine_go(e);
	for (i = 0; i < 10; i++)
		submit(0, alloc_slot(0), 0, (uint16_t)(i % 2 ? 1000 : 100), 0, 1);
	publish(0);
	CHECK(wait_done(0, 10), "10 done");
	sleep_ms(2);
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_PACKETS) == 5, "5 sent, not 10 (tx_packets %llu)",
	      (unsigned long long)ctr(RF_THREAD_TX, RF_C_TX_PACKETS));
	CHECK(ctr(RF_THREAD_TX, RF_C_DROP_TX_ERROR) == 5, "5 refused: drop_tx_error %llu",
	      (unsigned long long)ctr(RF_THREAD_TX, RF_C_DROP_TX_ERROR));
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_DEVICE_ERRORS) == 0, "not device errors");
	CHECK(STREAM(1, packets) == 5 && STREAM(1, dropped) == 5, "stream 1: 5 sent + 5 dropped");
	CHECK(STREAM(1, bytes) == 5 * (42 + 100), "stream bytes are the sent ones only");
	CHECK(LANE(0, taken) == 10 && LANE(0, sent) == 5 && LANE(0, dropped) == 5,
	      "lane 0: 10 taken = 5 sent + 5 dropped");
	CHECK(rf_port_null_flushed(txport(e)) == 5, "the port flushed the 5 it took");
	CHECK(free_count(0) == params.slots_per_lane, "every slot back (%u)", free_count(0));
	rf_engine_destroy(e);
	CHECK(slots_conserved(0), "lane 0's slots each on the free ring once");
}

/* A fresh engine whose null port pushes back (rf_port_null_faults), with
 * n packets for now from lane 0 on `stream`, published. */
static struct rf_engine *pushing_back(uint32_t flush_max, uint32_t ring, uint32_t n, uint32_t stream)
{
	struct rf_engine *e;
	uint32_t i;

	region_new();
	e = engine_create(0, 0);
	rf_port_null_faults(txport(e), flush_max, ring, 0);
	engine_go(e);
	for (i = 0; i < n; i++)
		submit(0, alloc_slot(0), 2, 64, 0, stream);
	publish(0);
	return e;
}

/* CPU a thread that waits on its 50 us retry deadline may use in 300 ms:
 * one that spins uses all of it. Sanitizers make each wakeup several times
 * dearer, and the host is shared, hence the wider bound there. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define CPU_BOUND_MS 250
#else
#define CPU_BOUND_MS 100
#endif

static void partial_flush(void)
{
	struct rf_engine *e;
	uint64_t t0, cpu, sleeps;
	uint32_t i;

	/* a flush takes 7 frames: the other 33 wait in the port */
	e = pushing_back(7, 0, 40, 2);
	/* nothing else is submitted: the retry deadline alone gets them out */
	t0 = rf_now_ns();
	CHECK(wait_flushed(e, 40) == 40, "all 40 left (%llu) in %llu ms, no packet pushing them",
	      (unsigned long long)rf_port_null_flushed(txport(e)),
	      (unsigned long long)(rf_now_ns() - t0) / MS);
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_FLUSHES) >= 6, "at least 6 flushes for 40 frames at 7 each (%llu)",
	      (unsigned long long)ctr(RF_THREAD_TX, RF_C_TX_FLUSHES));

	/* a device that takes nothing: the frames stay, and the TX thread
	 * waits on its retry deadline (it does not spin on the port) */
	rf_port_null_faults(txport(e), 0, 0, 0);
	for (i = 0; i < 20; i++)
		submit(0, alloc_slot(0), 2, 64, 0, 2);
	publish(0);
	sleep_ms(20);
	sleeps = ctr(RF_THREAD_TX, RF_C_SLEEPS);
	cpu = cpu_used(e, RF_THREAD_TX, 300);
	sleeps = ctr(RF_THREAD_TX, RF_C_SLEEPS) - sleeps;
	/* it sleeps to each retry deadline: a spinning thread never sleeps */
	CHECK(sleeps >= 50, "the TX thread slept %llu times in 300 ms against a refusing port",
	      (unsigned long long)sleeps);
	CHECK(cpu < CPU_BOUND_MS * MS, "the TX thread used %llu ms of CPU in 300 ms against a refusing port",
	      (unsigned long long)cpu / MS);
	CHECK(rf_port_null_flushed(txport(e)) == 40, "none of the 20 left while refused");
	/* and they leave once the device takes frames again */
	rf_port_null_faults(txport(e), UINT32_MAX, 0, 0);
	CHECK(wait_flushed(e, 60) == 60, "the 20 left once the port took frames (%llu)",
	      (unsigned long long)rf_port_null_flushed(txport(e)));
	CHECK(LANE(0, taken) == 60 && LANE(0, sent) == 60 && LANE(0, dropped) == 0, "60 = 60 sent");
	rf_engine_destroy(e);
	CHECK(slots_conserved(0), "slots conserved");
}

static void full_port_ring(void)
{
	struct rf_engine *e;

	/* a port ring of 16 frames that the device empties 5 at a time: the
	 * engine's own pending packets (TX ring full) wait for room on the
	 * retry deadline and all leave, each once */
	e = pushing_back(5, 16, 60, 3);
	CHECK(wait_flushed(e, 60) == 60, "60 through a 16-frame ring (%llu)",
	      (unsigned long long)rf_port_null_flushed(txport(e)));
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_RING_FULL) > 0, "the ring was full (%llu times)",
	      (unsigned long long)ctr(RF_THREAD_TX, RF_C_TX_RING_FULL));
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_PACKETS) == 60 && STREAM(3, packets) == 60 &&
		      LANE(0, sent) == 60, "each counted once as sent");
	rf_engine_destroy(e);
	CHECK(slots_conserved(0), "slots conserved");
}

static void bad_times(void)
{
	struct rf_engine *e;
	uint64_t now;
	uint32_t i;

	region_new();
	e = make_engine(0, 0);
	now = rf_now_ns();
	submit(0, alloc_slot(0), 0, 64, UINT64_MAX, 4);
	submit(0, alloc_slot(0), 0, 64, now + 20000 * MS, 4); /* 20 s: past the horizon */
	publish(0);
	/* with nothing else to send, their slots still come back at once */
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_DROP_BAD_TIME, 2), "2 dropped for their time (%llu)",
	      (unsigned long long)ctr(RF_THREAD_TX, RF_C_DROP_BAD_TIME));
	for (i = 0; i < 100 && free_count(0) != params.slots_per_lane; i++)
		sleep_ms(1);
	CHECK(free_count(0) == params.slots_per_lane, "their slots back with nothing sent (%u free)",
	      free_count(0));
	submit(0, alloc_slot(0), 0, 64, now + 15000 * MS, 4); /* 15 s: waits in the wheel */
	submit(0, alloc_slot(0), 0, 64, 0, 4);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 1), "the one for now sent");
	sleep_ms(2);
	CHECK(STREAM(4, dropped) == 2 && STREAM(4, packets) == 1, "stream: 2 dropped, 1 sent");
	CHECK(LANE(0, taken) == 4 && LANE(0, sent) == 1 && LANE(0, dropped) == 2,
	      "lane: 4 taken, 1 sent, 2 dropped, 1 in flight");
	CHECK(free_count(0) == params.slots_per_lane - 1,
	      "their slots back at once, the 15 s one held (%u free)", free_count(0));
	rf_engine_stop(e);
	CHECK(free_count(0) == params.slots_per_lane - 1, "held across a stop");
	engine_go(e);
	rf_engine_destroy(e);
	CHECK(slots_conserved(0), "and back at destroy, once");
}

/* A batch of every kind: per lane, per stream and per thread counter the
 * totals add up, and nothing is counted twice. */
static void mixed_batch(void)
{
	struct rf_engine *e;
	uint64_t drops = 0, now;
	uint32_t i, n = 0;
	static const int drop_counters[] = { RF_C_DROP_BAD_SLOT, RF_C_DROP_BAD_DEST, RF_C_DROP_BAD_LEN,
					     RF_C_DROP_LATE, RF_C_DROP_TX_ERROR, RF_C_DROP_BAD_TIME };

	region_new();
	e = engine_create(10 * MS, 0);
	rf_port_null_faults(txport(e), UINT32_MAX, 0, 42 + 1000);
	engine_go(e);
	now = rf_now_ns();
	for (i = 0; i < 50; i++, n++) {
		switch (i % 8) {
		case 0: submit(0, 64 + 1, 0, 64, 0, 5); break;                 /* lane 1's slot */
		case 1: submit(0, alloc_slot(0), 9, 64, 0, 6); break;          /* lane 1's dest */
		case 2: submit(0, alloc_slot(0), 0, 1500, 0, 7); break;        /* too long */
		case 3: submit(0, alloc_slot(0), 0, 64, now - 50 * MS, 8); break; /* late */
		case 4: submit(0, alloc_slot(0), 0, 1100, 0, 9); break;        /* refused */
		case 5: submit(0, alloc_slot(0), 0, 64, UINT64_MAX - 1, 10); break;
		default: submit(0, alloc_slot(0), i % 2 ? 1 : 0, 200, 0, 11); break;
		}
	}
	publish(0);
	CHECK(wait_done(0, n), "all %u done", n);
	sleep_ms(2);
	for (i = 0; i < sizeof(drop_counters) / sizeof(drop_counters[0]); i++)
		drops += ctr(RF_THREAD_TX, drop_counters[i]);
	CHECK(LANE(0, taken) == n && LANE(0, sent) + LANE(0, dropped) == n,
	      "lane 0: taken %llu = sent %llu + dropped %llu", (unsigned long long)LANE(0, taken),
	      (unsigned long long)LANE(0, sent), (unsigned long long)LANE(0, dropped));
	CHECK(drops == LANE(0, dropped), "each drop under one reason (%llu reasons, %llu dropped)",
	      (unsigned long long)drops, (unsigned long long)LANE(0, dropped));
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_PACKETS) == LANE(0, sent), "tx_packets = the lane's sent");
	CHECK(ctr(RF_THREAD_TX, RF_C_DESC_CONSUMED) == n, "desc_consumed = taken");
	{
		uint64_t sp = 0, sd = 0;

		for (i = 5; i <= 11; i++) {
			sp += STREAM(i, packets);
			sd += STREAM(i, dropped);
		}
		CHECK(sp == LANE(0, sent) && sd == LANE(0, dropped), "streams: %llu + %llu",
		      (unsigned long long)sp, (unsigned long long)sd);
		CHECK(STREAM(11, dropped) == 0 && STREAM(11, packets) == 12, "the good ones all sent");
		CHECK(STREAM(5, dropped) == 7 && STREAM(6, dropped) == 7 && STREAM(7, dropped) == 6 &&
			      STREAM(8, dropped) == 6 && STREAM(9, dropped) == 6 && STREAM(10, dropped) == 6,
		      "each bad one dropped under its stream");
	}
	CHECK(ctr(RF_THREAD_TX, RF_C_DROP_BAD_SLOT) == 7 && ctr(RF_THREAD_TX, RF_C_DROP_BAD_DEST) == 7 &&
		      ctr(RF_THREAD_TX, RF_C_DROP_BAD_LEN) == 6 && ctr(RF_THREAD_TX, RF_C_DROP_LATE) == 6 &&
		      ctr(RF_THREAD_TX, RF_C_DROP_TX_ERROR) == 6 && ctr(RF_THREAD_TX, RF_C_DROP_BAD_TIME) == 6,
	      "by reason");
	rf_engine_destroy(e);
	CHECK(slots_conserved(0) && slots_conserved(1), "slots conserved in both lanes");
}

int main(void)
{
	refused_frames();
	partial_flush();
	full_port_ring();
	bad_times();
	mixed_batch();
	free(mem);
	return t_result("accounting");
}
