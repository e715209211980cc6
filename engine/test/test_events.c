/* SPDX-License-Identifier: MIT */
/*
 * The control channel (policy ring in, event ring out) against a main
 * thread that does not play by the rules, on the null backend:
 *
 * - an event ring nobody drains: the RX thread sleeps instead of spinning
 *   on the policy message it cannot ack (it looped at 100 % CPU), the
 *   message is acked once there is room, and a lane's quarantine event
 *   waits for room instead of being lost;
 * - a policy ring whose producer index jumps: not followed, counted as
 *   faults of the control channel and, past the limit, the channel is
 *   quarantined (no policy applied, relays keep their table) with an
 *   event, until a restart.
 */
#include "nullbed.h"

static struct rf_ring_cursor pol, ev;

static void policy_send(uint32_t seq)
{
	struct rf_policy_msg *m;
	uint32_t idx;

	REQUIRE(rf_ring_reserve(&pol, 1, &idx) == 1, "policy ring room");
	m = rf_ring_entry(&pol, idx);
	memset(m, 0, sizeof(*m));
	m->op = 0xdead; /* refused: acked with EOPNOTSUPP */
	m->seq = seq;
	rf_ring_submit(&pol);
	ring_doorbell(RF_THREAD_RX);
}

/* Events the main thread has not read. */
static uint32_t events_queued(void)
{
	return rf_ring_count(rf_ring_at(mem, h->event_off));
}

/* Drain the event ring; returns 1 if an event of `type` with `a` was seen,
 * and the ack of `seq` sets *acked. */
static int drain_events(uint32_t type, uint64_t a, uint32_t seq, int *acked)
{
	uint32_t idx, n;
	int seen = 0;

	while ((n = rf_ring_peek(&ev, 64, &idx)) != 0) {
		uint32_t k;

		for (k = 0; k < n; k++) {
			const struct rf_event *x = rf_ring_entry(&ev, idx + k);

			if (x->type == type && x->a == a)
				seen = 1;
			if (acked && x->type == RF_EVENT_POLICY_ACK && x->a == seq)
				*acked = 1;
		}
		rf_ring_release(&ev, n);
	}
	return seen;
}

static void full_event_ring(void)
{
	struct rf_engine *e;
	uint64_t cpu;
	uint32_t seq = 1, i;
	int seen = 0, acked = 0;

	region_new();
	e = make_engine(0, 0);
	rf_cursor_init_prod(&pol, rf_ring_at(mem, h->policy_off));
	rf_cursor_init_cons(&ev, rf_ring_at(mem, h->event_off));
	/* 64 acks fill the event ring; nobody reads it */
	while (seq <= params.event_entries) {
		if (rf_ring_prod_nb_free(&pol, 1))
			policy_send(seq++);
		else
			sleep_ms(1);
	}
	for (i = 0; i < 2000 && events_queued() < params.event_entries; i++)
		sleep_ms(1);
	REQUIRE(events_queued() == params.event_entries, "event ring full (%u)", events_queued());
	/* one more: it cannot be acked */
	policy_send(seq);
	sleep_ms(20);
	cpu = cpu_used(e, RF_THREAD_RX, 300);
	CHECK(cpu < 30 * MS, "the RX thread used %llu ms of CPU in 300 ms (it must sleep)",
	      (unsigned long long)cpu / MS);
	CHECK(ctr(RF_THREAD_RX, RF_C_POLICY_REJECTED) == params.event_entries,
	      "the 65th waits in its ring, unapplied");
	/* lane 1 is quarantined meanwhile: its event waits for room too */
	REQUIRE(quarantine_lane1(), "lane 1 quarantined");
	sleep_ms(20);
	CHECK(events_queued() == params.event_entries, "still full");
	/* room: the ack and the quarantine event follow */
	for (i = 0; i < 500 && !(seen && acked); i++) {
		seen |= drain_events(RF_EVENT_LANE_QUARANTINED, 1, seq, &acked);
		sleep_ms(1);
	}
	CHECK(acked, "the 65th acked once there was room");
	CHECK(seen, "the quarantine event posted once there was room");
	CHECK(LANE(2, taken) == params.event_entries + 1 && LANE(2, sent) == params.event_entries + 2 &&
		      LANE(2, dropped) == 0,
	      "control block: 65 taken, 66 events, none lost (%llu, %llu, %llu)",
	      (unsigned long long)LANE(2, taken), (unsigned long long)LANE(2, sent),
	      (unsigned long long)LANE(2, dropped));
	rf_engine_destroy(e);
}

static void policy_index_jumps(void)
{
	struct rf_engine *e;
	struct rf_ring *pr;
	uint32_t good, i;
	int seen = 0, acked = 0;

	region_new();
	e = make_engine(0, 0);
	rf_cursor_init_prod(&pol, rf_ring_at(mem, h->policy_off));
	rf_cursor_init_cons(&ev, rf_ring_at(mem, h->event_off));
	policy_send(1);
	for (i = 0; i < 500 && !acked; i++) {
		drain_events(0, 0, 1, &acked);
		sleep_ms(1);
	}
	REQUIRE(acked, "acked");
	pr = rf_ring_at(mem, h->policy_off);
	good = rf_load_acquire(&pr->producer);
	/* moved back over the message already applied: not applied again */
	rf_store_release(&pr->producer, good - 1);
	for (i = 0; i < 100; i++) {
		ring_doorbell(RF_THREAD_RX);
		sleep_ms(1);
	}
	CHECK(ctr(RF_THREAD_RX, RF_C_POLICY_REJECTED) == 1, "applied once (%llu)",
	      (unsigned long long)ctr(RF_THREAD_RX, RF_C_POLICY_REJECTED));
	CHECK(LANE(2, faults[RF_LANE_FAULT_SUBMIT_INDEX]) >= 1, "submit_index faults of the control channel (%llu)",
	      (unsigned long long)LANE(2, faults[RF_LANE_FAULT_SUBMIT_INDEX]));
	/* it keeps at it: quarantined, with an event naming the channel (lane_count) */
	for (i = 0; i < 2000 && LANE(2, state) != RF_LANE_QUARANTINED; i++) {
		ring_doorbell(RF_THREAD_RX);
		sleep_ms(1);
	}
	CHECK(LANE(2, state) == RF_LANE_QUARANTINED, "the control channel quarantined");
	for (i = 0; i < 500 && !seen; i++) {
		seen = drain_events(RF_EVENT_LANE_QUARANTINED, h->lane_count, 0, NULL);
		sleep_ms(1);
	}
	CHECK(seen, "RF_EVENT_LANE_QUARANTINED for the control channel");
	/* good again, but quarantined: no message applied until a restart */
	rf_store_release(&pr->producer, good);
	pol.local = good;
	policy_send(2);
	sleep_ms(30);
	CHECK(ctr(RF_THREAD_RX, RF_C_POLICY_REJECTED) == 1, "nothing applied while quarantined");
	CHECK(ctr(RF_THREAD_TX, RF_C_DESC_CONSUMED) == 0, "the TX thread was not involved");
	rf_engine_stop(e);
	engine_go(e);
	acked = 0;
	for (i = 0; i < 500 && !acked; i++) {
		drain_events(0, 0, 2, &acked);
		sleep_ms(1);
	}
	CHECK(acked && LANE(2, state) == RF_LANE_OK, "applied after a restart");
	rf_engine_destroy(e);
}

int main(void)
{
	full_event_ring();
	policy_index_jumps();
	free(mem);
	return t_result("events");
}
