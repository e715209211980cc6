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
 */
#include <stdatomic.h>
#include <string.h>
#include <sys/prctl.h>

#include "clock.h"
#include "engine_internal.h"
#include "netpkt.h"

/* A packet counts as late when it leaves more than this after its time: the
 * first lateness histogram bound, so late_packets = packets past bucket 0. */
#define RF_LATE_SLACK_NS 1000u

/* Descriptors taken from one lane per round, so one busy lane cannot starve
 * the others. */
#define RF_LANE_QUOTA_BURSTS 4u

/* "now" packets held outside the wheel (a power of two) */
#define RF_NOWQ_SIZE 1024u

struct tx_state {
	struct rf_thread *t;
	struct rf_engine *e;
	uint64_t *c;
	struct rf_dest *dests;
	struct rf_stream_counters *streams;
	uint32_t max_streams;
	uint32_t payload_max;  /* slot bytes after the headroom */
	uint32_t burst;
	uint64_t dirty_lanes;  /* lanes with slots reserved on their free ring */
	uint32_t npend;        /* popped from the wheel, not yet sent (TX ring full) */
	uint32_t unflushed;    /* frames queued on the port since the last flush */
	/* "now" packets taken while the wheel was empty, in take order (their
	 * deadlines, the take times, never decrease): see take_desc() */
	uint32_t nowq_head, nowq_count;
	struct rf_wheel_item nowq[RF_NOWQ_SIZE];
	struct rf_wheel_item pend[RF_BURST_MAX];
	struct rf_tx_pkt pkts[RF_BURST_MAX];
	uint8_t hdrs[RF_BURST_MAX][RF_HDR_MAX];
};

static inline struct rf_stream_counters *stream_of(struct tx_state *s, uint32_t stream)
{
	return &s->streams[stream % s->max_streams];
}

/* Give a slot back to its lane (submitted by free_submit()). */
static inline void free_put(struct tx_state *s, uint32_t lane, uint32_t slot)
{
	struct rf_tx_lane *ln = &s->e->lanes[lane];
	uint32_t idx;

	/* counted by take_desc() while it was ours */
	ln->inflight--;
	/* the free ring holds every slot of the lane, so it is never full unless
	 * the lane submitted one slot twice: the duplicate is not returned
	 * (RF_C_DROP_BAD_SLOT counts it) */
	if (rf_unlikely(!rf_ring_reserve(&ln->free, 1, &idx))) {
		rf_counter_add(&s->c[RF_C_DROP_BAD_SLOT], 1);
		return;
	}
	*(uint32_t *)rf_ring_entry(&ln->free, idx) = slot;
	ln->free_pending++;
	s->dirty_lanes |= 1ull << lane;
}

/*
 * Publish the returned slots of every lane touched since the last call, and
 * wake a lane that sleeps for slots once it has enough (region.h: its
 * consumer_waiting word holds how many it wants, a low-water mark). Waking
 * it for every flush cost a futex wait, a wake and two context switches per
 * burst while a fast worker waits for slots; now that is once per
 * `wanted` slots. A lane is also woken when none of its slots is left with
 * us (inflight == 0): then no more will come back and it takes what there is.
 */
static void free_submit(struct tx_state *s)
{
	while (s->dirty_lanes) {
		uint32_t lane = (uint32_t)__builtin_ctzll(s->dirty_lanes);
		struct rf_tx_lane *ln = &s->e->lanes[lane];
		struct rf_ring *r = ln->free.ring;
		uint32_t wanted;

		s->dirty_lanes &= s->dirty_lanes - 1;
		ln->free_pending = 0;
		/* release store of `producer`: the slot numbers are visible
		 * before the index (pairs with the lane's Atomics.load) */
		rf_ring_submit(&ln->free);
		/* Dekker with a lane waiting for slots: our index store before
		 * its flag; pairs with the fence after it stores consumer_waiting
		 * (then it re-reads `producer`, so one of us sees the other) */
		rf_smp_mb();
		wanted = rf_load_relaxed(&r->consumer_waiting);
		if (rf_unlikely(wanted)) {
			/* ready as the lane sees it: our index minus its consumer */
			uint32_t ready = ln->free.local - rf_load_relaxed(&r->consumer);

			if (ready >= wanted || ln->inflight == 0)
				rf_futex_wake(&r->producer);
		}
	}
}

/* Drop a descriptor that reached the wheel (or was refused) and give its
 * slot back; the caller has bumped the drop counter. */
static inline void drop_desc(struct tx_state *s, uint32_t lane, const struct rf_desc *d)
{
	rf_counter_add(&stream_of(s, d->stream)->dropped, 1);
	free_put(s, lane, d->slot);
}

/* Validate one descriptor; schedule it or count the drop. */
static inline void take_desc(struct tx_state *s, uint32_t lane, const struct rf_desc *d,
			     uint64_t now)
{
	struct rf_tx_lane *ln = &s->e->lanes[lane];
	const struct rf_dest *dst;
	struct rf_wheel_item it;
	uint32_t hlen;

	if (rf_unlikely(d->seq != ln->next_seq))
		rf_counter_add(&s->c[RF_C_DESC_SEQ_GAP], 1);
	ln->next_seq = d->seq + 1;

	if (rf_unlikely(d->slot - ln->slot_first >= ln->slot_count)) {
		/* drop: RF_C_DROP_BAD_SLOT; the slot is not this lane's to return */
		rf_counter_add(&s->c[RF_C_DROP_BAD_SLOT], 1);
		rf_counter_add(&stream_of(s, d->stream)->dropped, 1);
		return;
	}
	/* ours until free_put() gives it back (free_submit()'s wake rule) */
	ln->inflight++;
	dst = d->dest - ln->dest_first < ln->dest_count ? &s->dests[d->dest] : NULL;
	if (rf_unlikely(!dst || !(dst->flags & RF_DEST_F_VALID) ||
			!(hlen = rf_netpkt_hdr_len(dst)))) {
		/* drop: RF_C_DROP_BAD_DEST */
		rf_counter_add(&s->c[RF_C_DROP_BAD_DEST], 1);
		drop_desc(s, lane, d);
		return;
	}
	if (rf_unlikely(d->len > s->payload_max || hlen - RF_ETH_HLEN + d->len > s->e->mtu)) {
		/* drop: RF_C_DROP_BAD_LEN */
		rf_counter_add(&s->c[RF_C_DROP_BAD_LEN], 1);
		drop_desc(s, lane, d);
		return;
	}
	/* A packet for now while the wheel is empty needs no timing: it joins
	 * the FIFO of such packets, which leave before anything the wheel gets
	 * later unless that is due earlier (send_due() merges by deadline).
	 * That saves the wheel's insert and pop for the common unpaced case. */
	if (!d->tx_time && !s->e->wheel.count && s->nowq_count < RF_NOWQ_SIZE) {
		struct rf_wheel_item *q =
			&s->nowq[(s->nowq_head + s->nowq_count++) & (RF_NOWQ_SIZE - 1)];

		q->deadline = now;
		q->desc = *d;
		q->lane = lane;
		return;
	}
	it.deadline = d->tx_time ? d->tx_time : now;
	it.desc = *d;
	it.lane = lane;
	/* the wheel holds one entry per pool slot, so it fills only when a lane
	 * submits a slot twice; the caller stops taking descriptors before */
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
static uint32_t drain_lanes(struct tx_state *s)
{
	struct rf_engine *e = s->e;
	uint32_t lanes = e->hs.lane_count, lane, total = 0;
	uint64_t now = rf_now_ns();

	for (lane = 0; lane < lanes; lane++) {
		struct rf_tx_lane *ln = &e->lanes[lane];
		uint32_t taken = 0, rounds;

		for (rounds = 0; rounds < RF_LANE_QUOTA_BURSTS; rounds++) {
			uint32_t idx, n, k, room = e->wheel.cap - e->wheel.count - s->nowq_count;

			n = rf_ring_peek(&ln->submit, s->burst, &idx);
			if (n > room)
				n = room; /* backpressure: leave the rest in the ring */
			if (!n)
				break;
			for (k = 0; k < n; k++) {
				const struct rf_desc *d = rf_ring_entry(&ln->submit, idx + k);

				take_desc(s, lane, d, now);
			}
			rf_counter_add(&s->c[RF_C_DESC_CONSUMED], n);
			/* release store: we are done reading the entries (pairs
			 * with the lane's Atomics.load of `consumer`) */
			rf_ring_release(&ln->submit, n);
			taken += n;
			if (n < s->burst)
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

static inline uint32_t hist_bucket(uint64_t late_ns)
{
	uint64_t us = (late_ns + 999) / 1000;
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

/* Send every frame queued on the port: one system call at most. */
static void tx_flush(struct tx_state *s)
{
	struct rf_engine *e = s->e;
	uint64_t calls = rf_port_stats(s->t->port)->syscalls;
	int r;

	s->unflushed = 0;
	r = e->ops->flush(s->t->port);
	/* failures are counted by the port (tx_errors) and retried by it; a
	 * flush is one that sent frames or made the system call */
	if (r || rf_port_stats(s->t->port)->syscalls != calls)
		rf_counter_add(&s->c[RF_C_TX_FLUSHES], 1);
	rf_thread_port_stats(s->t);
}

/* Send what is due: packets left over from a full TX ring first, else the
 * wheel's due packets, in one flush. Returns packets sent or dropped. */
static uint32_t send_due(struct tx_state *s)
{
	struct rf_engine *e = s->e;
	uint64_t now = rf_now_ns();
	uint32_t i, m = 0, sent, done = 0;

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

	for (i = 0; i < RF_PREFETCH_AHEAD && i < s->npend; i++)
		prefetch_payload(s, &s->pend[i].desc);
	for (i = 0; i < s->npend; i++) {
		struct rf_wheel_item *it = &s->pend[i];
		const struct rf_desc *d = &it->desc;
		uint64_t late = now > it->deadline ? now - it->deadline : 0;
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
		/* the IP id only has to differ between packets in flight; the
		 * payload's part of the UDP checksum is added by the port, which
		 * sums the payload after copying it (rf_tx_pkt.csum_off) */
		hlen = rf_netpkt_build_sum(s->hdrs[m], &s->dests[d->dest], d->len, 0, e->ip_id++);
		if (rf_unlikely(!hlen)) {
			/* the entry was rewritten while in flight: RF_C_DROP_BAD_DEST */
			rf_counter_add(&s->c[RF_C_DROP_BAD_DEST], 1);
			drop_desc(s, it->lane, d);
			done++;
			continue;
		}
		s->pkts[m].hdr = s->hdrs[m];
		s->pkts[m].hdr_len = (uint16_t)hlen;
		s->pkts[m].payload = rf_slot_data(e->region, &e->hs, d->slot);
		s->pkts[m].payload_len = d->len;
		/* the UDP checksum is the header's last two bytes */
		s->pkts[m].csum_off = (uint16_t)(hlen - 2);
		/* keep pend[] aligned with pkts[] */
		s->pend[m] = *it;
		m++;
	}

	sent = m ? e->ops->tx_burst(s->t->port, s->pkts, m) : 0;
	s->unflushed += sent;
	if (rf_unlikely(sent < m))
		rf_counter_add(&s->c[RF_C_TX_RING_FULL], 1); /* not a drop: retried */
	/* one send() per `burst` frames: a short pop (fewer due than a burst)
	 * waits for the next round when that round brings more due packets,
	 * see rf_tx_main(). A full ring flushes at once: frames a short send()
	 * left requested must go out before any frame can be reused. */
	if (s->unflushed >= s->burst || sent < m)
		tx_flush(s);
	{
		/* this thread's counters once per burst, not per packet */
		uint64_t all_bytes = 0;

		for (i = 0; i < sent; i++)
			all_bytes += (uint64_t)s->pkts[i].hdr_len + s->pkts[i].payload_len;
		rf_counter_add(&s->c[RF_C_TX_PACKETS], sent);
		rf_counter_add(&s->c[RF_C_TX_BYTES], all_bytes);
	}
	for (i = 0; i < sent; i++) {
		const struct rf_wheel_item *it = &s->pend[i];
		struct rf_stream_counters *sc = stream_of(s, it->desc.stream);
		uint64_t late = now > it->deadline ? now - it->deadline : 0;
		uint64_t bytes = (uint64_t)s->pkts[i].hdr_len + s->pkts[i].payload_len;

		rf_counter_add(&s->c[RF_C_HIST_BASE + hist_bucket(late)], 1);
		rf_counter_add(&sc->packets, 1);
		rf_counter_add(&sc->bytes, bytes);
		if (late > RF_LATE_SLACK_NS && it->desc.tx_time) {
			rf_counter_add(&s->c[RF_C_LATE_PACKETS], 1);
			rf_counter_add(&sc->late, 1);
		}
		free_put(s, it->lane, it->desc.slot);
	}
	/* what did not fit waits for the next round, ahead of the wheel */
	if (sent < m)
		memmove(&s->pend[0], &s->pend[sent], (m - sent) * sizeof(s->pend[0]));
	s->npend = m - sent;
	free_submit(s);
	return done + sent;
}

static int tx_has_work(struct rf_thread *t)
{
	struct rf_engine *e = t->e;
	uint32_t lane, idx;

	for (lane = 0; lane < e->hs.lane_count; lane++)
		if (rf_ring_peek(&e->lanes[lane].submit, 1, &idx))
			return 1;
	return 0;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
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
	memset(s, 0, sizeof(*s));
	s->t = t;
	s->e = e;
	s->c = t->c;
	s->dests = (struct rf_dest *)((uint8_t *)e->region + e->hs.dest_off);
	s->streams = (struct rf_stream_counters *)((uint8_t *)e->region + e->hs.stream_counters_off);
	s->max_streams = e->hs.max_streams;
	s->payload_max = e->hs.slot_size - RF_SLOT_HEADROOM;
	s->burst = e->cfg.burst;
	/* a sleeping thread's timeout may be extended by the timer slack (50 us
	 * by default) to batch wakeups: this thread wakes for deadlines */
	(void)prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

	while (!atomic_load_explicit(&e->force_quit, memory_order_relaxed)) {
		uint32_t took = drain_lanes(s);
		uint32_t did = send_due(s);
		uint64_t next, now;

		next = s->nowq_count ? s->nowq[s->nowq_head].deadline : rf_wheel_next(&e->wheel);
		now = rf_now_ns();
		/* frames short of a burst wait only while the next round has
		 * due packets to add to them (the lanes brought new ones and the
		 * wheel holds due ones); they never wait for a later deadline */
		if (s->unflushed && !(took && next <= now))
			tx_flush(s);
		if (took || did || s->npend)
			continue;
		if (next <= now)
			continue;
		if (next - now > e->cfg.spin_ns)
			rf_doorbell_sleep(t, next == UINT64_MAX ? UINT64_MAX : next - now - e->cfg.spin_ns,
					  -1, tx_has_work);
		else
			cpu_relax();
	}
	if (s->unflushed)
		tx_flush(s);
	/* packets still pending (TX ring full at stop) and "now" packets not
	 * sent go back to the wheel: it survives a stop, and gives their slots
	 * back at destroy */
	while (s->npend)
		(void)rf_wheel_insert(&e->wheel, &s->pend[--s->npend]);
	for (; s->nowq_count; s->nowq_count--) {
		(void)rf_wheel_insert(&e->wheel, &s->nowq[s->nowq_head]);
		s->nowq_head = (s->nowq_head + 1) & (RF_NOWQ_SIZE - 1);
	}
	free_submit(s);
	return NULL;
}
