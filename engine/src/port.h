/* SPDX-License-Identifier: MIT */
/*
 * The port interface: what an engine thread needs from a NIC backend. Each
 * engine thread opens its own port queue (one socket and rings for
 * AF_PACKET), so a queue has exactly one user and needs no lock.
 *
 * TX takes a gather list: a per-destination header in front of a payload
 * that may be shared by many packets (split). A backend that can chain
 * buffers (DPDK indirect mbufs, AF_XDP multi-buffer in zero-copy mode)
 * could send the payload without copying it. Copies per backend today:
 *   afpacket  header and payload copied into the TX ring frame (one payload
 *             copy per frame); the kernel builds its skb from the frame
 *   afxdp     header and payload copied into a UMEM frame (one payload copy
 *             per frame, as afpacket); in copy mode (XDP_COPY, the only mode
 *             of veth) the kernel copies the frame into an skb again
 *   null      none: frames are counted and discarded
 * Frames are queued by tx_burst and leave at flush: one system call per
 * flush, never one per packet.
 */
#ifndef REFLECTOR_PORT_H
#define REFLECTOR_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "reflector/engine.h"

enum rf_port_role {
	RF_PORT_TX = 1,
	RF_PORT_RX = 2,
};

/* A received frame, valid until the next rx_release(). */
struct rf_rx_pkt {
	const uint8_t *data; /* starts at the Ethernet header */
	uint32_t len;        /* bytes captured */
	uint32_t wire_len;   /* bytes on the wire (len < wire_len: truncated by the ring) */
	uint16_t vlan_tci;   /* VLAN tag the kernel stripped, when vlan_valid */
	uint8_t vlan_valid;
	uint8_t csum_partial; /* the L4 checksum is not computed yet (TP_STATUS_CSUMNOTREADY:
			       * a local sender with checksum offload, e.g. over veth) */
	uint64_t ts_ns;      /* receive time, CLOCK_REALTIME ns as the kernel stamped it */
};

/* A frame to send: hdr (Ethernet + IP + UDP, checksums final) then payload. */
struct rf_tx_pkt {
	const uint8_t *hdr;
	const uint8_t *payload;
	uint16_t hdr_len;
	uint16_t payload_len;
	/* 0: hdr is final. Else the offset in hdr of a UDP checksum summed
	 * without the payload (rf_netpkt_build_sum with payload_sum 0): a port
	 * that copies the payload completes it from the copy (rf_csum_complete);
	 * one that sends nothing (null) ignores it */
	uint16_t csum_off;
	/* out, set by tx_burst: it took this frame but will not send it (a
	 * size the device would refuse). The caller counts the drop under its
	 * own reason (RF_C_DROP_TX_ERROR) and not as sent; the caller clears
	 * it before the call */
	uint8_t refused;
};

struct rf_port;

struct rf_port_ops {
	const char *name;
	/* Open a queue on cfg->ifname (in cfg->netns when set). Returns 0 or
	 * -errno with a message that names the interface and the failed step. */
	int (*open)(struct rf_port **out, const struct rf_engine_config *cfg, int roles,
		    char *err, size_t errlen);
	/* Up to n received frames; 0 when none is ready (never blocks). */
	uint32_t (*rx_burst)(struct rf_port *p, struct rf_rx_pkt *pkts, uint32_t n);
	/* Hand every frame returned by rx_burst so far back to the kernel. */
	void (*rx_release)(struct rf_port *p);
	/* Take up to n frames in order; returns how many it took (the rest:
	 * ring full). A frame taken is queued, or refused (pkts[i].refused). */
	uint32_t (*tx_burst)(struct rf_port *p, struct rf_tx_pkt *pkts, uint32_t n);
	/* Send every queued frame: one system call at most. Returns frames
	 * flushed or -errno. Frames the kernel did not take stay queued, and
	 * rf_port_stats.tx_backlog says so: the caller flushes again on a
	 * deadline (never only when the next packet comes). */
	int (*flush)(struct rf_port *p);
	/* A file descriptor that is readable when frames arrive, for poll(). */
	int (*rx_fd)(struct rf_port *p);
	/* Interface facts: MAC, MTU, ifindex. */
	void (*info)(struct rf_port *p, uint8_t mac[6], uint32_t *mtu, int *ifindex);
	void (*close)(struct rf_port *p);
};

extern const struct rf_port_ops rf_port_afpacket;
extern const struct rf_port_ops rf_port_null;
extern const struct rf_port_ops rf_port_afxdp;

/* Test hook of the null port, to play a device that pushes back: a flush
 * takes at most `flush_max` frames (UINT32_MAX = all, the default; 0 = none;
 * the rest stay queued, tx_backlog set), tx_burst takes frames while fewer
 * than `ring` are queued (0 = any number), and refuses frames longer than
 * `max_frame` bytes (0 = none). May be changed while the engine runs. */
void rf_port_null_faults(struct rf_port *p, uint32_t flush_max, uint32_t ring, uint32_t max_frame);
/* Frames the null port has flushed (sent) so far. */
uint64_t rf_port_null_flushed(const struct rf_port *p);

const struct rf_port_ops *rf_port_ops_for(enum rf_backend b);

#endif
