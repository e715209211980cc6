/* SPDX-License-Identifier: MIT */
/*
 * Region layout, init and check (region.h): parts page aligned and in map
 * order, lanes' slices disjoint, free rings start full of their slots,
 * version written, bad parameters refused with a message naming the
 * parameter, rf_region_check catching bad magic/version/size.
 */
#include <string.h>

#include "reflector/ring.h"
#include "testlib.h"

static const struct rf_region_params good = {
	.lanes = 3, .slots_per_lane = 64, .slot_size = 2048, .submit_entries = 128,
	.dests_per_lane = 10, .policy_entries = 16, .event_entries = 64,
	.max_streams = 100, .max_outputs = 50,
};

static void bad_param(const char *name, void (*mut)(struct rf_region_params *))
{
	struct rf_region_params p = good;
	struct rf_region_layout l;
	char err[256] = "";

	mut(&p);
	CHECK(rf_region_layout(&p, &l, err, sizeof(err)) == -1, "%s refused", name);
	CHECK(strstr(err, name) != NULL, "message names %s: '%s'", name, err);
}

static void m_lanes0(struct rf_region_params *p) { p->lanes = 0; }
static void m_lanes65(struct rf_region_params *p) { p->lanes = 65; }
static void m_slots(struct rf_region_params *p) { p->slots_per_lane = 100; }
static void m_slotsize(struct rf_region_params *p) { p->slot_size = 256; }
static void m_submit(struct rf_region_params *p) { p->submit_entries = 3; }
static void m_dests(struct rf_region_params *p) { p->dests_per_lane = 0; }
static void m_policy(struct rf_region_params *p) { p->policy_entries = 17; }
static void m_events(struct rf_region_params *p) { p->event_entries = 1u << 20; }
static void m_streams(struct rf_region_params *p) { p->max_streams = 0; }
static void m_outputs(struct rf_region_params *p) { p->max_outputs = 0; }

int main(void)
{
	struct rf_region_layout l;
	struct rf_region_hdr *h;
	char err[256];
	uint8_t *mem;
	uint32_t i, s;

	REQUIRE(rf_region_layout(&good, &l, err, sizeof(err)) == 0, "layout: %s", err);
	CHECK(l.size % RF_PAGE == 0, "size page aligned");
	{
		uint32_t offs[] = { l.counters_off, l.lanes_off, l.policy_off, l.event_off,
				    l.dest_off, l.stream_counters_off, l.output_counters_off,
				    l.lane_counters_off, l.pool_off };

		CHECK(l.counters_off >= RF_PAGE, "header first");
		for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
			CHECK(offs[i] % RF_PAGE == 0, "part %u page aligned", i);
			if (i)
				CHECK(offs[i] > offs[i - 1], "part %u after part %u", i, i - 1);
		}
		CHECK(l.pool_off + good.lanes * good.slots_per_lane * good.slot_size <= l.size,
		      "pool fits");
	}

	mem = aligned_alloc(RF_PAGE, l.size);
	REQUIRE(mem, "alloc");
	memset(mem, 0xee, l.size);
	CHECK(rf_region_check(mem, l.size, err, sizeof(err)) == -1 && strstr(err, "magic"),
	      "uninitialised region refused: %s", err);
	REQUIRE(rf_region_init(mem, l.size, &good, err, sizeof(err)) == 0, "init: %s", err);
	CHECK(rf_region_check(mem, l.size, err, sizeof(err)) == 0, "check: %s", err);
	h = rf_hdr(mem);
	CHECK(h->version == (RF_VERSION_MAJOR << 16 | RF_VERSION_MINOR), "version");
	CHECK(h->lane_count == 3 && h->slot_count == 192 && h->dest_count == 30, "counts");
	CHECK(h->lane_claim == 1, "workers claim from lane 1");
	CHECK(h->lane_counters_off == l.lane_counters_off &&
		      l.pool_off - l.lane_counters_off == RF_PAGE,
	      "lane counters: %u + 1 blocks of 128 bytes in one page", good.lanes);
	for (i = 0; i <= good.lanes; i++)
		CHECK(rf_lane_counters(mem, h, i)->state == RF_LANE_OK &&
			      rf_lane_counters(mem, h, i)->taken == 0,
		      "lane %u counters start at zero", i);
	for (i = 0; i < RF_MAX_THREADS; i++)
		CHECK(h->doorbell[i].fd == -1, "doorbell %u closed", i);
	for (i = 0; i < good.lanes; i++) {
		struct rf_lane *ln = &h->lanes[i];
		struct rf_ring *fr = rf_ring_at(mem, ln->free_off), *sr = rf_ring_at(mem, ln->submit_off);
		struct rf_ring_cursor c;
		uint32_t idx, n;

		CHECK(ln->slot_first == i * 64 && ln->slot_count == 64, "lane %u slots", i);
		CHECK(ln->dest_first == i * 10 && ln->dest_count == 10, "lane %u dests", i);
		CHECK(sr->entries == 128 && sr->entry_size == sizeof(struct rf_desc), "submit ring");
		CHECK(rf_ring_count(sr) == 0, "submit ring empty");
		CHECK(fr->entries == 64 && fr->entry_size == 4 && rf_ring_count(fr) == 64,
		      "free ring full");
		rf_cursor_init_cons(&c, fr);
		n = rf_ring_peek(&c, 64, &idx);
		CHECK(n == 64, "64 free slots");
		for (s = 0; s < n; s++)
			CHECK(*(uint32_t *)rf_ring_entry(&c, idx + s) == ln->slot_first + s,
			      "lane %u free slot %u", i, s);
		CHECK((uint8_t *)fr + sizeof(*fr) + 64 * 4 <= mem + h->policy_off, "ring in bounds");
	}
	CHECK(rf_slot_data(mem, h, 191) + good.slot_size - RF_SLOT_HEADROOM <= mem + l.size,
	      "last slot in bounds");

	/* rf_region_check catches damage */
	CHECK(rf_region_check(mem, l.size - 1, err, sizeof(err)) == -1, "short buffer refused");
	h->version = (RF_VERSION_MAJOR + 1) << 16;
	CHECK(rf_region_check(mem, l.size, err, sizeof(err)) == -1 && strstr(err, "version"),
	      "other major version refused: %s", err);
	CHECK(rf_region_init(mem, l.size - RF_PAGE, &good, err, sizeof(err)) == -1,
	      "init into a short buffer refused");
	free(mem);

	bad_param("lanes", m_lanes0);
	bad_param("lanes", m_lanes65);
	bad_param("slotsPerLane", m_slots);
	bad_param("slotSize", m_slotsize);
	bad_param("submitEntries", m_submit);
	bad_param("destsPerLane", m_dests);
	bad_param("policyEntries", m_policy);
	bad_param("eventEntries", m_events);
	bad_param("maxStreams", m_streams);
	bad_param("maxOutputs", m_outputs);
	{
		struct rf_region_params p = good;

		p.lanes = 64;
		p.slots_per_lane = 65536;
		p.slot_size = 16384;
		CHECK(rf_region_layout(&p, &l, err, sizeof(err)) == -1 && strstr(err, "limit"),
		      "too big refused: %s", err);
	}
	return t_result("region");
}
