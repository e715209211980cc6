/* SPDX-License-Identifier: MIT */
/*
 * The relay: the policy table that maps an ingress <address, UDP port> P to
 * one output (redirect) or many (split), and the fast path that applies it
 * to a burst of received frames. Owned and called by the RX thread only
 * (engine/src/rx.c); the table is updated from policy messages that the RX
 * thread drains from the policy ring between bursts.
 *
 * The policy message ops and bodies (RF_POLICY_OP_*) are defined below and
 * mirrored in src/relay/policy.ts.
 */
#ifndef REFLECTOR_RELAY_H
#define REFLECTOR_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "port.h"
#include "reflector/region.h"

struct rf_relay;

/* Create an empty table for the engine's interface (its MAC, MTU, ifindex). */
struct rf_relay *rf_relay_create(void *region, const uint8_t if_mac[6], uint32_t mtu);
void rf_relay_destroy(struct rf_relay *r);

/* Apply one policy message. Returns 0, or -errno (the RX thread acks the
 * message with that status and bumps RF_C_POLICY_REJECTED). */
int rf_relay_apply(struct rf_relay *r, const struct rf_policy_msg *msg);

/* Classify, rewrite and queue a burst on `port` (the caller flushes).
 * Bumps the RX thread's counters `c` (RF_C_RELAY_*, RF_C_DROP_*,
 * RF_C_RX_UNMATCHED) and the per-output counters in the region. */
void rf_relay_burst(struct rf_relay *r, const struct rf_rx_pkt *pkts, uint32_t n,
		    const struct rf_port_ops *ops, struct rf_port *port, uint64_t *c);

/* The classic BPF program the RX socket should carry for the current table
 * (only frames that can match a relay are copied up). Returns the number of
 * instructions written to `prog` (at most `max`), 0 for "no change needed". */
struct sock_filter;
uint32_t rf_relay_filter(const struct rf_relay *r, struct sock_filter *prog, uint32_t max);

#endif
