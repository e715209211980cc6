/* SPDX-License-Identifier: MIT */
/*
 * The RX thread: policy ring -> relay table (acked on the event ring), and
 * port RX -> relay -> port TX, one flush per burst. It sleeps in poll() on
 * the port's RX descriptor and its doorbell, at most RX_IDLE_NS.
 */
#include <errno.h>
#include <linux/filter.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#include "clock.h"
#include "engine_internal.h"

#define RX_IDLE_NS   10000000ull /* 10 ms: the longest an idle RX thread sleeps */
#define RX_FILTER_MAX 4096u      /* BPF_MAXINSNS */
/* frames the port kept after a flush (refused or partly taken) go again
 * this long after, not when the next frame comes (tx.c RF_TX_RETRY_NS) */
#define RX_TX_RETRY_NS 50000ull

struct rx_state {
	struct rf_thread *t;
	struct rf_engine *e;
	uint64_t *c;
	uint32_t burst;
	uint64_t retry_at;       /* flush again then: the port kept frames (0: none) */
	struct rf_rx_pkt pkts[RF_BURST_MAX];
	struct sock_filter filter[RX_FILTER_MAX];
};

/* Post one event (the event ring has one producer: us). Returns 0, or -1
 * when the ring is full. */
static int post_event(struct rx_state *s, uint32_t type, uint64_t a, uint64_t b, uint64_t c)
{
	struct rf_ring_cursor *ev = &s->e->events;
	struct rf_event *x;
	uint32_t idx;

	if (!rf_ring_reserve(ev, 1, &idx)) {
		rf_rx_control_bad_peers(s->e);
		return -1;
	}
	x = rf_ring_entry(ev, idx);
	memset(x, 0, sizeof(*x));
	x->type = type;
	x->a = a;
	x->b = b;
	x->c = c;
	rf_ring_submit(ev);
	rf_counter_add(&s->e->control->sent, 1);
	return 0;
}

/* An error for TypeScript: when the event ring is full it is lost, and
 * counted (the control block's `dropped`); the counters still show it. */
static void post_error(struct rx_state *s, uint64_t err)
{
	if (post_event(s, RF_EVENT_ERROR, RF_THREAD_RX, err, 0))
		rf_counter_add(&s->e->control->dropped, 1);
}

/* RF_EVENT_LANE_QUARANTINED for `lane` (lane_count: the control channel).
 * Returns -1 when it does not fit the event ring (it is posted later). */
static int post_quarantine(struct rx_state *s, uint32_t lane)
{
	const struct rf_lane_counters *lc = rf_lane_counters(s->e->region, &s->e->hs, lane);
	uint32_t why = __atomic_load_n(&lc->last_fault, __ATOMIC_RELAXED), i;
	uint64_t total = 0;

	for (i = 0; i < RF_LANE_FAULT_COUNT_USED; i++)
		total += __atomic_load_n(&lc->faults[i], __ATOMIC_RELAXED);
	return post_event(s, RF_EVENT_LANE_QUARANTINED, lane, why, total);
}

/* The event of every lane the TX thread (or we: the control channel)
 * quarantined; one that does not fit the event ring waits for room. */
static void post_quarantines(struct rx_state *s)
{
	struct rf_engine *e = s->e;

	if (rf_unlikely(atomic_load_explicit(&e->quarantine_news, memory_order_relaxed)))
		e->quarantine_unposted |= atomic_exchange(&e->quarantine_news, 0);
	while (e->quarantine_unposted) {
		uint32_t lane = (uint32_t)__builtin_ctzll(e->quarantine_unposted);

		if (post_quarantine(s, lane))
			return;
		e->quarantine_unposted &= e->quarantine_unposted - 1;
	}
	if (e->control_unposted && !post_quarantine(s, e->hs.lane_count))
		e->control_unposted = 0;
}

static void reattach_filter(struct rx_state *s)
{
	uint32_t n = rf_relay_filter(s->e->relay, s->filter, RX_FILTER_MAX);
	int fd = s->e->ops->rx_fd(s->t->port);
	struct sock_fprog prog = { .len = (unsigned short)n, .filter = s->filter };

	if (!n || fd < 0)
		return;
	/* the kernel swaps the program atomically: no frame goes unfiltered */
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)))
		post_error(s, (uint64_t)errno);
}

/* Apply policy messages; each is acked on the event ring, so a message waits
 * in its ring while the event ring is full. Returns messages applied. */
static uint32_t drain_policy(struct rx_state *s)
{
	struct rf_engine *e = s->e;
	struct rf_ring_cursor *pc = &e->policy, *ev = &e->events;
	uint32_t idx, n, k, changed = 0;

	if (rf_unlikely(e->control_quarantined))
		return 0;
	n = rf_ring_peek(pc, s->burst, &idx);
	if (rf_unlikely(pc->bad_peer != e->bad_policy))
		rf_rx_control_bad_peers(e);
	if (!n)
		return 0;
	for (k = 0; k < n; k++) {
		struct rf_policy_msg msg, *m = &msg;
		struct rf_event *x;
		uint32_t eidx;
		int rc;

		if (rf_unlikely(!rf_ring_reserve(ev, 1, &eidx))) {
			rf_rx_control_bad_peers(e);
			break;
		}
		/* one copy, checked and acked: the main thread may still write
		 * the ring entry */
		rf_snapshot(&msg, rf_ring_entry(pc, idx + k), sizeof(msg));
		rc = rf_relay_apply(e->relay, m);
		if (rc == 0) {
			rf_counter_add(&s->c[RF_C_POLICY_APPLIED], 1);
			changed = 1;
		} else {
			rf_counter_add(&s->c[RF_C_POLICY_REJECTED], 1);
		}
		x = rf_ring_entry(ev, eidx);
		memset(x, 0, sizeof(*x));
		x->type = RF_EVENT_POLICY_ACK;
		x->a = m->seq;
		x->b = (uint64_t)(rc < 0 ? -rc : rc);
	}
	if (!k)
		return 0;
	/* release: we are done with the messages (pairs with the main
	 * thread's Atomics.load of `consumer`) */
	rf_ring_release(pc, k);
	rf_counter_add(&e->control->taken, k);
	rf_counter_add(&e->control->sent, k);
	/* release: the acks are visible before the index (pairs with the
	 * main thread's Atomics.load of `producer`) */
	rf_ring_submit(ev);
	/* Dekker with a waiting producer/consumer, see region.h */
	rf_smp_mb();
	if (rf_unlikely(rf_load_relaxed(&pc->ring->producer_waiting)))
		rf_futex_wake(&pc->ring->consumer);
	if (rf_unlikely(rf_load_relaxed(&ev->ring->consumer_waiting)))
		rf_futex_wake(&ev->ring->producer);
	if (changed)
		reattach_filter(s);
	return k;
}

static uint32_t rx_once(struct rx_state *s)
{
	struct rf_engine *e = s->e;
	struct rf_port *port = s->t->port;
	uint32_t n, i;
	uint64_t bytes = 0;
	int r;

	n = e->ops->rx_burst(port, s->pkts, s->burst);
	if (!n)
		return 0;
	for (i = 0; i < n; i++)
		bytes += s->pkts[i].wire_len;
	rf_counter_add(&s->c[RF_C_RX_PACKETS], n);
	rf_counter_add(&s->c[RF_C_RX_BYTES], bytes);
	rf_relay_burst(e->relay, s->pkts, n, e->ops, port, s->c);
	/* one send for everything the relay queued from this burst */
	r = e->ops->flush(port);
	if (r > 0)
		rf_counter_add(&s->c[RF_C_TX_FLUSHES], 1);
	if (rf_unlikely(rf_port_stats(port)->tx_backlog) && !s->retry_at)
		s->retry_at = rf_now_ns() + RX_TX_RETRY_NS;
	rf_thread_port_stats(s->t);
	/* the frames stay valid until here: the relay copied what it sends */
	e->ops->rx_release(port);
	return n;
}

/* Policy messages we can apply now: each needs room for its ack, so a full
 * event ring is no work (the RX thread sleeps, it does not spin on it). */
static int rx_has_work(struct rf_thread *t)
{
	struct rf_engine *e = t->e;
	uint32_t idx;

	if (atomic_load_explicit(&e->quarantine_news, memory_order_relaxed))
		return 1;
	return !e->control_quarantined && rf_ring_peek(&e->policy, 1, &idx) != 0 &&
	       rf_ring_prod_nb_free(&e->events, 1) != 0;
}

/* Flush what the port kept, on its deadline. */
static void rx_retry(struct rx_state *s)
{
	struct rf_engine *e = s->e;

	s->retry_at = 0;
	if (e->ops->flush(s->t->port) > 0)
		rf_counter_add(&s->c[RF_C_TX_FLUSHES], 1);
	rf_thread_port_stats(s->t);
	if (rf_port_stats(s->t->port)->tx_backlog)
		s->retry_at = rf_now_ns() + RX_TX_RETRY_NS;
}

void *rf_rx_main(void *arg)
{
	struct rf_thread *t = arg;
	struct rf_engine *e = t->e;
	static _Thread_local struct rx_state state;
	struct rx_state *s = &state;

	memset(s, 0, sizeof(*s));
	s->t = t;
	s->e = e;
	s->c = t->c;
	s->burst = e->cfg.burst;
	/* the table survives stop/start: put its filter back on the socket */
	reattach_filter(s);

	while (!atomic_load_explicit(&e->force_quit, memory_order_relaxed)) {
		uint32_t work;

		if (rf_unlikely(e->quarantine_unposted || e->control_unposted) ||
		    atomic_load_explicit(&e->quarantine_news, memory_order_relaxed))
			post_quarantines(s);
		work = drain_policy(s);
		work += rx_once(s);
		if (rf_unlikely(s->retry_at)) {
			uint64_t now = rf_now_ns();

			if (now >= s->retry_at) {
				rx_retry(s);
				continue;
			}
			if (!work)
				rf_doorbell_sleep(t, s->retry_at - now, e->ops->rx_fd(t->port), rx_has_work);
		} else if (!work) {
			rf_doorbell_sleep(t, RX_IDLE_NS, e->ops->rx_fd(t->port), rx_has_work);
		}
	}
	return NULL;
}
