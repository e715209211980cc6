/* SPDX-License-Identifier: MIT */
/*
 * Engine lifecycle (engine.h): two threads, TX (lanes -> timing wheel ->
 * port) and RX (port -> relay -> port, policy ring -> relay table), each with
 * its own port queue and its own doorbell eventfd published in the region
 * header. One stop flag (force_quit), a doorbell write to wake each thread,
 * then a join.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "clock.h"
#include "engine_internal.h"
#include "ktier.h"

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

/* A ring header in the region: where it is, its sizes (the ones the
 * header's copy says; the cursors use those, never the ring's again). */
static int check_ring(const struct rf_engine *e, uint32_t off, uint32_t entries,
		      uint32_t entry_size, const char *what, uint32_t lane, char *err, size_t errlen)
{
	const struct rf_ring *r = rf_ring_at(e->region, off);
	struct rf_ring k;

	if (off % RF_CACHELINE || (uint64_t)off + sizeof(*r) > e->hs.region_size)
		return fail(err, errlen, -EINVAL,
			    "engine: region %s ring (lane %u) at offset %u is outside the region",
			    what, lane, off);
	rf_snapshot(&k, r, sizeof(k));
	if (!is_pow2(k.entries) || k.entries != entries || k.mask != k.entries - 1 ||
	    k.entry_size != entry_size || k.data_off != sizeof(*r) ||
	    (uint64_t)off + k.data_off + (uint64_t)k.entries * entry_size > e->hs.region_size)
		return fail(err, errlen, -EINVAL,
			    "engine: region %s ring (lane %u) has a bad header (entries %u, "
			    "entry_size %u, data_off %u; expected %u, %u, %zu)", what, lane, k.entries,
			    k.entry_size, k.data_off, entries, entry_size, sizeof(*r));
	return 0;
}

static int check_rings(const struct rf_engine *e, char *err, size_t errlen)
{
	const struct rf_region_hdr *h = &e->hs;
	uint32_t i;
	int rc;

	for (i = 0; i < h->lane_count; i++) {
		if ((rc = check_ring(e, h->lanes[i].submit_off, h->submit_entries,
				     sizeof(struct rf_desc), "submit", i, err, errlen)) ||
		    (rc = check_ring(e, h->lanes[i].free_off, h->free_entries, 4, "free", i, err,
				     errlen)))
			return rc;
	}
	if ((rc = check_ring(e, h->policy_off, h->policy_entries, sizeof(struct rf_policy_msg),
			     "policy", 0, err, errlen)) ||
	    (rc = check_ring(e, h->event_off, h->event_entries, sizeof(struct rf_event), "event", 0,
			     err, errlen)))
		return rc;
	return 0;
}

/*
 * Everything the engine indexes with must stay inside the region, and no
 * part may overlap another (the engine writes counters and free rings: an
 * offset pointing them at a ring it reads would let the engine corrupt its
 * own input). Simplest and strictest: the header must describe exactly the
 * layout rf_region_layout() computes for its own parameters.
 */
static int check_header(const struct rf_engine *e, char *err, size_t errlen)
{
	const struct rf_region_hdr *h = &e->hs;
	struct rf_region_params p;
	struct rf_region_layout l;
	uint64_t len = h->region_size;
	char lerr[192];
	uint32_t i;

#define BAD(...) return fail(err, errlen, -EINVAL, "engine: region header: " __VA_ARGS__)
	if (h->lane_count < 1 || h->lane_count > RF_MAX_LANES)
		BAD("lane_count %u is outside 1..%u", h->lane_count, RF_MAX_LANES);
	if (!is_pow2(h->slot_size) || h->slot_size < 512 || h->slot_size > 16384)
		BAD("slot_size %u is not a power of two in 512..16384", h->slot_size);
	if (h->pool_off + (uint64_t)h->slot_count * h->slot_size > len)
		BAD("the pool (%u slots) ends outside the region", h->slot_count);
	if (h->dest_off + (uint64_t)h->dest_count * sizeof(struct rf_dest) > len)
		BAD("the destination table (%u entries) ends outside the region", h->dest_count);
	if (h->max_streams < 1 ||
	    h->stream_counters_off + (uint64_t)h->max_streams * sizeof(struct rf_stream_counters) > len)
		BAD("the stream counters (%u) end outside the region", h->max_streams);
	if (h->max_outputs < 1 ||
	    h->output_counters_off + (uint64_t)h->max_outputs * sizeof(struct rf_output_counters) > len)
		BAD("the output counters (%u at %u) end outside the region", h->max_outputs,
		    h->output_counters_off);
	if (h->lane_counters_off +
		    (uint64_t)(h->lane_count + 1) * sizeof(struct rf_lane_counters) > len)
		BAD("the lane counters (at %u) end outside the region", h->lane_counters_off);
	if (h->counters_off + (uint64_t)RF_MAX_THREADS * RF_COUNTERS_PER_BLOCK * 8 > len ||
	    h->counters_off % 8)
		BAD("the counter blocks end outside the region");
	for (i = 0; i < h->lane_count; i++) {
		const struct rf_lane *ln = &h->lanes[i];

		if ((uint64_t)ln->slot_first + ln->slot_count > h->slot_count)
			BAD("lane %u slots %u..%u are outside the pool", i, ln->slot_first,
			    ln->slot_first + ln->slot_count);
		if ((uint64_t)ln->dest_first + ln->dest_count > h->dest_count)
			BAD("lane %u destinations %u..%u are outside the table", i, ln->dest_first,
			    ln->dest_first + ln->dest_count);
	}
	/* the parameters rf_region_init() was given, as the header states them */
	p.lanes = h->lane_count;
	p.slots_per_lane = h->free_entries;
	p.slot_size = h->slot_size;
	p.submit_entries = h->submit_entries;
	p.dests_per_lane = h->dest_count / h->lane_count;
	p.policy_entries = h->policy_entries;
	p.event_entries = h->event_entries;
	p.max_streams = h->max_streams;
	p.max_outputs = h->max_outputs;
	if (rf_region_layout(&p, &l, lerr, sizeof(lerr)))
		BAD("its sizes are not a layout: %s", lerr);
	if (h->slot_count != p.lanes * p.slots_per_lane || h->dest_count != p.lanes * p.dests_per_lane)
		BAD("slot_count %u and dest_count %u are not %u lanes of free_entries = %u slots "
		    "and %u destinations", h->slot_count, h->dest_count, p.lanes, p.slots_per_lane,
		    p.dests_per_lane);
	if (l.size > len)
		BAD("the layout needs %u bytes, the region has %llu", l.size, (unsigned long long)len);
#define SAME(field, want)                                                                   \
	if (h->field != (want))                                                            \
		BAD(#field " is %u, the layout puts it at %u", h->field, (uint32_t)(want))
	SAME(header_size, l.header_size);
	SAME(counters_off, l.counters_off);
	SAME(policy_off, l.policy_off);
	SAME(event_off, l.event_off);
	SAME(dest_off, l.dest_off);
	SAME(stream_counters_off, l.stream_counters_off);
	SAME(output_counters_off, l.output_counters_off);
	SAME(lane_counters_off, l.lane_counters_off);
	SAME(pool_off, l.pool_off);
	for (i = 0; i < h->lane_count; i++) {
		const struct rf_lane *ln = &h->lanes[i];
		uint32_t sub = l.lanes_off + i * l.lane_stride;

		if (ln->submit_off != sub || ln->free_off != sub + l.free_rel ||
		    ln->slot_first != i * p.slots_per_lane || ln->slot_count != p.slots_per_lane ||
		    ln->dest_first != i * p.dests_per_lane || ln->dest_count != p.dests_per_lane)
			BAD("lane %u (rings at %u/%u, slots %u+%u, destinations %u+%u) is not where "
			    "the layout puts it", i, ln->submit_off, ln->free_off, ln->slot_first,
			    ln->slot_count, ln->dest_first, ln->dest_count);
	}
#undef SAME
#undef BAD
	return check_rings(e, err, errlen);
}

/*
 * The engine's own view of lane i's slots (region.h "Trust"): every slot is
 * the lane's but those on its free ring between the consumer and the
 * producer, whose numbers it copies (once: the entries are the lane's
 * memory). An entry that is not one of the lane's slots, or repeats one, is
 * recorded as no slot: when the lane takes it nothing changes.
 */
static void lane_view_init(struct rf_engine *e, uint32_t i)
{
	struct rf_tx_lane *ln = &e->lanes[i];
	uint32_t k, n = ln->free.local - ln->free.cached_peer + ln->free.entries;

	ln->free_pub = ln->free.local;
	ln->free_seen = ln->free.local - n;
	for (k = ln->free_seen; k != ln->free_pub; k++) {
		uint32_t slot = rf_load_relaxed((uint32_t *)rf_ring_entry(&ln->free, k));
		uint32_t rel = slot - ln->slot_first;

		if (rel < ln->slot_count && ln->where[rel] == RF_SLOT_LANE) {
			ln->where[rel] = RF_SLOT_FREE_RING;
			ln->free_shadow[k & ln->free.mask] = slot;
		} else {
			ln->free_shadow[k & ln->free.mask] = UINT32_MAX;
		}
	}
}

void rf_engine_config_defaults(struct rf_engine_config *cfg)
{
	if (!cfg->tx_frames)
		cfg->tx_frames = 512;
	/* Many small blocks: a TPACKET_V3 block is handed over when full or
	 * after the 1 ms retire timeout, so at a few 10 kpps each block carries
	 * ~1 ms of traffic and the ring holds rx_blocks ms. 256 x 64 KiB keeps
	 * ~250 ms (the relay's RX thread descheduled on a busy host) where
	 * 16 x 256 KiB kept 16 ms and dropped (bench/relay.ts). */
	if (!cfg->rx_block_size)
		cfg->rx_block_size = 1u << 16;
	if (!cfg->rx_blocks)
		cfg->rx_blocks = 256;
	/* 64 frames per send(): the batch of the bare TX ring loop the TX
	 * path is measured against (bench/tx.ts); 32 made it 1/32 system
	 * calls per packet */
	if (!cfg->burst)
		cfg->burst = 64;
	if (!cfg->spin_ns)
		cfg->spin_ns = 50000;
	/* mtu 0 = the interface's, late_drop_ns 0 = never: both stay 0 */
}

int rf_lane_fault(struct rf_lane_counters *lc, uint32_t *window_faults, uint64_t *window_start,
		  enum rf_lane_fault why, uint32_t count)
{
	uint64_t now = rf_now_ns();

	rf_counter_add(&lc->faults[why], count);
	__atomic_store_n(&lc->last_fault, (uint32_t)why, __ATOMIC_RELAXED);
	if (now - *window_start > RF_LANE_FAULT_WINDOW_NS) {
		*window_start = now;
		*window_faults = 0;
	}
	*window_faults += count;
	return *window_faults > RF_LANE_FAULT_LIMIT;
}

void rf_tx_lane_fault(struct rf_engine *e, uint32_t lane, enum rf_lane_fault why, uint32_t count)
{
	struct rf_tx_lane *ln = &e->lanes[lane];

	if (!rf_lane_fault(ln->lc, &ln->window_faults, &ln->window_start, why, count) ||
	    ln->quarantined)
		return;
	/* the TX thread takes nothing more from the lane; what it took is
	 * checked and leaves as usual. The event goes through the RX thread,
	 * the event ring's one producer */
	ln->quarantined = 1;
	__atomic_store_n(&ln->lc->state, (uint32_t)RF_LANE_QUARANTINED, __ATOMIC_RELAXED);
	atomic_fetch_or(&e->quarantine_news, 1ull << lane);
	rf_engine_ring(e, RF_THREAD_RX);
}

void rf_tx_lane_bad_peers(struct rf_engine *e, uint32_t lane)
{
	struct rf_tx_lane *ln = &e->lanes[lane];

	if (rf_unlikely(ln->submit.bad_peer != ln->bad_submit)) {
		uint32_t n = ln->submit.bad_peer - ln->bad_submit;

		ln->bad_submit = ln->submit.bad_peer;
		rf_tx_lane_fault(e, lane, RF_LANE_FAULT_SUBMIT_INDEX, n);
	}
	if (rf_unlikely(ln->free.bad_peer != ln->bad_free)) {
		uint32_t n = ln->free.bad_peer - ln->bad_free;

		ln->bad_free = ln->free.bad_peer;
		rf_tx_lane_fault(e, lane, RF_LANE_FAULT_FREE_INDEX, n);
	}
}

void rf_rx_control_fault(struct rf_engine *e, enum rf_lane_fault why, uint32_t count)
{
	if (!rf_lane_fault(e->control, &e->control_window_faults, &e->control_window_start, why,
			   count) ||
	    e->control_quarantined)
		return;
	/* the RX thread applies no more policy messages; relays keep running
	 * on the table they have */
	e->control_quarantined = 1;
	__atomic_store_n(&e->control->state, (uint32_t)RF_LANE_QUARANTINED, __ATOMIC_RELAXED);
	e->control_unposted = 1;
}

void rf_rx_control_bad_peers(struct rf_engine *e)
{
	if (rf_unlikely(e->policy.bad_peer != e->bad_policy)) {
		uint32_t n = e->policy.bad_peer - e->bad_policy;

		e->bad_policy = e->policy.bad_peer;
		rf_rx_control_fault(e, RF_LANE_FAULT_SUBMIT_INDEX, n);
	}
	if (rf_unlikely(e->events.bad_peer != e->bad_events)) {
		uint32_t n = e->events.bad_peer - e->bad_events;

		e->bad_events = e->events.bad_peer;
		rf_rx_control_fault(e, RF_LANE_FAULT_FREE_INDEX, n);
	}
}

/* The tc program: consumes the user tier's traffic, or relays in the
 * kernel. A kernel (or machine) that refuses it is no error: the user tier
 * relays and tier_why says why (the server logs it in one line). */
static int open_kernel_tier(struct rf_engine *e, char *err, size_t errlen)
{
	struct rf_ktier_config kc = { 0 };
	char kerr[200] = "";
	int relaying = 0, rc;

	snprintf(e->tier, sizeof(e->tier), "none");
	if (!e->cfg.bpf_object || e->cfg.backend == RF_BACKEND_NULL) {
		snprintf(e->tier_why, sizeof(e->tier_why), "%s",
			 e->cfg.backend == RF_BACKEND_NULL ? "the null backend has no interface"
							   : "no BPF object given");
		return 0;
	}
	snprintf(e->bpf_object, sizeof(e->bpf_object), "%s", e->cfg.bpf_object);
	kc.bpf_object = e->bpf_object;
	kc.ifname = e->ifname;
	kc.netns = e->cfg.netns;
	kc.ifindex = e->ifindex;
	kc.mtu = e->mtu;
	kc.tier = e->cfg.relay_tier;
	kc.orphan_s = e->cfg.kernel_orphan_s;
	kc.max_counters = e->hs.max_outputs;
	rc = rf_ktier_open(&e->kt, &kc, &relaying, e->tier_why, sizeof(e->tier_why), kerr, sizeof(kerr));
	/* another live engine on this interface: not a kernel that refuses, a misconfiguration */
	if (rc == -EBUSY)
		return fail(err, errlen, rc, "engine: %s%s%s: %s", e->ifname, e->cfg.netns ? " in namespace " : "",
			    e->cfg.netns ? e->cfg.netns : "", kerr);
	if (rc) {
		snprintf(e->tier_why, sizeof(e->tier_why), "%s", kerr);
		return 0;
	}
	snprintf(e->tier, sizeof(e->tier), "%s", relaying ? "kernel" : "user");
	rf_relay_set_ktier(e->relay, e->kt);
	return 0;
}

const char *rf_engine_relay_tier(const struct rf_engine *e, const char **why)
{
	if (why)
		*why = e->tier_why;
	return e->tier;
}

int rf_engine_kernel_counters(const struct rf_engine *e, uint64_t *reasons, uint32_t n)
{
	if (!e->kt) {
		memset(reasons, 0, (size_t)n * sizeof(*reasons));
		return 0;
	}
	return rf_ktier_reasons(e->kt, reasons, n);
}

int rf_engine_kernel_output(const struct rf_engine *e, uint32_t slot, struct rf_output_counters *out)
{
	if (!e->kt) {
		memset(out, 0, sizeof(*out));
		return 0;
	}
	return rf_ktier_output(e->kt, slot, out);
}

int rf_engine_kernel_test_run(const struct rf_engine *e, uint32_t test_out, const uint8_t *frame,
			      uint32_t len, uint8_t *out, uint32_t *out_len)
{
	if (!e->kt)
		return -ENOENT;
	return rf_ktier_test_run(e->kt, test_out, frame, len, out, out_len);
}

int rf_engine_create(struct rf_engine **out, void *region, size_t region_len,
		     const struct rf_engine_config *cfg_in, char *err, size_t errlen)
{
	struct rf_engine *e;
	struct rf_engine_config cfg = *cfg_in;
	uint32_t i;
	int rc;

	*out = NULL;
	if (!region)
		return fail(err, errlen, -EINVAL, "engine: region is NULL");
	if (rf_region_check(region, region_len, err, errlen))
		return -EINVAL;
	rf_engine_config_defaults(&cfg);
	if (cfg.burst > RF_BURST_MAX)
		return fail(err, errlen, -EINVAL, "engine: burst = %u is invalid (accepted: 1..%u)",
			    cfg.burst, RF_BURST_MAX);
	if (cfg.ifname && strlen(cfg.ifname) >= sizeof(e->ifname))
		return fail(err, errlen, -EINVAL, "engine: interface name '%s' is too long",
			    cfg.ifname);
	if (cfg.netns && strlen(cfg.netns) >= sizeof(e->netns))
		return fail(err, errlen, -EINVAL, "engine: namespace path '%s' is too long", cfg.netns);

	e = aligned_alloc(RF_CACHELINE, (sizeof(*e) + RF_CACHELINE - 1) / RF_CACHELINE * RF_CACHELINE);
	if (!e)
		return fail(err, errlen, -ENOMEM, "engine: out of memory");
	memset(e, 0, sizeof(*e));
	e->region = region;
	e->region_len = region_len;
	e->h = rf_hdr(region);
	/* the one read of the shared header: from here on only this copy */
	rf_snapshot(&e->hs, region, sizeof(e->hs));
	if (e->hs.region_size > region_len)
		e->hs.region_size = (uint32_t)region_len;
	for (i = 0; i < 2; i++)
		e->th[i].efd = -1;
	rc = check_header(e, err, errlen);
	if (rc) {
		free(e);
		return rc;
	}
	if (cfg.ifname)
		snprintf(e->ifname, sizeof(e->ifname), "%s", cfg.ifname);
	if (cfg.netns)
		snprintf(e->netns, sizeof(e->netns), "%s", cfg.netns);
	cfg.ifname = e->ifname;
	cfg.netns = cfg.netns ? e->netns : NULL;
	e->cfg = cfg;
	for (i = 0; i < 2; i++) {
		e->th[i].e = e;
		e->th[i].id = (enum rf_thread_id)i;
		e->th[i].c = rf_counters(region, &e->hs, (enum rf_thread_id)i);
		/* one doorbell for the engine's life, so that whoever rings it
		 * (the addon keeps a dup) never writes to a closed number */
		e->th[i].efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (e->th[i].efd < 0) {
			rc = fail(err, errlen, -errno, "engine: eventfd for the %s thread: %s",
				  i == RF_THREAD_TX ? "TX" : "RX", strerror(errno));
			goto out;
		}
	}
	e->ops = rf_port_ops_for(cfg.backend);
	if (!e->ops) {
		rc = fail(err, errlen, -EINVAL,
			  "engine: backend %d is invalid (accepted: %d afpacket, %d null, %d afxdp)",
			  (int)cfg.backend, RF_BACKEND_AFPACKET, RF_BACKEND_NULL, RF_BACKEND_AFXDP);
		goto out;
	}
	rc = e->ops->open(&e->th[RF_THREAD_TX].port, &e->cfg, RF_PORT_TX, err, errlen);
	if (rc)
		goto out;
	rc = e->ops->open(&e->th[RF_THREAD_RX].port, &e->cfg, RF_PORT_RX | RF_PORT_TX, err, errlen);
	if (rc)
		goto out;
	e->ops->info(e->th[RF_THREAD_TX].port, e->if_mac, &e->mtu, &e->ifindex);

	rc = rf_wheel_init(&e->wheel, e->hs.slot_count, rf_now_ns());
	e->tpl = calloc(e->hs.dest_count ? e->hs.dest_count : 1, sizeof(*e->tpl));
	e->slot_where = calloc(e->hs.slot_count ? e->hs.slot_count : 1, 1);
	e->free_shadow = calloc((size_t)e->hs.lane_count * e->hs.free_entries, 4);
	if (rc || !e->tpl || !e->slot_where || !e->free_shadow) {
		rc = fail(err, errlen, -ENOMEM,
			  "engine: out of memory for the timing wheel and the views of %u slots "
			  "and %u destinations", e->hs.slot_count, e->hs.dest_count);
		goto out;
	}
	e->relay = rf_relay_create((struct rf_output_counters *)((uint8_t *)region +
								  e->hs.output_counters_off),
				   e->hs.max_outputs, e->if_mac, e->mtu);
	if (!e->relay) {
		rc = fail(err, errlen, -ENOMEM, "engine: cannot create the relay table");
		goto out;
	}
	rc = open_kernel_tier(e, err, errlen);
	if (rc)
		goto out;
	/* the RX thread's capture ring (#14), when the checked header places it inside the region */
	if (e->hs.capture_off && (uint64_t)e->hs.capture_off + (uint64_t)RF_CAPTURE_RINGS * RF_CAPTURE_STRIDE <= e->hs.region_size)
		rf_relay_set_capture(e->relay, rf_capture_ring_at(region, &e->hs, RF_THREAD_RX));
	for (i = 0; i < e->hs.lane_count; i++) {
		const struct rf_lane *l = &e->hs.lanes[i];
		struct rf_tx_lane *ln = &e->lanes[i];

		ln->slot_first = l->slot_first;
		ln->slot_count = l->slot_count;
		ln->dest_first = l->dest_first;
		ln->dest_count = l->dest_count;
		ln->where = e->slot_where + l->slot_first;
		ln->free_shadow = e->free_shadow + (size_t)i * e->hs.free_entries;
		ln->lc = rf_lane_counters(region, &e->hs, i);
		/* attached once with the checked sizes; the cursors keep the
		 * engine's own indexes across stop/start */
		rf_cursor_attach_cons(&ln->submit, rf_ring_at(region, l->submit_off),
				      e->hs.submit_entries, sizeof(struct rf_desc));
		rf_cursor_attach_prod(&ln->free, rf_ring_at(region, l->free_off),
				      e->hs.free_entries, 4);
		/* TypeScript numbers descriptors by submit ring index, so the next
		 * seq is the ring's consumer index, also for an engine created on
		 * a region an earlier engine used */
		ln->next_seq = ln->submit.local;
		lane_view_init(e, i);
		rf_tx_lane_bad_peers(e, i);
	}
	rf_cursor_attach_cons(&e->policy, rf_ring_at(region, e->hs.policy_off),
			      e->hs.policy_entries, sizeof(struct rf_policy_msg));
	rf_cursor_attach_prod(&e->events, rf_ring_at(region, e->hs.event_off),
			      e->hs.event_entries, sizeof(struct rf_event));
	e->control = rf_lane_counters(region, &e->hs, e->hs.lane_count);
	rf_rx_control_bad_peers(e);
	*out = e;
	return 0;
out:
	rf_engine_destroy(e);
	return rc;
}

static void thread_ring(struct rf_thread *t)
{
	uint64_t one = 1;

	if (t->efd >= 0 && write(t->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, the thread wakes anyway */
	}
}

void rf_engine_ring(struct rf_engine *e, enum rf_thread_id t)
{
	thread_ring(&e->th[t]);
}

int rf_engine_doorbell_fd(const struct rf_engine *e, uint32_t thread)
{
	return e && thread < 2 ? e->th[thread].efd : -1;
}

int rf_engine_start(struct rf_engine *e, char *err, size_t errlen)
{
	pthread_attr_t attr;
	uint32_t i;
	int rc = 0;

	if (e->running)
		return 0;
	/* a restart gives every quarantined lane a fresh start: its indexes
	 * and entries are checked as ever */
	for (i = 0; i <= e->hs.lane_count; i++)
		__atomic_store_n(&rf_lane_counters(e->region, &e->hs, i)->state, RF_LANE_OK,
				 __ATOMIC_RELAXED);
	for (i = 0; i < e->hs.lane_count; i++) {
		e->lanes[i].quarantined = 0;
		e->lanes[i].window_faults = 0;
	}
	e->control_quarantined = 0;
	e->control_window_faults = 0;
	atomic_store(&e->quarantine_news, 0);
	e->quarantine_unposted = 0;
	e->control_unposted = 0;
	atomic_store(&e->force_quit, 0);

	for (i = 0; i < 2; i++) {
		struct rf_thread *t = &e->th[i];
		int cpu = i == RF_THREAD_TX ? e->cfg.cpu_tx : e->cfg.cpu_rx;

		rf_store_relaxed(&e->h->doorbell[i].sleeping, 0);
		/* publish the doorbell before the thread runs: pairs with the
		 * Atomics.load of doorbell.fd in TypeScript (informational: the
		 * addon rings its own dup of rf_engine_doorbell_fd()) */
		rf_store_release((uint32_t *)&e->h->doorbell[i].fd, (uint32_t)t->efd);
		pthread_attr_init(&attr);
		if (cpu >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(cpu, &set);
			pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
		}
		if (i == RF_THREAD_TX && e->cfg.tx_priority > 0) {
			/* a real-time TX thread preempts every ordinary task at
			 * once when its deadline comes (an ordinary thread waits
			 * for the running one's slice: 100s of us); it spins only
			 * spin_ns before a deadline, and the kernel's RT
			 * throttling keeps 5 % of its CPU for the rest */
			struct sched_param sp = { .sched_priority = e->cfg.tx_priority };

			pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
			pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
			pthread_attr_setschedparam(&attr, &sp);
		}
		rc = -pthread_create(&t->tid, &attr, i == RF_THREAD_TX ? rf_tx_main : rf_rx_main, t);
		pthread_attr_destroy(&attr);
		if (rc) {
			fail(err, errlen, rc, "engine: cannot start the %s thread%s%s: %s",
			     i == RF_THREAD_TX ? "TX" : "RX", cpu >= 0 ? " (check cpu_tx/cpu_rx)" : "",
			     i == RF_THREAD_TX && e->cfg.tx_priority > 0
				     ? " with SCHED_FIFO priority (needs CAP_SYS_NICE or an RLIMIT_RTPRIO)"
				     : "",
			     strerror(-rc));
			break;
		}
		t->started = 1;
		/* "rf-tx" / "rf-rx" in /proc/PID/task/TID/comm: a thread's own CPU
		 * time (bench/relay.ts, top -H) is told from the host process's */
		(void)pthread_setname_np(t->tid, i == RF_THREAD_TX ? "rf-tx" : "rf-rx");
	}
	e->running = 1;
	if (rc) {
		rf_engine_stop(e);
		return rc;
	}
	/* ensure the doorbells are published before the state says running:
	 * pairs with the Atomics.load of engine_state in TypeScript */
	rf_store_release(&e->h->engine_state, RF_STATE_RUNNING);
	return 0;
}

void rf_engine_stop(struct rf_engine *e)
{
	uint32_t i;

	if (!e || !e->running)
		return;
	/* the single stop flag; the doorbell writes below make sure a sleeping
	 * thread sees it (seq_cst store, read by each loop iteration) */
	atomic_store(&e->force_quit, 1);
	for (i = 0; i < 2; i++)
		thread_ring(&e->th[i]);
	for (i = 0; i < 2; i++) {
		struct rf_thread *t = &e->th[i];

		if (t->started)
			pthread_join(t->tid, NULL);
		t->started = 0;
	}
	for (i = 0; i < 2; i++) {
		/* withdrawn: TypeScript sees the engine is stopped (the eventfd
		 * stays open until destroy) */
		rf_store_release((uint32_t *)&e->h->doorbell[i].fd, (uint32_t)-1);
		rf_store_relaxed(&e->h->doorbell[i].sleeping, 0);
	}
	rf_store_release(&e->h->engine_state, RF_STATE_STOPPED);
	e->running = 0;
}

/*
 * Give every slot the engine holds (in the wheel, in flight at a stop) back
 * to its lane: the region outlives the engine and its lanes must not lose
 * slots. From the engine's own view of who holds what, never from the wheel
 * or the region: a slot goes back exactly once.
 */
static void return_held_slots(struct rf_engine *e)
{
	uint32_t i, k, idx;

	if (!e->slot_where || !e->free_shadow)
		return;
	for (i = 0; i < e->hs.lane_count; i++) {
		struct rf_tx_lane *ln = &e->lanes[i];
		uint32_t back = 0;

		for (k = 0; k < ln->slot_count; k++) {
			if (ln->where[k] != RF_SLOT_ENGINE)
				continue;
			if (!rf_tx_free_reserve(e, i, &idx))
				break; /* only a lane whose consumer index lies: counted */
			rf_store_relaxed((uint32_t *)rf_ring_entry(&ln->free, idx), ln->slot_first + k);
			ln->free_shadow[idx & ln->free.mask] = ln->slot_first + k;
			ln->where[k] = RF_SLOT_FREE_RING;
			back++;
		}
		if (back) {
			/* release store: the slot numbers before the index (pairs
			 * with the lane's Atomics.load of `producer`) */
			rf_ring_submit(&ln->free);
			ln->free_pub = ln->free.local;
			ln->inflight -= back;
		}
	}
}

void rf_engine_destroy(struct rf_engine *e)
{
	uint32_t i;

	if (!e)
		return;
	rf_engine_stop(e);
	return_held_slots(e);
	rf_wheel_free(&e->wheel);
	/* the program first: nothing relays from a table being freed */
	rf_ktier_close(e->kt);
	e->kt = NULL;
	if (e->relay)
		rf_relay_destroy(e->relay);
	for (i = 0; i < 2; i++) {
		if (e->th[i].port)
			e->ops->close(e->th[i].port);
		if (e->th[i].efd >= 0)
			close(e->th[i].efd);
	}
	free(e->tpl);
	free(e->slot_where);
	free(e->free_shadow);
	free(e);
}

int rf_engine_running(const struct rf_engine *e)
{
	return e && e->running;
}

int rf_doorbell_sleep(struct rf_thread *t, uint64_t timeout_ns, int extra_fd,
		      int (*has_work)(struct rf_thread *t))
{
	struct rf_doorbell *db = &t->e->h->doorbell[t->id];
	struct pollfd fds[2] = { { .fd = t->efd, .events = POLLIN },
				 { .fd = extra_fd, .events = POLLIN } };
	struct timespec ts;
	uint64_t v;
	int rung = 0;

	rf_store_relaxed(&db->sleeping, 1);
	/* Dekker with the producer: our `sleeping` store is visible before we
	 * re-read its ring index; pairs with the producer's fence between its
	 * index store and its read of `sleeping` */
	rf_smp_mb();
	if (has_work(t) || atomic_load(&t->e->force_quit)) {
		rf_store_relaxed(&db->sleeping, 0);
		return 0;
	}
	rf_counter_add(&t->c[RF_C_SLEEPS], 1);
	if (timeout_ns != UINT64_MAX)
		ts = rf_ns_to_timespec(timeout_ns);
	(void)ppoll(fds, extra_fd >= 0 ? 2 : 1, timeout_ns == UINT64_MAX ? NULL : &ts, NULL);
	rf_store_relaxed(&db->sleeping, 0);
	if (fds[0].revents & POLLIN) {
		/* reset the eventfd counter so the next sleep can block */
		if (read(t->efd, &v, sizeof(v)) == sizeof(v))
			rung = 1;
		rf_counter_add(&t->c[RF_C_WAKEUPS], 1);
	}
	return rung;
}
