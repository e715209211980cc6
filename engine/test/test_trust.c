/* SPDX-License-Identifier: MIT */
/*
 * A lane that breaks the rules of the region (region.h "Trust") loses only
 * its own packets, counted; the engine reads and writes nothing outside the
 * region, sends nothing twice, returns no slot twice, and the other lanes
 * keep running. On the null backend:
 *
 * - a header whose parts are outside the region or overlap (bad output
 *   counters, lane counters, pool, lanes) is refused, naming the field;
 * - a producer index moved backwards is not followed: nothing is sent
 *   again, no slot comes back twice (a submit_index fault);
 * - a slot submitted twice, or one still on the free ring, is dropped and
 *   not returned: every slot is on its free ring exactly once at the end;
 * - descriptors rewritten while the engine reads them (another thread
 *   writing random slots, destinations and lengths into the ring): no read
 *   outside the region (ASan), every descriptor taken counted once;
 * - a consumer index of the free ring that lies is not followed;
 * - a destination entry held mid-write: its last complete version is used,
 *   or with none the packet is dropped (dest_torn);
 * - past 32 faults a second the lane is quarantined with an event, the other
 *   lane keeps running, and a restart takes the lane back.
 */
#include "nullbed.h"

static struct rf_engine *try_create(char *err, size_t errlen)
{
	struct rf_engine_config cfg;
	struct rf_engine *e = NULL;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = RF_BACKEND_NULL;
	cfg.ifname = "null0";
	cfg.cpu_tx = cfg.cpu_rx = -1;
	rc = rf_engine_create(&e, mem, region_size, &cfg, err, errlen);
	return rc ? NULL : e;
}

/* Corrupt one header field, expect the engine to refuse it naming `what`. */
#define BAD_HEADER(field, value, what)                                                    \
	do {                                                                               \
		uint32_t keep = h->field;                                                  \
		char err[256] = "";                                                        \
		struct rf_engine *e;                                                       \
                                                                                           \
		h->field = (value);                                                        \
		e = try_create(err, sizeof(err));                                          \
		CHECK(!e && strstr(err, what), #field " = %u refused naming \"%s\": '%s'", \
		      (unsigned)(value), what, err);                                       \
		if (e)                                                                     \
			rf_engine_destroy(e);                                              \
		h->field = keep;                                                           \
	} while (0)

static void bad_headers(void)
{
	char err[256] = "";
	struct rf_engine *e;

	region_new();
	BAD_HEADER(output_counters_off, region_size - 16, "output counters");
	BAD_HEADER(max_outputs, 1u << 30, "output counters");
	BAD_HEADER(max_outputs, 0, "output counters");
	/* inside the region, but on top of lane 0's rings: the RX thread would
	 * write its output counters into the engine's own input */
	BAD_HEADER(output_counters_off, h->lanes[0].submit_off, "output_counters_off");
	BAD_HEADER(lane_counters_off, region_size, "lane counters");
	BAD_HEADER(lane_counters_off, h->dest_off, "lane_counters_off");
	BAD_HEADER(stream_counters_off, h->event_off, "stream_counters_off");
	BAD_HEADER(pool_off, h->pool_off + RF_PAGE, "pool");
	BAD_HEADER(pool_off, h->pool_off - RF_PAGE, "pool_off");
	BAD_HEADER(lanes[1].free_off, h->lanes[0].free_off, "lane 1");
	BAD_HEADER(lanes[1].slot_first, 0, "lane 1");
	BAD_HEADER(free_entries, 128, "free_entries");
	BAD_HEADER(policy_off, h->event_off, "policy_off");
	/* and the intact header still goes */
	e = try_create(err, sizeof(err));
	CHECK(e != NULL, "the intact header is accepted: %s", err);
	rf_engine_destroy(e);
}

/* Are the entries on lane `lane`'s free ring all different slots of it? */
static int free_ring_distinct(int lane)
{
	struct rf_ring *r = rf_ring_at(mem, h->lanes[lane].free_off);
	uint32_t first = h->lanes[lane].slot_first, cnt = rf_ring_count(r), k;
	uint32_t cons = rf_load_acquire(&r->consumer);
	uint8_t seen[65536];

	if (cnt > h->lanes[lane].slot_count)
		return 0;
	memset(seen, 0, sizeof(seen));
	for (k = 0; k < cnt; k++) {
		uint32_t s = ((uint32_t *)((uint8_t *)r + sizeof(*r)))[(cons + k) & r->mask] - first;

		if (s >= h->lanes[lane].slot_count || seen[s]++)
			return 0;
	}
	return 1;
}

static void producer_backwards(void)
{
	struct rf_engine *e;
	struct rf_ring *sr;
	uint32_t i, good;

	region_new();
	e = make_engine(0, 0);
	for (i = 0; i < 10; i++)
		submit(0, alloc_slot(0), 0, 64, 0, 1);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 10), "10 sent");
	sleep_ms(5);
	sr = rf_ring_at(mem, h->lanes[0].submit_off);
	good = rf_load_acquire(&sr->producer);
	/* the lane moves its producer index back over 5 taken descriptors */
	rf_store_release(&sr->producer, good - 5);
	ring_doorbell(RF_THREAD_TX);
	sleep_ms(20);
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_PACKETS) == 10, "nothing sent again (tx_packets %llu)",
	      (unsigned long long)ctr(RF_THREAD_TX, RF_C_TX_PACKETS));
	CHECK(ctr(RF_THREAD_TX, RF_C_DESC_CONSUMED) == 10, "nothing taken again");
	CHECK(LANE(0, faults[RF_LANE_FAULT_SUBMIT_INDEX]) >= 1, "a submit_index fault (%llu)",
	      (unsigned long long)LANE(0, faults[RF_LANE_FAULT_SUBMIT_INDEX]));
	CHECK(free_count(0) == params.slots_per_lane && free_ring_distinct(0),
	      "no slot came back twice (%u on the free ring)", free_count(0));
	/* and a jump far ahead is not followed either */
	rf_store_release(&sr->producer, good + 100000);
	ring_doorbell(RF_THREAD_TX);
	sleep_ms(10);
	CHECK(ctr(RF_THREAD_TX, RF_C_DESC_CONSUMED) == 10, "nothing taken from a jump ahead");
	/* back in range: the lane goes on */
	rf_store_release(&sr->producer, good);
	for (i = 0; i < 5; i++)
		submit(0, alloc_slot(0), 0, 64, 0, 1);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 15), "5 more sent after it came back");
	CHECK(LANE(0, state) == RF_LANE_OK, "a few faults: not quarantined");
	rf_engine_destroy(e);
	CHECK(slots_conserved(0), "slots conserved");
}

static void duplicate_slots(void)
{
	struct rf_engine *e;
	uint32_t x, y, idx, next;

	region_new();
	e = make_engine(0, 0);
	/* a busy lane: it holds y, and submits x twice */
	x = alloc_slot(0);
	y = alloc_slot(0);
	submit(0, x, 0, 64, 0, 2);
	submit(0, x, 0, 64, 0, 2);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_DROP_BAD_SLOT, 1), "the second one dropped");
	sleep_ms(5);
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_PACKETS) == 1, "sent once (%llu)",
	      (unsigned long long)ctr(RF_THREAD_TX, RF_C_TX_PACKETS));
	CHECK(LANE(0, faults[RF_LANE_FAULT_SLOT_NOT_HELD]) == 1, "a slot_not_held fault");
	CHECK(free_count(0) == params.slots_per_lane - 1 && free_ring_distinct(0),
	      "x back once: %u on the ring, all different", free_count(0));
	/* a slot still on the free ring (the lane never took it) */
	REQUIRE(rf_ring_peek(&lane_free[0], 1, &idx) == 1, "a free slot");
	next = *(uint32_t *)rf_ring_entry(&lane_free[0], idx);
	submit(0, next, 0, 64, 0, 2);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_DROP_BAD_SLOT, 2), "a slot on the free ring is not the lane's to send");
	sleep_ms(5);
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_PACKETS) == 1, "and not sent");
	CHECK(free_count(0) == params.slots_per_lane - 1 && free_ring_distinct(0), "nor returned twice");
	/* now it takes it, and sends it: fine */
	REQUIRE(alloc_slot(0) == next, "take it");
	submit(0, next, 0, 64, 0, 2);
	submit(0, y, 0, 64, 0, 2);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 3), "sent once taken");
	CHECK(LANE(0, taken) == 5 && LANE(0, sent) == 3 && LANE(0, dropped) == 2, "5 = 3 + 2");
	rf_engine_destroy(e);
	CHECK(slots_conserved(0), "every slot once on its free ring");
}

#ifndef __SANITIZE_THREAD__
/* The hostile part of lane 1: writes random slots, destinations, lengths
 * and times into every entry of its submit ring, as fast as it can. */
static atomic_int racer_stop;

static void *racer(void *arg)
{
	struct rf_desc *ring = (struct rf_desc *)((uint8_t *)rf_ring_at(mem, h->lanes[1].submit_off) +
						  sizeof(struct rf_ring));
	uint32_t n = h->submit_entries, x = 12345, k = 0;

	(void)arg;
	while (!atomic_load(&racer_stop)) {
		struct rf_desc *d = &ring[k++ & (n - 1)];
		volatile uint32_t *w = (volatile uint32_t *)d;

		x = x * 1103515245u + 12345u;
		switch (x >> 29) {
		case 0: w[2] = x; break;                         /* slot: anything */
		case 1: w[2] = 64 + (x >> 8) % 64; break;       /* slot: one of the lane's */
		case 2: w[4] = x; break;                         /* dest: anything */
		case 3: w[4] = 8 + (x >> 8) % 8; break;         /* dest: one of the lane's */
		case 4: w[3] = x; break;                         /* len and flags */
		case 5: w[0] = x; w[1] = x >> 3; break;          /* tx_time */
		default: w[5] = x; break;                        /* stream */
		}
	}
	return NULL;
}

static void rewritten_descriptors(void)
{
	struct rf_engine *e;
	pthread_t th;
	uint64_t t0;
	uint32_t sent0 = 0, seq1 = 0, restarts = 0, i;

	region_new();
	e = make_engine(0, 0);
	atomic_store(&racer_stop, 0);
	REQUIRE(pthread_create(&th, NULL, racer, NULL) == 0, "racer");
	t0 = rf_now_ns();
	while (rf_now_ns() - t0 < 300 * MS) {
		/* lane 1 fills its ring: with the slots it has, else with any of
		 * its slot numbers (the racer rewrites them anyway); lane 0 plays
		 * by the rules */
		while (rf_ring_prod_nb_free(&lane_sub[1], 1)) {
			uint32_t slot = rf_ring_peek(&lane_free[1], 1, &i) ? alloc_slot(1) : 64 + seq1 % 64;

			submit(1, slot, 8 + seq1++ % 8, 100, 0, 7);
		}
		publish(1);
		for (i = 0; i < 8 && free_count(0) > 0; i++, sent0++)
			submit(0, alloc_slot(0), 0, 100, 0, 3);
		publish(0);
		sleep_ms(1);
		/* quarantined soon: a restart takes lane 1 back, so the engine
		 * keeps reading what the racer writes */
		if (LANE(1, state) == RF_LANE_QUARANTINED) {
			rf_engine_stop(e);
			engine_go(e);
			restarts++;
		}
	}
	atomic_store(&racer_stop, 1);
	pthread_join(th, NULL);
	/* quiescence: lane 0's last packets leave */
	for (i = 0; i < 2000 && LANE(0, sent) < sent0; i++)
		sleep_ms(1);
	sleep_ms(20);
	CHECK(LANE(0, taken) == sent0 && LANE(0, sent) == sent0 && LANE(0, dropped) == 0,
	      "lane 0 untouched: %u submitted, %llu taken, %llu sent, %llu dropped", sent0,
	      (unsigned long long)LANE(0, taken), (unsigned long long)LANE(0, sent),
	      (unsigned long long)LANE(0, dropped));
	CHECK(STREAM(3, packets) >= sent0, "lane 0's stream");
	/* what was taken of lane 1 is counted once: sent, dropped, or still
	 * waiting for a time the racer wrote (at most 16 s ahead) */
	CHECK(LANE(1, taken) >= LANE(1, sent) + LANE(1, dropped), "lane 1: nothing counted twice");
	CHECK(ctr(RF_THREAD_TX, RF_C_DESC_CONSUMED) == LANE(0, taken) + LANE(1, taken),
	      "desc_consumed = what the lanes' blocks say");
	CHECK(ctr(RF_THREAD_TX, RF_C_TX_PACKETS) == LANE(0, sent) + LANE(1, sent), "tx_packets too");
	CHECK(free_ring_distinct(1), "lane 1's free ring holds no slot twice");
	rf_engine_destroy(e);
	CHECK(slots_conserved(0), "lane 0's slots each once on its free ring");
	CHECK(free_ring_distinct(1), "lane 1's too, after destroy");
	t_comment("lane 1: %llu taken, %llu sent, %llu dropped, faults slot %llu not_held %llu dest %llu, %u restarts, %s",
		  (unsigned long long)LANE(1, taken), (unsigned long long)LANE(1, sent),
		  (unsigned long long)LANE(1, dropped), (unsigned long long)LANE(1, faults[RF_LANE_FAULT_SLOT]),
		  (unsigned long long)LANE(1, faults[RF_LANE_FAULT_SLOT_NOT_HELD]),
		  (unsigned long long)LANE(1, faults[RF_LANE_FAULT_DEST]), restarts,
		  LANE(1, state) == RF_LANE_QUARANTINED ? "quarantined" : "not quarantined");
}
#endif

static void free_consumer_lies(void)
{
	struct rf_engine *e;
	struct rf_ring *fr;
	uint32_t i, c, held[8], idx, next;

	region_new();
	e = make_engine(0, 0);
	fr = rf_ring_at(mem, h->lanes[0].free_off);
	for (i = 0; i < 8; i++)
		held[i] = alloc_slot(0);
	for (i = 0; i < 4; i++)
		submit(0, held[i], 0, 64, 0, 1);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 4), "4 sent");
	/* the lane claims to have taken 1000 more slots than were published,
	 * and names one still on its free ring */
	c = rf_load_acquire(&fr->consumer);
	rf_store_release(&fr->consumer, c + 1000);
	REQUIRE(rf_ring_peek(&lane_free[0], 1, &idx) == 1, "a slot on the ring");
	next = *(uint32_t *)rf_ring_entry(&lane_free[0], idx);
	submit(0, next, 0, 64, 0, 1);
	for (i = 4; i < 8; i++)
		submit(0, held[i], 0, 64, 0, 1);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 8), "the 4 it holds still leave");
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_DROP_BAD_SLOT, 1), "the one it claims is dropped");
	CHECK(LANE(0, faults[RF_LANE_FAULT_FREE_INDEX]) >= 1, "a free_index fault (%llu)",
	      (unsigned long long)LANE(0, faults[RF_LANE_FAULT_FREE_INDEX]));
	CHECK(LANE(0, faults[RF_LANE_FAULT_SLOT_NOT_HELD]) == 1, "and a slot_not_held one");
	/* lane 1 is not affected at all */
	for (i = 0; i < 5; i++)
		submit(1, alloc_slot(1), 8, 64, 0, 2);
	publish(1);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 13), "lane 1 sends");
	CHECK(LANE(1, faults[RF_LANE_FAULT_FREE_INDEX]) == 0 && LANE(1, dropped) == 0,
	      "and has no fault");
	/* the truth again: lane 0 goes on */
	rf_store_release(&fr->consumer, c);
	submit(0, alloc_slot(0), 0, 64, 0, 1);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 14), "lane 0 once its index is true again");
	rf_engine_destroy(e);
	CHECK(slots_conserved(0) && slots_conserved(1), "slots conserved");
}

static void dest_mid_write(void)
{
	struct rf_engine *e;
	struct rf_dest *dests;

	region_new();
	e = make_engine(0, 0);
	dests = (struct rf_dest *)(mem + h->dest_off);
	/* dest 3 has been sent to: the engine has a complete version of it */
	submit(0, alloc_slot(0), 3, 64, 0, 4);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 1), "sent to dest 3");
	/* writers stuck mid-write of dest 2 (never sent to) and dest 3 */
	rf_store_release(&dests[2].gen, rf_load_acquire(&dests[2].gen) + 1);
	rf_store_release(&dests[3].gen, rf_load_acquire(&dests[3].gen) + 1);
	submit(0, alloc_slot(0), 3, 64, 0, 4);
	submit(0, alloc_slot(0), 2, 64, 0, 4);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 2), "dest 3: its last complete version");
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_DROP_BAD_DEST, 1), "dest 2: no complete version, dropped");
	CHECK(LANE(0, faults[RF_LANE_FAULT_DEST_TORN]) == 1, "one dest_torn fault (%llu)",
	      (unsigned long long)LANE(0, faults[RF_LANE_FAULT_DEST_TORN]));
	/* the writer finishes: the new version is used */
	write_dest(2, 7002);
	submit(0, alloc_slot(0), 2, 64, 0, 4);
	publish(0);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 3), "dest 2 once written");
	rf_engine_stop(e); /* the TX thread's templates are its own: read them once it is joined */
	CHECK(e->tpl[2].gen == rf_load_acquire(&dests[2].gen) && e->tpl[2].hlen == 42,
	      "its template is the new version (gen %u)", e->tpl[2].gen);
	rf_engine_destroy(e);
	CHECK(slots_conserved(0), "slots conserved");
}

static void quarantine(void)
{
	struct rf_ring_cursor ev;
	struct rf_engine *e;
	uint32_t i, idx, n, found = 0;

	region_new();
	e = make_engine(0, 0);
	rf_cursor_init_cons(&ev, rf_ring_at(mem, h->event_off));
	/* lane 1 names lane 0's slot 0, 40 times */
	CHECK(quarantine_lane1(), "lane 1 quarantined");
	CHECK(LANE(1, taken) == RF_LANE_FAULT_LIMIT + 1 &&
		      LANE(1, faults[RF_LANE_FAULT_SLOT]) == RF_LANE_FAULT_LIMIT + 1,
	      "at fault %u (taken %llu)", RF_LANE_FAULT_LIMIT + 1, (unsigned long long)LANE(1, taken));
	CHECK(LANE(1, dropped) == LANE(1, taken), "every one dropped");
	for (i = 0; i < 200 && !found; i++) {
		n = rf_ring_peek(&ev, 16, &idx);
		while (n--) {
			struct rf_event *x = rf_ring_entry(&ev, idx++);

			if (x->type == RF_EVENT_LANE_QUARANTINED && x->a == 1 &&
			    x->b == RF_LANE_FAULT_SLOT && x->c == RF_LANE_FAULT_LIMIT + 1)
				found = 1;
			rf_ring_release(&ev, 1);
		}
		sleep_ms(1);
	}
	CHECK(found, "RF_EVENT_LANE_QUARANTINED (lane 1, fault slot, 33 faults) posted");
	/* lane 0 keeps running; lane 1's descriptors wait untaken */
	for (i = 0; i < 10; i++)
		submit(0, alloc_slot(0), 0, 64, 0, 6);
	publish(0);
	for (i = 0; i < 5; i++)
		submit(1, alloc_slot(1), 8, 64, 0, 7);
	publish(1);
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 10), "lane 0 sends on");
	sleep_ms(10);
	CHECK(LANE(1, taken) == RF_LANE_FAULT_LIMIT + 1 && STREAM(7, packets) == 0,
	      "nothing more taken from lane 1");
	/* a restart takes it back: the 7 bad ones left are dropped (7 faults,
	 * below the limit), the 5 good ones sent */
	rf_engine_stop(e);
	engine_go(e);
	CHECK(LANE(1, state) == RF_LANE_OK, "lane 1 back after a restart");
	CHECK(wait_ctr(RF_THREAD_TX, RF_C_TX_PACKETS, 15), "its good packets sent");
	sleep_ms(5);
	CHECK(LANE(1, taken) == 45 && LANE(1, sent) == 5 && LANE(1, dropped) == 40, "45 = 5 + 40");
	CHECK(LANE(1, state) == RF_LANE_OK, "and not quarantined again");
	rf_engine_destroy(e);
	CHECK(slots_conserved(0) && slots_conserved(1), "slots conserved");
}

int main(void)
{
	bad_headers();
	producer_backwards();
	duplicate_slots();
#ifndef __SANITIZE_THREAD__
	rewritten_descriptors();
#endif
	free_consumer_lies();
	dest_mid_write();
	quarantine();
	free(mem);
	return t_result("trust");
}
