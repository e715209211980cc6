/* SPDX-License-Identifier: MIT */
/*
 * The engine's lifecycle, called by the addon (engine/addon/addon.cc) and by
 * the C tests. The engine owns its threads; they touch only the port, the
 * shared region and their counters, and never call into JavaScript.
 */
#ifndef REFLECTOR_ENGINE_H
#define REFLECTOR_ENGINE_H

#include <stddef.h>
#include <stdint.h>

struct rf_engine;

enum rf_backend {
	RF_BACKEND_AFPACKET = 0, /* PACKET_RX_RING (TPACKET_V3) + PACKET_TX_RING */
	RF_BACKEND_NULL = 1,     /* discards every frame: ring and scheduler tests, benches */
	RF_BACKEND_AFXDP = 2,    /* TX thread: AF_XDP socket (copy mode, queue 0); RX: as afpacket */
};

struct rf_engine_config {
	enum rf_backend backend;
	const char *ifname;      /* interface the engine owns */
	const char *netns;       /* path of a network namespace to open the port in, or NULL */
	uint32_t tx_frames;      /* PACKET_TX_RING (afxdp: UMEM) frames per thread, power of two */
	uint32_t rx_block_size;  /* TPACKET_V3 block bytes, power of two multiple of the page */
	uint32_t rx_blocks;
	uint32_t burst;          /* frames per burst and per TX flush (default 64) */
	uint32_t mtu;            /* largest frame payload above Ethernet; 0 = the interface's */
	uint64_t late_drop_ns;   /* packets later than this are dropped (RF_C_DROP_LATE); 0 = never */
	uint64_t spin_ns;        /* the TX thread sleeps until this long before a deadline, then spins */
	uint64_t tx_window_ns;   /* when a packet is due, those due within this after now join its
				  * flush (up to this early); 0 = each at its own time */
	int cpu_tx;              /* CPU to pin the TX thread to, -1 = none */
	int cpu_rx;
	int tx_priority;         /* SCHED_FIFO priority (1..99) of the TX thread, 0 = SCHED_OTHER */
};

/* Fill in defaults for every zero field. */
void rf_engine_config_defaults(struct rf_engine_config *cfg);

/*
 * Create an engine over a region initialised by rf_region_init(). Opens the
 * port (which needs CAP_NET_RAW) but starts no thread. Returns 0, or -errno
 * with a message in err that names the interface, namespace or setting.
 */
int rf_engine_create(struct rf_engine **out, void *region, size_t region_len,
		     const struct rf_engine_config *cfg, char *err, size_t errlen);

/* Start the threads. Returns 0 or -errno (err says why). */
int rf_engine_start(struct rf_engine *e, char *err, size_t errlen);

/* Ask the threads to stop, wake them and join them. Idempotent. */
void rf_engine_stop(struct rf_engine *e);

/* Stop if running, close the port, free everything. The region is not freed. */
void rf_engine_destroy(struct rf_engine *e);

int rf_engine_running(const struct rf_engine *e);

/* Engine thread `thread`'s doorbell eventfd, open from create to destroy
 * (the addon dups it and rings the dup; it never trusts the number the
 * region's header shows). -1 for no such thread. */
int rf_engine_doorbell_fd(const struct rf_engine *e, uint32_t thread);

#endif
