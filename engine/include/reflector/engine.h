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
	/* the kernel tier (docs/kernel-tier.md) */
	const char *bpf_object;  /* path of engine/bpf/relay.bpf.o; NULL = no tc program */
	uint32_t relay_tier;     /* 0 default (kernel where allowed), 1 user, 2 kernel */
	uint32_t kernel_orphan_s; /* watchdog: no heartbeat this long and the program passes all (0 = 30) */
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

struct rf_output_counters;

/* Which tier relays: "kernel", "user" (the tc program only consumes) or
 * "none" (no tc program: nothing consumes); `why` says why it is not
 * kernel (empty when it is). Valid from create to destroy. */
const char *rf_engine_relay_tier(const struct rf_engine *e, const char **why);

/* The kernel tier's counters, summed over CPUs (0 when there is none):
 * per engine counter index (n of them, at most 64), and per output slot. */
int rf_engine_kernel_counters(const struct rf_engine *e, uint64_t *reasons, uint32_t n);
int rf_engine_kernel_output(const struct rf_engine *e, uint32_t slot, struct rf_output_counters *out);

/* BPF_PROG_TEST_RUN of the tc program (ktier.h rf_ktier_test_run); -ENOENT without one. */
int rf_engine_kernel_test_run(const struct rf_engine *e, uint32_t test_out, const uint8_t *frame,
			      uint32_t len, uint8_t *out, uint32_t *out_len);

#endif
