/* SPDX-License-Identifier: MIT */
/*
 * The relay: the policy table that maps an ingress <address, UDP port> P to
 * one output (redirect) or many (split), and the fast path that applies it
 * to a burst of received frames. Owned and called by the RX thread only
 * (engine/src/rx.c); the table is updated from policy messages that the RX
 * thread drains from the policy ring between bursts.
 *
 * The policy message ops and bodies (RF_POLICY_OP_*) are defined below and
 * mirrored in src/relay/policy.ts (same names, same byte positions; the
 * static asserts at the end of this file are the contract).
 *
 * Identifiers are chosen by TypeScript: a relay id (any uint32 but
 * RF_RELAY_NONE) names a relay in later messages; an output id is the index
 * of the output's rf_output_counters in the region (< max_outputs) and is
 * unique among every output and relay counter of the table. A relay may also
 * own a counter slot (`counter`, or RF_RELAY_NONE): packets/bytes matched
 * and drops for sources outside its allowed prefixes.
 *
 * Byte order in bodies: ports in network byte order (as on the wire);
 * addresses as on the wire (IPv4 in the first 4 bytes); ids little-endian
 * (host order of the engine, which TypeScript checks at attach).
 */
#ifndef REFLECTOR_RELAY_H
#define REFLECTOR_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "port.h"
#include "reflector/region.h"

/* ------------------------------------------------------------ limits -- */

#define RF_RELAY_MAX_RELAYS   64u   /* relays in one table */
#define RF_RELAY_MAX_OUTPUTS  1024u /* outputs of all relays together */
#define RF_RELAY_MAX_PREFIXES 16u   /* allowed source prefixes per relay */
#define RF_RELAY_NAME_LEN     32u   /* bytes, NUL-padded, need not be terminated */
#define RF_RELAY_NONE         0xffffffffu

/* ------------------------------------------------------ policy messages -- */

enum rf_policy_op {
	RF_POLICY_OP_RELAY_ADD = 1,      /* rf_policy_relay_add */
	RF_POLICY_OP_RELAY_REMOVE = 2,   /* rf_policy_relay_ref: the relay and all its outputs */
	RF_POLICY_OP_RELAY_ALLOW = 3,    /* rf_policy_relay_allow: add an allowed source prefix */
	RF_POLICY_OP_OUTPUT_ADD = 4,     /* rf_policy_output_add */
	RF_POLICY_OP_OUTPUT_REMOVE = 5,  /* rf_policy_output_ref */
	RF_POLICY_OP_OUTPUT_SET_MAC = 6, /* rf_policy_output_mac: next hop changed or resolved */
	RF_POLICY_OP_RELAY_LIMIT = 7,    /* rf_policy_relay_limit: ingress rate limit of a relay */
	RF_POLICY_OP_KERNEL_COMMIT = 8,  /* no body: the table is complete, the kernel tier may
					  * replace what a previous server left (docs/kernel-tier.md) */
	RF_POLICY_OP_CAPTURE = 9,        /* rf_policy_capture: arm or disarm the capture (relay_capture.c) */
};

/* Output flags. */
#define RF_OUT_F_MAC_VALID 0x01u /* dst_mac is resolved; otherwise RF_C_DROP_NO_NEIGHBOUR */
#define RF_OUT_F_DSCP      0x02u /* set DSCP to `dscp`; otherwise keep the arriving packet's */
#define RF_OUT_F_TTL       0x04u /* set TTL / hop limit to `ttl`; otherwise 64 */

struct rf_policy_relay_add {
	uint32_t relay_id;
	uint32_t counter;     /* output counter slot for the relay itself, or RF_RELAY_NONE */
	uint8_t family;       /* 4 or 6 */
	uint8_t _rsvd0;
	uint16_t port;        /* P's UDP port, network byte order */
	uint8_t addr[16];     /* P's address */
	char name[RF_RELAY_NAME_LEN];
};

struct rf_policy_relay_ref {
	uint32_t relay_id;
};

struct rf_policy_relay_allow {
	uint32_t relay_id;
	uint8_t family;
	uint8_t length;       /* prefix length: 0..32 or 0..128 */
	uint16_t _rsvd0;
	uint8_t addr[16];
};

struct rf_policy_output_add {
	uint32_t relay_id;
	uint32_t output_id;   /* index of its rf_output_counters (zeroed when added) */
	uint8_t family;       /* must equal the relay's */
	uint8_t flags;        /* RF_OUT_F_* */
	uint8_t ttl;          /* with RF_OUT_F_TTL, 1..255 */
	uint8_t dscp;         /* with RF_OUT_F_DSCP, 0..63 */
	uint16_t src_port;    /* network byte order */
	uint16_t dst_port;    /* network byte order */
	uint8_t dst_mac[6];
	uint8_t _rsvd0[2];
	uint8_t src_addr[16];
	uint8_t dst_addr[16];
};

struct rf_policy_output_ref {
	uint32_t relay_id;
	uint32_t output_id;
};

struct rf_policy_output_mac {
	uint32_t relay_id;
	uint32_t output_id;
	uint8_t dst_mac[6];
	uint8_t valid;        /* 0: next hop lost, drop (RF_C_DROP_NO_NEIGHBOUR) until set again */
	uint8_t _rsvd0;
};

/* A relay's ingress limit: packets and bytes (frame bytes) per second it
 * takes in from allowed sources; 0 = no limit. Above it, packets are dropped
 * (RF_C_DROP_RATE_LIMIT + the relay's drops and limited). A token bucket of
 * RF_RELAY_LIMIT_BURST_NS worth of each rate (at least one packet) absorbs
 * bursts; a new limit starts with a full bucket. */
struct rf_policy_relay_limit {
	uint32_t relay_id;
	uint32_t pps;
	uint64_t bytes_per_s;
};

#define RF_RELAY_LIMIT_BURST_NS 100000000ull /* 100 ms */

/* Arm the RX thread's capture ring for one relay (its ingress frames when
 * `ingress`, and its output frames: every output, or only `output_id`), or
 * disarm it (relay_id RF_RELAY_NONE). One capture at a time: arming replaces
 * what was armed. The relay is disarmed when it is removed. */
struct rf_policy_capture {
	uint32_t relay_id;
	uint32_t output_id;   /* RF_RELAY_NONE: every output of the relay */
	uint8_t ingress;
	uint8_t _rsvd0[3];
};

/*
 * Status of a message (the RX thread acks with -status as b):
 *   EINVAL        bad family, port 0, prefix length, flags, ttl or dscp
 *   EOPNOTSUPP    unknown op
 *   EEXIST        relay id, relay key or output/counter id already used
 *   ENOENT        no relay / output with that id
 *   ERANGE        counter or output id >= the region's max_outputs
 *   ENOSPC        table full (RF_RELAY_MAX_RELAYS / _OUTPUTS / _PREFIXES)
 *   EAFNOSUPPORT  output family differs from the relay's
 *   ELOOP         an output would send to a relay's own listen <address, port>
 *   EBUSY         no free table copy (a reader is still inside a burst)
 *   ENODEV        capture: the engine has no capture ring (a region older than 2.1)
 */

/* ------------------------------------------------------------- interface -- */

struct rf_relay;

/* Create an empty table for the engine's interface (its MAC, MTU) that
 * counts into `oc` (max_outputs of them, in the region; NULL: none): taken
 * from the engine's checked copy of the header, the live one may lie.
 * Preallocates every table copy; NULL when out of memory. */
struct rf_relay *rf_relay_create(struct rf_output_counters *oc, uint32_t max_outputs,
				 const uint8_t if_mac[6], uint32_t mtu);
void rf_relay_destroy(struct rf_relay *r);

/* Mirror every applied message into the kernel tier's maps (ktier.h). */
struct rf_ktier;
void rf_relay_set_ktier(struct rf_relay *r, struct rf_ktier *kt);

/* Apply one policy message. Returns 0, or -errno (the RX thread acks the
 * message with that status and bumps RF_C_POLICY_REJECTED). Must be called
 * by the thread that calls rf_relay_burst, between bursts (see relay_table.c
 * for why that makes the retire step immediate). */
int rf_relay_apply(struct rf_relay *r, const struct rf_policy_msg *msg);

/* Classify, rewrite and queue a burst on `port` (the caller flushes; the
 * relay flushes too when the TX ring fills in the middle of a split).
 * Bumps the RX thread's counters `c` (RF_C_RELAY_*, RF_C_DROP_*,
 * RF_C_RX_UNMATCHED) and the per-output counters in the region. */
void rf_relay_burst(struct rf_relay *r, const struct rf_rx_pkt *pkts, uint32_t n,
		    const struct rf_port_ops *ops, struct rf_port *port, uint64_t *c);

/* The classic BPF program the RX socket should carry for the current table
 * (only frames that can match a relay are copied up). Returns the number of
 * instructions written to `prog` (at most `max`), 0 for "no change needed". */
struct sock_filter;
uint32_t rf_relay_filter(const struct rf_relay *r, struct sock_filter *prog, uint32_t max);

/* ------------------------------------------------------ static asserts -- */

_Static_assert(sizeof(struct rf_policy_relay_add) <= sizeof(((struct rf_policy_msg *)0)->body), "body fits");
_Static_assert(sizeof(struct rf_policy_relay_add) == 60, "rf_policy_relay_add");
_Static_assert(offsetof(struct rf_policy_relay_add, counter) == 4, "relay_add.counter");
_Static_assert(offsetof(struct rf_policy_relay_add, family) == 8, "relay_add.family");
_Static_assert(offsetof(struct rf_policy_relay_add, port) == 10, "relay_add.port");
_Static_assert(offsetof(struct rf_policy_relay_add, addr) == 12, "relay_add.addr");
_Static_assert(offsetof(struct rf_policy_relay_add, name) == 28, "relay_add.name");
_Static_assert(sizeof(struct rf_policy_relay_ref) == 4, "rf_policy_relay_ref");
_Static_assert(sizeof(struct rf_policy_relay_allow) == 24, "rf_policy_relay_allow");
_Static_assert(offsetof(struct rf_policy_relay_allow, family) == 4, "relay_allow.family");
_Static_assert(offsetof(struct rf_policy_relay_allow, length) == 5, "relay_allow.length");
_Static_assert(offsetof(struct rf_policy_relay_allow, addr) == 8, "relay_allow.addr");
_Static_assert(sizeof(struct rf_policy_output_add) == 56, "rf_policy_output_add");
_Static_assert(offsetof(struct rf_policy_output_add, output_id) == 4, "output_add.output_id");
_Static_assert(offsetof(struct rf_policy_output_add, family) == 8, "output_add.family");
_Static_assert(offsetof(struct rf_policy_output_add, flags) == 9, "output_add.flags");
_Static_assert(offsetof(struct rf_policy_output_add, ttl) == 10, "output_add.ttl");
_Static_assert(offsetof(struct rf_policy_output_add, dscp) == 11, "output_add.dscp");
_Static_assert(offsetof(struct rf_policy_output_add, src_port) == 12, "output_add.src_port");
_Static_assert(offsetof(struct rf_policy_output_add, dst_port) == 14, "output_add.dst_port");
_Static_assert(offsetof(struct rf_policy_output_add, dst_mac) == 16, "output_add.dst_mac");
_Static_assert(offsetof(struct rf_policy_output_add, src_addr) == 24, "output_add.src_addr");
_Static_assert(offsetof(struct rf_policy_output_add, dst_addr) == 40, "output_add.dst_addr");
_Static_assert(sizeof(struct rf_policy_output_ref) == 8, "rf_policy_output_ref");
_Static_assert(sizeof(struct rf_policy_output_mac) == 16, "rf_policy_output_mac");
_Static_assert(offsetof(struct rf_policy_output_mac, dst_mac) == 8, "output_mac.dst_mac");
_Static_assert(offsetof(struct rf_policy_output_mac, valid) == 14, "output_mac.valid");
_Static_assert(sizeof(struct rf_policy_relay_limit) == 16, "rf_policy_relay_limit");
_Static_assert(offsetof(struct rf_policy_relay_limit, pps) == 4, "relay_limit.pps");
_Static_assert(offsetof(struct rf_policy_relay_limit, bytes_per_s) == 8, "relay_limit.bytes_per_s");
_Static_assert(sizeof(struct rf_policy_capture) == 12, "rf_policy_capture");
_Static_assert(offsetof(struct rf_policy_capture, output_id) == 4, "capture.output_id");
_Static_assert(offsetof(struct rf_policy_capture, ingress) == 8, "capture.ingress");

/* Give the relay the RX thread's capture ring (in the region; NULL: none). */
void rf_relay_set_capture(struct rf_relay *r, struct rf_capture_ring *ring);

#endif
