/* SPDX-License-Identifier: MIT */
/*
 * The TX thread: every lane's submit ring -> validation -> timing wheel ->
 * headers built in front of the pool payload -> port, one flush for all the
 * packets due together; then the slots go back to their lanes' free rings.
 *
 * The loop is a DPDK-style burst loop: bursts of cfg.burst, rare cases behind
 * rf_unlikely(), counters written by this thread only. Between deadlines the
 * thread sleeps on its doorbell until spin_ns before the next one (wakeups
 * come 20-50 us late), then spins to the deadline.
 *
 * tx_window_ns trades precision for system calls: when a packet is due, its
 * flush also takes the packets due within the window after now (they leave
 * up to that early).
 * Packets evenly spread in time (1,000 sessions started at random points)
 * otherwise each get a send() of their own when the thread keeps up.
 *
 * What a lane writes is not trusted (region.h "Trust", docs/trust.md): a
 * descriptor is copied out of the ring before it is checked, and only the
 * copy is used; a slot is taken only from a lane that holds it (the engine's
 * own view, `where`: no slot is ever in flight twice or returned twice); a
 * destination is read under its sequence lock into a header template, and a
 * packet leaves with one complete version of it. Every descriptor taken is
 * counted once: sent, or dropped under one reason (thread counter, its
 * stream's `dropped`, its lane's `dropped`).
 */
#include <stdatomic.h>
#include <string.h>
#include <sys/prctl.h>

#include "capture.h"
#include "clock.h"
#include "engine_internal.h"
#include "netpkt.h"
#include "reflector/dest.h"

/* A packet counts as late when it leaves more than this after its time: the
 * first lateness histogram bound, so late_packets = packets past bucket 0. */
#define RF_LATE_SLACK_NS 1000u

/* Descriptors taken from one lane per round, so one busy lane cannot starve
 * the others. */
#define RF_LANE_QUOTA_BURSTS 4u

/* "now" packets held outside the wheel (a power of two) */
#define RF_NOWQ_SIZE 1024u

/* A port that kept frames (a refused or partial flush, or its ring stayed
 * full) is tried again this long after: a veth peer's full backlog (ENOBUFS)
 * clears in tens of us, and retrying at once would spin on send(). */
#define RF_TX_RETRY_NS 50000ull
/* A port that keeps refusing is tried at doubling intervals up to this:
 * a device that stays down costs a few wakeups a millisecond, not a third
 * of a CPU; the first frame it takes resets the interval. */
#define RF_TX_RETRY_MAX_NS 1000000ull

/* A lane asleep for slots is woken at its low-water mark, when none of its
 * slots is left in flight, or at the latest this long after slots came back
 * for it: it never sleeps long while it has free slots. */
#define RF_LANE_WAKE_NS 1000000ull

/* The longest the TX thread sleeps, deadline or not: the doorbell's
 * `sleeping` flag is in the shared header, and a lane that clears it keeps
 * every producer from ringing; this bounds what that costs the other lanes
 * (the RX thread's RX_IDLE_NS does the same for the policy ring). */
#define RF_TX_IDLE_NS 10000000ull

/* Reads of a destination entry that a writer holds mid-write before the
 * last complete version is used instead (or, with none, the packet dropped) */
#define RF_DEST_READ_TRIES 16u

struct tx_state {
	struct rf_thread *t;
	struct rf_engine *e;
	uint64_t *c;
	const struct rf_dest *dests;   /* shared: read under their sequence locks */
	struct rf_netpkt_tpl *tpl;     /* ours: one header template per entry */
	struct rf_stream_counters *streams;
	uint32_t max_streams;
	uint32_t payload_max;  /* slot bytes after the headroom */
	uint32_t burst;
	uint32_t mtu;
	uint64_t dirty_lanes;  /* lanes with slots reserved on their free ring */
	uint64_t wake_lanes;   /* lanes asleep for slots with some back, to wake at wake_at */
	uint64_t wake_at;
	uint64_t retry_at;     /* flush / send again then (0: nothing kept) */
	uint64_t retry_ns;     /* the next retry interval (backs off while refused) */
	uint32_t npend;        /* popped from the wheel, not yet sent (TX ring full) */
	uint32_t unflushed;    /* frames queued on the port since the last flush */
	uint16_t ip_id;
	/* "now" packets taken while the wheel was empty, in take order (their
	 * deadlines, the take times, never decrease): see take_desc() */
	uint32_t nowq_head, nowq_count;
	struct rf_wheel_item nowq[RF_NOWQ_SIZE];
	struct rf_wheel_item pend[RF_BURST_MAX];
	struct rf_tx_pkt pkts[RF_BURST_MAX];
	uint8_t hdrs[RF_BURST_MAX][RF_HDR_MAX];
	/* a session's capture (#14): this thread's ring, or NULL (a region older than 2.1) */
	struct rf_capture_ring *cap;
	uint32_t cap_prod;     /* our own copy of its producer position */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

static inline struct rf_stream_counters *stream_of(struct tx_state *s, uint32_t stream)
{
	/* ids past max_streams share counters; the division only for them */
	if (rf_unlikely(stream >= s->max_streams))
		stream %= s->max_streams;
	return &s->streams[stream];
}

/* ------------------------------------------------------- the free ring -- */

void rf_tx_free_view_advance(struct rf_engine *e, uint32_t lane)
{
	struct rf_tx_lane *ln = &e->lanes[lane];
	/* which of our entries the lane took; it stored `consumer` after it
	 * read them (pairs with its Atomics.store) */
	uint32_t cons = rf_load_acquire(&ln->free.ring->consumer), k;

	/* it can only take what we published, and never give back */
	if (rf_unlikely(cons - ln->free_seen > ln->free_pub - ln->free_seen)) {
		rf_tx_lane_fault(e, lane, RF_LANE_FAULT_FREE_INDEX, 1);
		return;
	}
	for (k = ln->free_seen; k != cons; k++) {
		uint32_t rel = ln->free_shadow[k & ln->free.mask] - ln->slot_first;

		if (rel < ln->slot_count)
			ln->where[rel] = RF_SLOT_LANE;
	}
	ln->free_seen = cons;
}

/* The free ring is produced against the engine's view of what the lane took
 * (free_seen), never a consumer index it has not checked: an entry is
 * overwritten only after its slot is known to be the lane's. */
static inline int free_reserve(struct rf_engine *e, uint32_t lane, uint32_t *idx)
{
	struct rf_tx_lane *ln = &e->lanes[lane];

	if (rf_unlikely(ln->free.local - ln->free_seen >= ln->free.entries)) {
		rf_tx_free_view_advance(e, lane);
		if (ln->free.local - ln->free_seen >= ln->free.entries)
			return 0;
	}
	*idx = ln->free.local++;
	return 1;
}

int rf_tx_free_reserve(struct rf_engine *e, uint32_t lane, uint32_t *idx)
{
	return free_reserve(e, lane, idx);
}

/* Give a slot the engine held back to its lane (submitted by free_submit()). */
static inline void free_put(struct tx_state *s, uint32_t lane, uint32_t slot)
{
	struct rf_tx_lane *ln = &s->e->lanes[lane];
	uint32_t idx;

	/* the ring holds every slot of the lane, and the engine returns only
	 * slots it holds: it is full only when the lane lies about its
	 * consumer index (counted); the slot then stays ours and goes back at
	 * destroy */
	if (rf_unlikely(!free_reserve(s->e, lane, &idx)))
		return;
	*(uint32_t *)rf_ring_entry(&ln->free, idx) = slot;
	ln->free_shadow[idx & ln->free.mask] = slot;
	ln->where[slot - ln->slot_first] = RF_SLOT_FREE_RING;
	ln->inflight--;
	s->dirty_lanes |= 1ull << lane;
}

/*
 * Publish the returned slots of every lane touched since the last call, and
 * wake a lane that sleeps for slots once it has enough (region.h: its
 * consumer_waiting word holds how many it wants, a low-water mark). Waking
 * it for every flush cost a futex wait, a wake and two context switches per
 * burst while a fast worker waits for slots; now that is once per
 * `wanted` slots. A lane is also woken when none of its slots is left with
 * us (inflight == 0), and at the latest RF_LANE_WAKE_NS after slots came
 * back for it (wake_due()).
 */
static void free_submit(struct tx_state *s, uint64_t now)
{
	while (s->dirty_lanes) {
		uint32_t lane = (uint32_t)__builtin_ctzll(s->dirty_lanes);
		struct rf_tx_lane *ln = &s->e->lanes[lane];
		struct rf_ring *r = ln->free.ring;
		uint64_t bit = 1ull << lane;
		uint32_t wanted;

		s->dirty_lanes &= s->dirty_lanes - 1;
		/* release store of `producer`: the slot numbers are visible
		 * before the index (pairs with the lane's Atomics.load) */
		rf_ring_submit(&ln->free);
		ln->free_pub = ln->free.local;
		/* Dekker with a lane waiting for slots: our index store before
		 * its flag; pairs with the fence after it stores consumer_waiting
		 * (then it re-reads `producer`, so one of us sees the other) */
		rf_smp_mb();
		wanted = rf_load_relaxed(&r->consumer_waiting);
		if (rf_unlikely(wanted)) {
			/* ready as the lane sees it: our index minus its consumer
			 * (the lane's word: only a wake decision rests on it) */
			uint32_t ready = ln->free_pub - rf_load_relaxed(&r->consumer);

			if (ready >= wanted || ln->inflight == 0) {
				rf_futex_wake(&r->producer);
				s->wake_lanes &= ~bit;
			} else if (!(s->wake_lanes & bit)) {
				if (!s->wake_lanes || now + RF_LANE_WAKE_NS < s->wake_at)
					s->wake_at = now + RF_LANE_WAKE_NS;
				s->wake_lanes |= bit;
			}
		}
	}
}

/* Wake the lanes that have waited RF_LANE_WAKE_NS with slots back. */
static void wake_due(struct tx_state *s)
{
	while (s->wake_lanes) {
		uint32_t lane = (uint32_t)__builtin_ctzll(s->wake_lanes);
		struct rf_ring *r = s->e->lanes[lane].free.ring;

		s->wake_lanes &= s->wake_lanes - 1;
		/* pairs with the lane's fence after it stores consumer_waiting */
		rf_smp_mb();
		if (rf_load_relaxed(&r->consumer_waiting))
			rf_futex_wake(&r->producer);
	}
}

/* ------------------------------------------------------------- taking -- */

/* Drop a descriptor the engine took (its slot is ours again: give it back);
 * the caller has bumped the drop's thread counter. */
static inline void drop_desc(struct tx_state *s, uint32_t lane, const struct rf_desc *d)
{
	rf_counter_add(&stream_of(s, d->stream)->dropped, 1);
	rf_counter_add(&s->e->lanes[lane].lc->dropped, 1);
	free_put(s, lane, d->slot);
}

/* A destination's header template, current with its entry: checked and
 * rebuilt only when the entry's gen moved (a rewrite). NULL: not a valid
 * destination (RF_C_DROP_BAD_DEST). */
static __attribute__((noinline)) const struct rf_netpkt_tpl *
dest_refresh(struct tx_state *s, uint32_t lane, struct rf_netpkt_tpl *t, const struct rf_dest *sd)
{
	struct rf_dest d;
	uint32_t i;

	for (i = 0; i < RF_DEST_READ_TRIES; i++) {
		if (rf_dest_read(sd, &d) == 0) {
			/* a bad version leaves the template alone: packets taken
			 * with it still leave with it */
			if (!(d.flags & RF_DEST_F_VALID) || !rf_netpkt_hdr_len(&d))
				return NULL;
			rf_netpkt_tpl_build(t, &d);
			return t;
		}
		cpu_relax();
	}
	/* the writer holds the entry mid-write: its last complete version */
	if (t->hlen)
		return t;
	rf_tx_lane_fault(s->e, lane, RF_LANE_FAULT_DEST_TORN, 1);
	return NULL;
}

static inline const struct rf_netpkt_tpl *dest_tpl(struct tx_state *s, uint32_t lane, uint32_t dest)
{
	struct rf_netpkt_tpl *t = &s->tpl[dest];

	if (rf_likely(t->hlen && t->gen == rf_dest_gen(&s->dests[dest])))
		return t;
	return dest_refresh(s, lane, t, &s->dests[dest]);
}

/* Is the slot (relative to the lane's first) the lane's to submit? A slot
 * last seen on the free ring is the lane's if the lane has taken it since. */
static inline int lane_holds(struct tx_state *s, uint32_t lane, struct rf_tx_lane *ln, uint32_t rel)
{
	if (rf_likely(ln->where[rel] == RF_SLOT_LANE))
		return 1;
	if (ln->where[rel] == RF_SLOT_FREE_RING)
		rf_tx_free_view_advance(s->e, lane);
	return ln->where[rel] == RF_SLOT_LANE;
}

/* Snapshot one descriptor, check the copy, schedule it or count the drop. */
static inline void take_desc(struct tx_state *s, uint32_t lane, struct rf_tx_lane *ln,
			     const struct rf_desc *shared, uint64_t now)
{
	const struct rf_netpkt_tpl *t;
	struct rf_wheel_item it;
	struct rf_desc *d = &it.desc;
	uint32_t rel;

	/* the lane may rewrite the entry at any time: check and use one copy */
	rf_snapshot(d, shared, sizeof(*d));
	if (rf_unlikely(d->seq != ln->next_seq))
		rf_counter_add(&s->c[RF_C_DESC_SEQ_GAP], 1);
	ln->next_seq = d->seq + 1;

	rel = d->slot - ln->slot_first;
	if (rf_unlikely(rel >= ln->slot_count || !lane_holds(s, lane, ln, rel))) {
		/* drop: RF_C_DROP_BAD_SLOT. Not the lane's slot, or one it does
		 * not hold (in flight already, or still on its free ring): not
		 * ours to return */
		rf_tx_lane_fault(s->e, lane, rel >= ln->slot_count ? RF_LANE_FAULT_SLOT
								   : RF_LANE_FAULT_SLOT_NOT_HELD, 1);
		rf_counter_add(&s->c[RF_C_DROP_BAD_SLOT], 1);
		rf_counter_add(&stream_of(s, d->stream)->dropped, 1);
		rf_counter_add(&ln->lc->dropped, 1);
		return;
	}
	/* ours until free_put() gives it back (free_submit()'s wake rule) */
	ln->where[rel] = RF_SLOT_ENGINE;
	ln->inflight++;
	if (rf_unlikely(d->dest - ln->dest_first >= ln->dest_count)) {
		/* drop: RF_C_DROP_BAD_DEST (another lane's entry, or none) */
		rf_tx_lane_fault(s->e, lane, RF_LANE_FAULT_DEST, 1);
		rf_counter_add(&s->c[RF_C_DROP_BAD_DEST], 1);
		drop_desc(s, lane, d);
		return;
	}
	t = dest_tpl(s, lane, d->dest);
	if (rf_unlikely(!t)) {
		/* drop: RF_C_DROP_BAD_DEST (entry not valid) */
		rf_counter_add(&s->c[RF_C_DROP_BAD_DEST], 1);
		drop_desc(s, lane, d);
		return;
	}
	if (rf_unlikely(d->len > s->payload_max || t->hlen - RF_ETH_HLEN + d->len > s->mtu)) {
		/* drop: RF_C_DROP_BAD_LEN */
		rf_counter_add(&s->c[RF_C_DROP_BAD_LEN], 1);
		drop_desc(s, lane, d);
		return;
	}
	if (rf_unlikely(d->tx_time > now + RF_TX_HORIZON_NS)) {
		/* drop: RF_C_DROP_BAD_TIME (UINT64_MAX included: it would
		 * never be due, and hold its slot) */
		rf_counter_add(&s->c[RF_C_DROP_BAD_TIME], 1);
		drop_desc(s, lane, d);
		return;
	}
	it.lane = lane;
	/* A packet for now while the wheel is empty needs no timing: it joins
	 * the FIFO of such packets, which leave before anything the wheel gets
	 * later unless that is due earlier (send_due() merges by deadline).
	 * That saves the wheel's insert and pop for the common unpaced case. */
	if (!d->tx_time && !s->e->wheel.count && s->nowq_count < RF_NOWQ_SIZE) {
		it.deadline = now;
		s->nowq[(s->nowq_head + s->nowq_count++) & (RF_NOWQ_SIZE - 1)] = it;
		return;
	}
	it.deadline = d->tx_time ? d->tx_time : now;
	/* the wheel holds one entry per pool slot and the engine holds each
	 * slot once (`where`): it cannot be full */
	(void)rf_wheel_insert(&s->e->wheel, &it);
}

/*
 * Up to `max` due packets in deadline order into out[]: the "now" FIFO's
 * head goes after every wheel packet due at or before its deadline.
 */
static uint32_t pop_due(struct tx_state *s, uint64_t now, struct rf_wheel_item *out, uint32_t max)
{
	struct rf_wheel *w = &s->e->wheel;
	uint32_t n = 0;

	while (n < max && s->nowq_count) {
		const struct rf_wheel_item *q = &s->nowq[s->nowq_head];

		if (w->count)
			n += rf_wheel_pop_due(w, q->deadline, out + n, max - n);
		if (n == max)
			break;
		out[n++] = *q;
		s->nowq_head = (s->nowq_head + 1) & (RF_NOWQ_SIZE - 1);
		s->nowq_count--;
	}
	if (n < max && w->count)
		n += rf_wheel_pop_due(w, now, out + n, max - n);
	return n;
}

/* Take descriptors from every lane into the wheel. Returns how many. */
static uint32_t drain_lanes(struct tx_state *s, uint64_t now)
{
	struct rf_engine *e = s->e;
	uint32_t lanes = e->hs.lane_count, lane, total = 0;

	for (lane = 0; lane < lanes; lane++) {
		struct rf_tx_lane *ln = &e->lanes[lane];
		uint32_t taken = 0, rounds;

		if (rf_unlikely(ln->quarantined))
			continue;
		for (rounds = 0; rounds < RF_LANE_QUOTA_BURSTS; rounds++) {
			uint32_t idx, n, k, room = e->wheel.cap - e->wheel.count - s->nowq_count;

			n = rf_ring_peek(&ln->submit, s->burst, &idx);
			if (rf_unlikely(ln->submit.bad_peer != ln->bad_submit))
				rf_tx_lane_bad_peers(e, lane);
			if (n > room)
				n = room; /* backpressure: leave the rest in the ring */
			if (!n)
				break;
			for (k = 0; k < n && !ln->quarantined; k++)
				take_desc(s, lane, ln, rf_ring_entry(&ln->submit, idx + k), now);
			rf_counter_add(&s->c[RF_C_DESC_CONSUMED], k);
			rf_counter_add(&ln->lc->taken, k);
			/* release store: we are done reading the entries (pairs
			 * with the lane's Atomics.load of `consumer`) */
			rf_ring_release(&ln->submit, k);
			taken += k;
			if (k < s->burst)
				break;
		}
		if (taken) {
			struct rf_ring *r = ln->submit.ring;

			total += taken;
			/* Dekker with a lane waiting for room; pairs with the
			 * fence after it sets producer_waiting */
			rf_smp_mb();
			if (rf_unlikely(rf_load_relaxed(&r->producer_waiting)))
				rf_futex_wake(&r->consumer);
		}
	}
	return total;
}

/* ------------------------------------------------------------ sending -- */

static inline uint32_t hist_bucket(uint64_t late_ns)
{
	uint64_t us = (late_ns + 999) / 1000; /* a multiply: the divisor is constant */
	uint32_t b;

	if (us <= 1)
		return 0;
	b = 64 - (uint32_t)__builtin_clzll(us - 1);
	return b < RF_HIST_BUCKETS - 1 ? b : RF_HIST_BUCKETS - 1;
}

/*
 * The payload was written by a worker on another core: its cache lines are
 * there, and the copy into the TX ring would wait for them one by one.
 * Asking for the lines of the packets 8 places ahead (~1 us of work) lets
 * the transfers overlap with the work on the current one (measured when the
 * checksum read the pool first: its share of the TX thread's samples fell
 * from ~7% to ~4% at 1316 bytes; 2 ahead: ~5.5%).
 */
#define RF_PREFETCH_AHEAD 8u

static inline void prefetch_payload(struct tx_state *s, const struct rf_desc *d)
{
	const uint8_t *p = rf_slot_data(s->e->region, &s->e->hs, d->slot);
	uint32_t off;

	for (off = 0; off < d->len; off += 64)
		__builtin_prefetch(p + off, 0, 3);
}

/* The port kept frames: try again on a deadline, later each time nothing
 * went out in between (progress resets it, see retry_progress). */
static void retry_schedule(struct tx_state *s, uint64_t now)
{
	if (s->retry_at)
		return;
	s->retry_at = now + s->retry_ns;
	if (s->retry_ns < RF_TX_RETRY_MAX_NS)
		s->retry_ns *= 2;
}

static inline void retry_progress(struct tx_state *s)
{
	s->retry_ns = RF_TX_RETRY_NS;
}

/* Send every frame queued on the port: one system call at most. A port
 * that kept frames is flushed again on a deadline (retry_at). */
static void tx_flush(struct tx_state *s, uint64_t now)
{
	struct rf_engine *e = s->e;
	struct rf_port_stats *ps = rf_port_stats(s->t->port);
	uint64_t calls = ps->syscalls;
	int r;

	s->unflushed = 0;
	r = e->ops->flush(s->t->port);
	/* a flush is one that sent frames or made the system call */
	if (r || ps->syscalls != calls)
		rf_counter_add(&s->c[RF_C_TX_FLUSHES], 1);
	if (r > 0)
		retry_progress(s);
	if (rf_unlikely(ps->tx_backlog))
		retry_schedule(s, now);
	rf_thread_port_stats(s->t);
}

/* Send what is due: packets left over from a full TX ring first, else the
 * wheel's due packets, in one flush. Returns packets sent or dropped. */
static uint32_t send_due(struct tx_state *s, uint64_t now)
{
	struct rf_engine *e = s->e;
	uint32_t i, m = 0, took, ok = 0, done = 0, cap;
	uint64_t all_bytes = 0;

	if (!s->npend) {
		uint64_t upto = now;

		/* once a packet is due, the ones due within the window join it */
		if (e->cfg.tx_window_ns &&
		    (s->nowq_count ? s->nowq[s->nowq_head].deadline : rf_wheel_next(&e->wheel)) <= now)
			upto = now + e->cfg.tx_window_ns;
		s->npend = pop_due(s, upto, s->pend, s->burst);
	}
	if (!s->npend)
		return 0;

	/* capture (#14): one load per burst; 0 when no capture runs */
	cap = s->cap ? rf_load_acquire(&s->cap->armed) : 0;
	for (i = 0; i < RF_PREFETCH_AHEAD && i < s->npend; i++)
		prefetch_payload(s, &s->pend[i].desc);
	for (i = 0; i < s->npend; i++) {
		struct rf_wheel_item *it = &s->pend[i];
		const struct rf_desc *d = &it->desc;
		const struct rf_netpkt_tpl *t = &s->tpl[d->dest];
		uint64_t late = now > it->deadline ? now - it->deadline : 0;
		struct rf_tx_pkt *p = &s->pkts[m];
		uint32_t hlen;

		if (i + RF_PREFETCH_AHEAD < s->npend)
			prefetch_payload(s, &s->pend[i + RF_PREFETCH_AHEAD].desc);

		if (rf_unlikely(e->cfg.late_drop_ns && late > e->cfg.late_drop_ns)) {
			/* drop: RF_C_DROP_LATE (and the stream's `dropped`) */
			rf_counter_add(&s->c[RF_C_DROP_LATE], 1);
			drop_desc(s, it->lane, d);
			done++;
			continue;
		}
		/* the entry was rewritten to another family since the packet
		 * was taken (the template follows the newest version) */
		if (rf_unlikely(t->hlen - RF_ETH_HLEN + d->len > s->mtu)) {
			/* drop: RF_C_DROP_BAD_LEN */
			rf_counter_add(&s->c[RF_C_DROP_BAD_LEN], 1);
			drop_desc(s, it->lane, d);
			done++;
			continue;
		}
		/* the IP id only has to differ between packets in flight; the
		 * payload's part of the UDP checksum is added by the port, which
		 * sums the payload after copying it (rf_tx_pkt.csum_off) */
		hlen = rf_netpkt_tpl_apply(s->hdrs[m], t, d->len, s->ip_id++);
		p->hdr = s->hdrs[m];
		p->hdr_len = (uint16_t)hlen;
		p->payload = rf_slot_data(e->region, &e->hs, d->slot);
		p->payload_len = d->len;
		/* the UDP checksum is the header's last two bytes */
		p->csum_off = (uint16_t)(hlen - 2);
		p->refused = 0;
		if (rf_unlikely(cap) && d->stream + 1u == cap)
			/* counter: the capture ring's captured / dropped */
			rf_capture_write(s->cap, &s->cap_prod, RF_CAP_SESSION, d->stream, p->hdr, hlen,
					 p->payload, d->len, hlen + d->len, p->csum_off);
		/* keep pend[] aligned with pkts[] */
		s->pend[m] = *it;
		m++;
	}

	took = m ? e->ops->tx_burst(s->t->port, s->pkts, m) : 0;
	if (rf_unlikely(took < m))
		rf_counter_add(&s->c[RF_C_TX_RING_FULL], 1); /* not a drop: retried */
	for (i = 0; i < took; i++) {
		const struct rf_wheel_item *it = &s->pend[i];
		const struct rf_tx_pkt *p = &s->pkts[i];
		struct rf_stream_counters *sc = stream_of(s, it->desc.stream);
		uint64_t late = now > it->deadline ? now - it->deadline : 0;
		uint64_t bytes = (uint64_t)p->hdr_len + p->payload_len;

		if (rf_unlikely(p->refused)) {
			/* drop: RF_C_DROP_TX_ERROR (the port will not send it) */
			rf_counter_add(&s->c[RF_C_DROP_TX_ERROR], 1);
			drop_desc(s, it->lane, &it->desc);
			continue;
		}
		ok++;
		all_bytes += bytes;
		rf_counter_add(&s->c[RF_C_HIST_BASE + hist_bucket(late)], 1);
		rf_counter_add(&sc->packets, 1);
		rf_counter_add(&sc->bytes, bytes);
		rf_counter_add(&s->e->lanes[it->lane].lc->sent, 1);
		if (late > RF_LATE_SLACK_NS && it->desc.tx_time) {
			rf_counter_add(&s->c[RF_C_LATE_PACKETS], 1);
			rf_counter_add(&sc->late, 1);
		}
		free_put(s, it->lane, it->desc.slot);
	}
	/* this thread's counters once per burst, not per packet */
	rf_counter_add(&s->c[RF_C_TX_PACKETS], ok);
	rf_counter_add(&s->c[RF_C_TX_BYTES], all_bytes);
	s->unflushed += ok;
	/* one send() per `burst` frames: a short pop (fewer due than a burst)
	 * waits for the next round when that round brings more due packets,
	 * see rf_tx_main(). A full ring flushes at once: frames a short send()
	 * left requested must go out before any frame can be reused. */
	if (s->unflushed >= s->burst || took < m)
		tx_flush(s, now);
	/* what did not fit waits for the next round, ahead of the wheel; when
	 * nothing fitted it waits for the retry deadline (no spinning on a
	 * device that refuses) */
	if (took < m) {
		memmove(&s->pend[0], &s->pend[took], (m - took) * sizeof(s->pend[0]));
		if (!took)
			retry_schedule(s, now);
	}
	s->npend = m - took;
	free_submit(s, now);
	return done + took;
}

static int tx_has_work(struct rf_thread *t)
{
	struct rf_engine *e = t->e;
	uint32_t lane, idx;

	for (lane = 0; lane < e->hs.lane_count; lane++)
		if (!e->lanes[lane].quarantined && rf_ring_peek(&e->lanes[lane].submit, 1, &idx))
			return 1;
	return 0;
}

void *rf_tx_main(void *arg)
{
	struct rf_thread *t = arg;
	struct rf_engine *e = t->e;
	struct tx_state *s;
	/* on this thread's stack (~34 KB of 8 MB): a _Thread_local in a shared
	 * object is reached through __tls_get_addr, and the compiler called it
	 * again at every use of `state` it had propagated */
	struct tx_state state;

	s = &state;
	memset(s, 0, offsetof(struct tx_state, nowq));
	s->t = t;
	s->e = e;
	s->c = t->c;
	s->dests = (const struct rf_dest *)((uint8_t *)e->region + e->hs.dest_off);
	s->tpl = e->tpl;
	s->streams = (struct rf_stream_counters *)((uint8_t *)e->region + e->hs.stream_counters_off);
	s->max_streams = e->hs.max_streams;
	s->payload_max = e->hs.slot_size - RF_SLOT_HEADROOM;
	s->burst = e->cfg.burst;
	s->retry_ns = RF_TX_RETRY_NS;
	s->mtu = e->mtu;
	s->ip_id = e->ip_id;
	s->cap = NULL;
	s->cap_prod = 0;
	if (e->hs.capture_off && (uint64_t)e->hs.capture_off + (uint64_t)RF_CAPTURE_RINGS * RF_CAPTURE_STRIDE <= e->hs.region_size)
		s->cap = rf_capture_ring_at(e->region, &e->hs, RF_THREAD_TX);
	/* a sleeping thread's timeout may be extended by the timer slack (50 us
	 * by default) to batch wakeups: this thread wakes for deadlines */
	(void)prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

	while (!atomic_load_explicit(&e->force_quit, memory_order_relaxed)) {
		uint64_t now = rf_now_ns(), next, aux;
		uint32_t took = drain_lanes(s, now), did = 0;

		/* frames the port kept, or a TX ring that stayed full: again
		 * only at the retry deadline */
		if (!s->retry_at || now >= s->retry_at) {
			if (s->retry_at) {
				s->retry_at = 0;
				if (rf_port_stats(t->port)->tx_backlog)
					tx_flush(s, now);
			}
			did = send_due(s, now);
		}
		/* slots of descriptors dropped as they were taken: back now, not
		 * with the next packet sent (there may be none) */
		if (rf_unlikely(s->dirty_lanes))
			free_submit(s, now);
		if (rf_unlikely(s->wake_lanes) && now >= s->wake_at)
			wake_due(s);

		next = s->nowq_count ? s->nowq[s->nowq_head].deadline : rf_wheel_next(&e->wheel);
		now = rf_now_ns();
		/* frames short of a burst wait only while the next round has
		 * due packets to add to them (the lanes brought new ones and the
		 * wheel holds due ones); they never wait for a later deadline */
		if (s->unflushed && !(took && next <= now))
			tx_flush(s, now);
		if (took || did)
			continue;
		if (s->npend && !s->retry_at)
			continue;
		if (s->npend)
			next = UINT64_MAX; /* nothing leaves before them: wait for the retry */
		/* retries and lane wakes need no precision: sleep to them */
		aux = s->retry_at ? s->retry_at : UINT64_MAX;
		if (s->wake_lanes && s->wake_at < aux)
			aux = s->wake_at;
		if (next <= now || aux <= now)
			continue;
		if (next - now > e->cfg.spin_ns) {
			uint64_t sleep = next == UINT64_MAX ? UINT64_MAX : next - now - e->cfg.spin_ns;

			if (aux != UINT64_MAX && aux - now < sleep)
				sleep = aux - now;
			if (sleep > RF_TX_IDLE_NS)
				sleep = RF_TX_IDLE_NS;
			rf_doorbell_sleep(t, sleep, -1, tx_has_work);
		} else {
			cpu_relax();
		}
	}
	if (s->unflushed)
		tx_flush(s, rf_now_ns());
	/* packets still pending (TX ring full at stop) and "now" packets not
	 * sent go back to the wheel: it survives a stop (their slots stay
	 * RF_SLOT_ENGINE and go back at destroy if never sent) */
	while (s->npend)
		(void)rf_wheel_insert(&e->wheel, &s->pend[--s->npend]);
	for (; s->nowq_count; s->nowq_count--) {
		(void)rf_wheel_insert(&e->wheel, &s->nowq[s->nowq_head]);
		s->nowq_head = (s->nowq_head + 1) & (RF_NOWQ_SIZE - 1);
	}
	free_submit(s, rf_now_ns());
	e->ip_id = s->ip_id;
	return NULL;
}
