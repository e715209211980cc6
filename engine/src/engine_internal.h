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
#include "netpkt.h"
#include "relay.h"
#include "wheel.h"

#define RF_BURST_MAX 256u

/*
 * Every backend's struct rf_port starts with these, written by the port's
 * only user thread; the thread folds them into its counter block
 * (RF_C_TX_SYSCALLS, RF_C_TX_DEVICE_ERRORS, RF_C_DROP_RX_RING) after each
 * flush.
 */
struct rf_port_stats {
	uint64_t syscalls;  /* send() calls made */
	uint64_t tx_errors; /* frames the kernel took and the device then refused (they were
			     * counted as sent: TP_STATUS_WRONG_FORMAT, AF_XDP EBUSY) */
	uint64_t rx_drops;  /* frames the kernel dropped because the RX ring was full */
	uint32_t tx_backlog; /* non-zero: frames queued that the last flush did not get
			      * out (the kernel refused or took part): flush again soon */
	uint32_t _rsvd;
};

static inline struct rf_port_stats *rf_port_stats(struct rf_port *p)
{
	return (struct rf_port_stats *)(void *)p;
}

/* Where the engine holds a lane's pool slot to be: its own view, kept from
 * what it took and returned, never read back from the region. */
enum rf_slot_where {
	RF_SLOT_LANE = 0,      /* taken by the lane from its free ring (or never given) */
	RF_SLOT_FREE_RING = 1, /* published on the lane's free ring, not yet taken */
	RF_SLOT_ENGINE = 2,    /* named by a descriptor the engine took: in flight */
};

/* Per lane state kept by the TX thread across stop/start. */
struct rf_tx_lane {
	struct rf_ring_cursor submit; /* consumer */
	struct rf_ring_cursor free;   /* producer */
	uint32_t slot_first, slot_count;
	uint32_t dest_first, dest_count;
	uint32_t next_seq;
	uint32_t inflight;       /* slots in RF_SLOT_ENGINE: 0 = no slot of this lane
				  * will come back on its own */
	uint32_t free_pub;       /* free ring producer index as last published */
	uint32_t free_seen;      /* free ring consumer index up to which `where` knows the
				  * lane took its slots */
	uint8_t *where;          /* slot_count entries of rf_slot_where */
	uint32_t *free_shadow;   /* what the engine wrote in each free ring entry */
	struct rf_lane_counters *lc; /* in the region */
	uint32_t quarantined;
	uint32_t window_faults;  /* faults since window_start */
	uint64_t window_start;
	uint32_t bad_submit, bad_free; /* cursor bad_peer counts already reported */
};

struct rf_engine;

struct rf_thread {
	_Alignas(RF_CACHELINE) struct rf_engine *e; /* each thread's block on its own lines */
	enum rf_thread_id id;
	pthread_t tid;
	int started;
	int efd;                  /* doorbell eventfd, for the engine's life */
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
	_Alignas(RF_CACHELINE) struct rf_tx_lane lanes[RF_MAX_LANES];
	struct rf_wheel wheel;
	struct rf_netpkt_tpl *tpl; /* header template per destination entry */
	uint8_t *slot_where;      /* backing of every lane's `where` */
	uint32_t *free_shadow;    /* backing of every lane's free_shadow */
	uint16_t ip_id;           /* the TX thread's, saved at its exit */

	/* TX -> RX: lanes quarantined whose event the RX thread has not posted
	 * yet (the event ring has one producer, the RX thread) */
	_Alignas(RF_CACHELINE) _Atomic uint64_t quarantine_news;

	/* RX thread state */
	_Alignas(RF_CACHELINE) struct rf_relay *relay;
	struct rf_ktier *kt;      /* the tc program, or NULL (ktier.h) */
	char tier[8];             /* "kernel", "user" or "none" */
	char tier_why[256];       /* why not "kernel" */
	char bpf_object[512];
	struct rf_ring_cursor policy; /* consumer */
	struct rf_ring_cursor events; /* producer */
	struct rf_lane_counters *control; /* the control channel's block (region) */
	uint32_t control_quarantined;
	uint32_t control_window_faults;
	uint64_t control_window_start;
	uint32_t bad_policy, bad_events; /* cursor bad_peer counts already reported */
	uint64_t quarantine_unposted; /* lanes whose event did not fit the event ring yet */
	uint32_t control_unposted;    /* the control channel's, likewise */
};

/* Count `count` faults `why` against a lane's block (lc) within its window;
 * returns 1 when the lane is past RF_LANE_FAULT_LIMIT (quarantine it). */
int rf_lane_fault(struct rf_lane_counters *lc, uint32_t *window_faults, uint64_t *window_start,
		  enum rf_lane_fault why, uint32_t count);
/* Count faults of lane `lane` (TX thread; quarantines it past the limit,
 * and tells the RX thread to post the event) / of the control channel (RX
 * thread). *_bad_peers report what the cursors found wrong with their
 * peers' indexes since the last call. */
void rf_tx_lane_fault(struct rf_engine *e, uint32_t lane, enum rf_lane_fault why, uint32_t count);
void rf_tx_lane_bad_peers(struct rf_engine *e, uint32_t lane);
void rf_rx_control_fault(struct rf_engine *e, enum rf_lane_fault why, uint32_t count);
void rf_rx_control_bad_peers(struct rf_engine *e);
/* The lane's free ring, produced from the engine's own view (tx.c): the
 * next entry to fill (0 when the ring is full), and the view moved up to
 * the lane's consumer index (what it took since). */
int rf_tx_free_reserve(struct rf_engine *e, uint32_t lane, uint32_t *idx);
void rf_tx_free_view_advance(struct rf_engine *e, uint32_t lane);
/* Write engine thread t's doorbell (one thread waking the other). */
void rf_engine_ring(struct rf_engine *e, enum rf_thread_id t);

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
		/* not a drop of ours: frames already counted as sent that the
		 * device refused (RF_C_TX_DEVICE_ERRORS) */
		rf_counter_add(&t->c[RF_C_TX_DEVICE_ERRORS], s->tx_errors - t->seen.tx_errors);
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
