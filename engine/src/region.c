/* SPDX-License-Identifier: MIT */
/* Layout, initialisation and checks of the shared region (region.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "reflector/barrier.h"
#include "reflector/region.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static uint64_t ring_bytes(uint32_t entries, uint32_t entry_size)
{
	return sizeof(struct rf_ring) + (uint64_t)entries * entry_size;
}

#define CHECK_RANGE(name, v, lo, hi, pow2)                                               \
	do {                                                                             \
		if ((v) < (lo) || (v) > (hi) || ((pow2) && !is_pow2(v)))                \
			return fail(err, errlen, "region: %s = %u is invalid (accepted: %s%u..%u)", \
				    name, (unsigned)(v), (pow2) ? "a power of two in " : "",     \
				    (unsigned)(lo), (unsigned)(hi));                             \
	} while (0)

int rf_region_layout(const struct rf_region_params *p, struct rf_region_layout *o,
		     char *err, size_t errlen)
{
	uint64_t off, lane_submit, lane_free;

	CHECK_RANGE("lanes", p->lanes, 1, RF_MAX_LANES, 0);
	CHECK_RANGE("slotsPerLane", p->slots_per_lane, 16, 65536, 1);
	CHECK_RANGE("slotSize", p->slot_size, 512, 16384, 1);
	CHECK_RANGE("submitEntries", p->submit_entries, 16, 65536, 1);
	CHECK_RANGE("destsPerLane", p->dests_per_lane, 1, 65536, 0);
	CHECK_RANGE("policyEntries", p->policy_entries, 16, 4096, 1);
	CHECK_RANGE("eventEntries", p->event_entries, 16, 65536, 1);
	CHECK_RANGE("maxStreams", p->max_streams, 1, 1u << 20, 0);
	CHECK_RANGE("maxOutputs", p->max_outputs, 1, 1u << 20, 0);

	memset(o, 0, sizeof(*o));
	o->header_size = RF_PAGE;
	off = RF_PAGE;

	o->counters_off = (uint32_t)off;
	off += round_up((uint64_t)RF_MAX_THREADS * RF_COUNTERS_PER_BLOCK * 8, RF_PAGE);

	lane_submit = round_up(ring_bytes(p->submit_entries, sizeof(struct rf_desc)), RF_CACHELINE);
	lane_free = round_up(ring_bytes(p->slots_per_lane, 4), RF_CACHELINE);
	o->lanes_off = (uint32_t)off;
	o->free_rel = (uint32_t)lane_submit;
	o->lane_stride = (uint32_t)round_up(lane_submit + lane_free, RF_PAGE);
	off += (uint64_t)o->lane_stride * p->lanes;

	o->policy_off = (uint32_t)off;
	off += round_up(ring_bytes(p->policy_entries, sizeof(struct rf_policy_msg)), RF_PAGE);
	o->event_off = (uint32_t)off;
	off += round_up(ring_bytes(p->event_entries, sizeof(struct rf_event)), RF_PAGE);
	o->dest_off = (uint32_t)off;
	off += round_up((uint64_t)p->lanes * p->dests_per_lane * sizeof(struct rf_dest), RF_PAGE);
	o->stream_counters_off = (uint32_t)off;
	off += round_up((uint64_t)p->max_streams * sizeof(struct rf_stream_counters), RF_PAGE);
	o->output_counters_off = (uint32_t)off;
	off += round_up((uint64_t)p->max_outputs * sizeof(struct rf_output_counters), RF_PAGE);
	/* one block per lane and one for the control channel */
	o->lane_counters_off = (uint32_t)off;
	off += round_up((uint64_t)(p->lanes + 1) * sizeof(struct rf_lane_counters), RF_PAGE);
	o->pool_off = (uint32_t)off;
	off += (uint64_t)p->lanes * p->slots_per_lane * p->slot_size;
	off = round_up(off, RF_PAGE);
	/* after the pool: nothing before it moved (2.1) */
	o->capture_off = (uint32_t)off;
	off += round_up((uint64_t)RF_CAPTURE_RINGS * RF_CAPTURE_STRIDE, RF_PAGE);

	if (off > RF_MAX_REGION)
		return fail(err, errlen,
			    "region: %llu bytes needed, more than the %u-byte limit "
			    "(lower lanes, slotsPerLane, slotSize, maxStreams or maxOutputs)",
			    (unsigned long long)off, RF_MAX_REGION);
	o->size = (uint32_t)off;
	return 0;
}

static void ring_init(void *mem, uint32_t off, uint32_t entries, uint32_t entry_size)
{
	struct rf_ring *r = rf_ring_at(mem, off);

	memset(r, 0, sizeof(*r));
	r->entries = entries;
	r->mask = entries - 1;
	r->entry_size = entry_size;
	r->data_off = sizeof(struct rf_ring);
}

int rf_region_init(void *mem, size_t len, const struct rf_region_params *p,
		   char *err, size_t errlen)
{
	struct rf_region_layout l;
	struct rf_region_hdr *h = rf_hdr(mem);
	uint32_t i, s;

	if (rf_region_layout(p, &l, err, errlen))
		return -1;
	if (len < l.size)
		return fail(err, errlen, "region: buffer is %zu bytes, the layout needs %u", len, l.size);
	if ((uintptr_t)mem % RF_CACHELINE)
		return fail(err, errlen, "region: buffer is not %u-byte aligned", RF_CACHELINE);

	memset(mem, 0, l.size);
	h->magic = RF_REGION_MAGIC;
	h->region_size = l.size;
	h->header_size = l.header_size;
	h->lane_count = p->lanes;
	/* lane 0 is the main thread's; workers claim from 1 */
	h->lane_claim = 1;
	h->submit_entries = p->submit_entries;
	h->free_entries = p->slots_per_lane;
	h->slot_size = p->slot_size;
	h->slot_count = p->lanes * p->slots_per_lane;
	h->pool_off = l.pool_off;
	h->dest_count = p->lanes * p->dests_per_lane;
	h->dest_off = l.dest_off;
	h->policy_off = l.policy_off;
	h->event_off = l.event_off;
	h->counters_off = l.counters_off;
	h->stream_counters_off = l.stream_counters_off;
	h->max_streams = p->max_streams;
	h->output_counters_off = l.output_counters_off;
	h->max_outputs = p->max_outputs;
	h->lane_counters_off = l.lane_counters_off;
	h->capture_off = l.capture_off;
	for (i = 0; i < RF_CAPTURE_RINGS; i++) {
		struct rf_capture_ring *c = rf_capture_ring_at(mem, h, i);

		c->size = RF_CAPTURE_DATA;
		c->data_off = RF_CAPTURE_HDR;
	}
	h->policy_entries = p->policy_entries;
	h->event_entries = p->event_entries;
	h->engine_state = RF_STATE_STOPPED;
	for (i = 0; i < RF_MAX_THREADS; i++)
		h->doorbell[i].fd = -1;

	for (i = 0; i < p->lanes; i++) {
		struct rf_lane *ln = &h->lanes[i];
		struct rf_ring *fr;
		uint32_t *slots;

		ln->submit_off = l.lanes_off + i * l.lane_stride;
		ln->free_off = ln->submit_off + l.free_rel;
		ln->slot_first = i * p->slots_per_lane;
		ln->slot_count = p->slots_per_lane;
		ln->dest_first = i * p->dests_per_lane;
		ln->dest_count = p->dests_per_lane;
		ring_init(mem, ln->submit_off, p->submit_entries, sizeof(struct rf_desc));
		ring_init(mem, ln->free_off, p->slots_per_lane, 4);
		/* every slot of the lane starts free: the free ring starts full */
		fr = rf_ring_at(mem, ln->free_off);
		slots = (uint32_t *)((uint8_t *)fr + fr->data_off);
		for (s = 0; s < p->slots_per_lane; s++)
			slots[s] = ln->slot_first + s;
		fr->producer = p->slots_per_lane;
	}
	ring_init(mem, l.policy_off, p->policy_entries, sizeof(struct rf_policy_msg));
	ring_init(mem, l.event_off, p->event_entries, sizeof(struct rf_event));

	/* ensure every byte above is visible before the version that readers
	 * wait for: pairs with the Atomics.load of `version` in layout.ts */
	rf_store_release(&h->version, RF_VERSION_MAJOR << 16 | RF_VERSION_MINOR);
	return 0;
}

int rf_region_check(const void *mem, size_t len, char *err, size_t errlen)
{
	const struct rf_region_hdr *h = mem;
	uint32_t v;

	if (len < RF_PAGE)
		return fail(err, errlen, "region: %zu bytes is smaller than its header", len);
	if (h->magic != RF_REGION_MAGIC)
		return fail(err, errlen, "region: bad magic 0x%08x (expected 0x%08x)", h->magic,
			    RF_REGION_MAGIC);
	v = rf_load_acquire(&h->version);
	if (v >> 16 != RF_VERSION_MAJOR)
		return fail(err, errlen, "region: version %u.%u, this engine speaks %u.%u", v >> 16,
			    v & 0xffff, RF_VERSION_MAJOR, RF_VERSION_MINOR);
	if (h->region_size > len)
		return fail(err, errlen, "region: header says %u bytes, buffer has %zu",
			    h->region_size, len);
	return 0;
}

#define F(s, m) { #s "." #m, offsetof(struct s, m) }
#define Z(s) { "sizeof." #s, sizeof(struct s) }
const struct rf_field rf_region_fields[] = {
	{ "version.major", RF_VERSION_MAJOR },
	{ "version.minor", RF_VERSION_MINOR },
	{ "magic", RF_REGION_MAGIC },
	{ "slot_headroom", RF_SLOT_HEADROOM },
	{ "max_lanes", RF_MAX_LANES },
	{ "max_threads", RF_MAX_THREADS },
	{ "counters_per_block", RF_COUNTERS_PER_BLOCK },
	{ "hist_base", RF_C_HIST_BASE },
	{ "hist_buckets", RF_HIST_BUCKETS },
	Z(rf_ring), F(rf_ring, producer), F(rf_ring, producer_waiting), F(rf_ring, consumer),
	F(rf_ring, consumer_waiting), F(rf_ring, entries), F(rf_ring, mask),
	F(rf_ring, entry_size), F(rf_ring, data_off),
	Z(rf_desc), F(rf_desc, tx_time), F(rf_desc, slot), F(rf_desc, len), F(rf_desc, flags),
	F(rf_desc, dest), F(rf_desc, stream), F(rf_desc, seq),
	Z(rf_dest), F(rf_dest, family), F(rf_dest, ttl), F(rf_dest, dscp), F(rf_dest, flags),
	F(rf_dest, src_port), F(rf_dest, dst_port), F(rf_dest, dst_mac), F(rf_dest, src_mac),
	F(rf_dest, gen), F(rf_dest, src_addr), F(rf_dest, dst_addr),
	Z(rf_policy_msg), F(rf_policy_msg, op), F(rf_policy_msg, seq), F(rf_policy_msg, body),
	Z(rf_event), F(rf_event, type), F(rf_event, a), F(rf_event, b), F(rf_event, c),
	Z(rf_doorbell), F(rf_doorbell, sleeping), F(rf_doorbell, fd), F(rf_doorbell, rings),
	Z(rf_lane), F(rf_lane, submit_off), F(rf_lane, free_off), F(rf_lane, slot_first),
	F(rf_lane, slot_count), F(rf_lane, dest_first), F(rf_lane, dest_count),
	Z(rf_stream_counters), F(rf_stream_counters, packets), F(rf_stream_counters, bytes),
	F(rf_stream_counters, late), F(rf_stream_counters, dropped),
	Z(rf_output_counters), F(rf_output_counters, packets), F(rf_output_counters, bytes),
	F(rf_output_counters, drops), F(rf_output_counters, limited),
	Z(rf_lane_counters), F(rf_lane_counters, taken), F(rf_lane_counters, sent),
	F(rf_lane_counters, dropped), F(rf_lane_counters, state), F(rf_lane_counters, last_fault),
	F(rf_lane_counters, faults),
	F(rf_region_hdr, magic), F(rf_region_hdr, version), F(rf_region_hdr, region_size),
	F(rf_region_hdr, header_size), F(rf_region_hdr, lane_count), F(rf_region_hdr, lane_claim),
	F(rf_region_hdr, submit_entries), F(rf_region_hdr, free_entries),
	F(rf_region_hdr, slot_size), F(rf_region_hdr, slot_count), F(rf_region_hdr, pool_off),
	F(rf_region_hdr, dest_count), F(rf_region_hdr, dest_off), F(rf_region_hdr, policy_off),
	F(rf_region_hdr, event_off), F(rf_region_hdr, counters_off),
	F(rf_region_hdr, stream_counters_off), F(rf_region_hdr, max_streams),
	F(rf_region_hdr, output_counters_off), F(rf_region_hdr, max_outputs),
	F(rf_region_hdr, policy_entries), F(rf_region_hdr, event_entries),
	F(rf_region_hdr, engine_state), F(rf_region_hdr, lane_counters_off),
	F(rf_region_hdr, doorbell), F(rf_region_hdr, lanes), F(rf_region_hdr, capture_off),
	Z(rf_capture_ring), F(rf_capture_ring, producer), F(rf_capture_ring, captured),
	F(rf_capture_ring, dropped), F(rf_capture_ring, consumer), F(rf_capture_ring, armed),
	F(rf_capture_ring, size),
	F(rf_capture_ring, data_off),
	Z(rf_capture_rec), F(rf_capture_rec, len), F(rf_capture_rec, caplen), F(rf_capture_rec, wire_len),
	F(rf_capture_rec, kind), F(rf_capture_rec, id), F(rf_capture_rec, ts_ns),
	{ "capture_rings", RF_CAPTURE_RINGS },
	{ "capture_data", RF_CAPTURE_DATA },
	{ "capture_stride", RF_CAPTURE_STRIDE },
	{ "capture_snap", RF_CAPTURE_SNAP },
	{ "lane_faults", RF_LANE_FAULTS },
	{ "lane_fault_limit", RF_LANE_FAULT_LIMIT },
	{ "tx_horizon_ms", (uint32_t)(RF_TX_HORIZON_NS / 1000000u) },
	{ NULL, 0 },
};
#undef F
#undef Z

const char *const rf_counter_names[RF_C_COUNT_USED] = {
	[RF_C_TX_PACKETS] = "tx_packets",
	[RF_C_TX_BYTES] = "tx_bytes",
	[RF_C_TX_FLUSHES] = "tx_flushes",
	[RF_C_TX_SYSCALLS] = "tx_syscalls",
	[RF_C_TX_RING_FULL] = "tx_ring_full",
	[RF_C_RX_PACKETS] = "rx_packets",
	[RF_C_RX_BYTES] = "rx_bytes",
	[RF_C_DESC_CONSUMED] = "desc_consumed",
	[RF_C_DESC_SEQ_GAP] = "desc_seq_gap",
	[RF_C_DROP_BAD_SLOT] = "drop_bad_slot",
	[RF_C_DROP_BAD_DEST] = "drop_bad_dest",
	[RF_C_DROP_BAD_LEN] = "drop_bad_len",
	[RF_C_DROP_LATE] = "drop_late",
	[RF_C_DROP_TX_ERROR] = "drop_tx_error",
	[RF_C_LATE_PACKETS] = "late_packets",
	[RF_C_WAKEUPS] = "wakeups",
	[RF_C_SLEEPS] = "sleeps",
	[RF_C_POLICY_APPLIED] = "policy_applied",
	[RF_C_POLICY_REJECTED] = "policy_rejected",
	[RF_C_RELAY_IN] = "relay_in",
	[RF_C_RELAY_OUT] = "relay_out",
	[RF_C_DROP_NOT_ALLOWED] = "drop_not_allowed",
	[RF_C_DROP_MALFORMED] = "drop_malformed",
	[RF_C_DROP_FRAGMENT] = "drop_fragment",
	[RF_C_DROP_NO_NEIGHBOUR] = "drop_no_neighbour",
	[RF_C_DROP_TX_FULL] = "drop_tx_full",
	[RF_C_RX_UNMATCHED] = "rx_unmatched",
	[RF_C_DROP_RX_RING] = "drop_rx_ring",
	[RF_C_DROP_BAD_TIME] = "drop_bad_time",
	[RF_C_TX_DEVICE_ERRORS] = "tx_device_errors",
	[RF_C_DROP_RATE_LIMIT] = "drop_rate_limit",
};

const char *const rf_lane_fault_names[RF_LANE_FAULT_COUNT_USED] = {
	[RF_LANE_FAULT_SUBMIT_INDEX] = "submit_index",
	[RF_LANE_FAULT_FREE_INDEX] = "free_index",
	[RF_LANE_FAULT_SLOT] = "slot",
	[RF_LANE_FAULT_SLOT_NOT_HELD] = "slot_not_held",
	[RF_LANE_FAULT_DEST] = "dest",
	[RF_LANE_FAULT_DEST_TORN] = "dest_torn",
};
