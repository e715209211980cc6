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

#include "engine_internal.h"

#define RX_IDLE_NS   10000000ull /* 10 ms: the longest an idle RX thread sleeps */
#define RX_FILTER_MAX 4096u      /* BPF_MAXINSNS */

struct rx_state {
	struct rf_thread *t;
	struct rf_engine *e;
	uint64_t *c;
	uint32_t burst;
	struct rf_rx_pkt pkts[RF_BURST_MAX];
	struct sock_filter filter[RX_FILTER_MAX];
};

/* Report an error to TypeScript (the event ring has one producer: us). */
static void post_event(struct rx_state *s, uint32_t type, uint64_t a, uint64_t b)
{
	struct rf_ring_cursor *ev = &s->e->events;
	struct rf_event *x;
	uint32_t idx;

	if (!rf_ring_reserve(ev, 1, &idx))
		return; /* the ring is full: the error is still in the counters */
	x = rf_ring_entry(ev, idx);
	memset(x, 0, sizeof(*x));
	x->type = type;
	x->a = a;
	x->b = b;
	rf_ring_submit(ev);
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
		post_event(s, RF_EVENT_ERROR, RF_THREAD_RX, (uint64_t)errno);
}

/* Apply policy messages; each is acked on the event ring, so a message waits
 * in its ring while the event ring is full. Returns messages applied. */
static uint32_t drain_policy(struct rx_state *s)
{
	struct rf_engine *e = s->e;
	struct rf_ring_cursor *pc = &e->policy, *ev = &e->events;
	uint32_t idx, n, k, changed = 0;

	n = rf_ring_peek(pc, s->burst, &idx);
	if (!n)
		return 0;
	for (k = 0; k < n; k++) {
		const struct rf_policy_msg *m = rf_ring_entry(pc, idx + k);
		struct rf_event *x;
		uint32_t eidx;
		int rc;

		if (rf_unlikely(!rf_ring_reserve(ev, 1, &eidx)))
			break;
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
	rf_thread_port_stats(s->t);
	/* the frames stay valid until here: the relay copied what it sends */
	e->ops->rx_release(port);
	return n;
}

static int rx_has_work(struct rf_thread *t)
{
	uint32_t idx;

	return rf_ring_peek(&t->e->policy, 1, &idx) != 0;
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
		uint32_t work = drain_policy(s);

		work += rx_once(s);
		if (!work)
			rf_doorbell_sleep(t, RX_IDLE_NS, e->ops->rx_fd(t->port), rx_has_work);
	}
	return NULL;
}
