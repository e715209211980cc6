/* SPDX-License-Identifier: MIT */
/*
 * What engine.c, tx.c, rx.c and the port backends share (not part of the
 * public API in engine.h).
 */
#ifndef REFLECTOR_ENGINE_INTERNAL_H
#define REFLECTOR_ENGINE_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "port.h"
#include "reflector/barrier.h"
#include "reflector/engine.h"
#include "reflector/region.h"
#include "reflector/ring.h"
#include "relay.h"
#include "wheel.h"

#define RF_BURST_MAX 256u

/*
 * Every backend's struct rf_port starts with these, written by the port's
 * only user thread; the thread folds them into its counter block
 * (RF_C_TX_SYSCALLS, RF_C_DROP_TX_ERROR, RF_C_DROP_RX_RING) after each
 * flush.
 */
struct rf_port_stats {
	uint64_t syscalls;  /* send() calls made */
	uint64_t tx_errors; /* frames the port refused (bad size, TP_STATUS_WRONG_FORMAT) */
	uint64_t rx_drops;  /* frames the kernel dropped because the RX ring was full */
};

static inline struct rf_port_stats *rf_port_stats(struct rf_port *p)
{
	return (struct rf_port_stats *)(void *)p;
}

/* Per lane state kept by the TX thread across stop/start. */
struct rf_tx_lane {
	struct rf_ring_cursor submit; /* consumer */
	struct rf_ring_cursor free;   /* producer */
	uint32_t slot_first, slot_count;
	uint32_t dest_first, dest_count;
	uint32_t next_seq;
	uint32_t seq_started;    /* a descriptor was seen: next_seq is meaningful */
	uint32_t free_pending;   /* slots reserved on the free ring, not yet submitted */
	uint32_t inflight;       /* slots taken from the submit ring, not yet returned:
				  * 0 = no slot of this lane will come back on its own */
};

struct rf_engine;

struct rf_thread {
	struct rf_engine *e;
	enum rf_thread_id id;
	pthread_t tid;
	int started;
	int efd;                  /* doorbell eventfd */
	struct rf_port *port;
	uint64_t *c;              /* counter block in the region */
	struct rf_port_stats seen; /* port stats already folded into c */
};

struct rf_engine {
	void *region;
	size_t region_len;
	struct rf_region_hdr *h;  /* live header: doorbells and engine_state only */
	/* the header as checked at create: TypeScript can write the shared
	 * header at any time, so sizes and offsets are read from this copy */
	struct rf_region_hdr hs;
	struct rf_engine_config cfg;
	char ifname[64];
	char netns[256];
	const struct rf_port_ops *ops;
	uint8_t if_mac[6];
	uint32_t mtu;             /* effective: the largest IP packet the port sends */
	int ifindex;
	atomic_int force_quit;    /* the single stop flag, read by both threads */
	int running;
	struct rf_thread th[2];   /* RF_THREAD_TX, RF_THREAD_RX */

	/* TX thread state (survives stop/start) */
	struct rf_tx_lane lanes[RF_MAX_LANES];
	struct rf_wheel wheel;
	uint16_t ip_id;

	/* RX thread state */
	struct rf_relay *relay;
	struct rf_ring_cursor policy; /* consumer */
	struct rf_ring_cursor events; /* producer */
};

void *rf_tx_main(void *arg);
void *rf_rx_main(void *arg);

/* Wake a TypeScript side sleeping on a ring word (the addon's futexWait uses
 * FUTEX_WAIT_PRIVATE: the SharedArrayBuffer is in our address space). */
static inline void rf_futex_wake(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Fold the port's send statistics into the thread's counter block. */
static inline void rf_thread_port_stats(struct rf_thread *t)
{
	struct rf_port_stats *s = rf_port_stats(t->port);

	if (s->syscalls != t->seen.syscalls) {
		rf_counter_add(&t->c[RF_C_TX_SYSCALLS], s->syscalls - t->seen.syscalls);
		t->seen.syscalls = s->syscalls;
	}
	if (rf_unlikely(s->tx_errors != t->seen.tx_errors)) {
		/* drop: the port refused frames (RF_C_DROP_TX_ERROR) */
		rf_counter_add(&t->c[RF_C_DROP_TX_ERROR], s->tx_errors - t->seen.tx_errors);
		t->seen.tx_errors = s->tx_errors;
	}
	if (rf_unlikely(s->rx_drops != t->seen.rx_drops)) {
		/* drop: the kernel found the RX ring full (RF_C_DROP_RX_RING) */
		rf_counter_add(&t->c[RF_C_DROP_RX_RING], s->rx_drops - t->seen.rx_drops);
		t->seen.rx_drops = s->rx_drops;
	}
}

/* Sleep on the thread's doorbell for at most timeout_ns (UINT64_MAX: until
 * rung), after the sleeping flag handshake of region.h. `has_work` re-checks
 * the rings after the fence. Returns 1 if the doorbell was rung. */
int rf_doorbell_sleep(struct rf_thread *t, uint64_t timeout_ns, int extra_fd,
		      int (*has_work)(struct rf_thread *t));

#endif
