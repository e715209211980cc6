/* SPDX-License-Identifier: MIT */
/*
 * The maps of the tc ingress program, each sized for its job (layouts in
 * relay_abi.h, written by engine/src/ktier.c):
 *   rf_keys    a relay's listen <address, port> -> its current buffer
 *   rf_addrs   the addresses of kernel relays (counting what no relay takes)
 *   rf_relays  RF_KT_BUFS buffers per relay slot: prefixes and outputs
 *   rf_limits  a relay's token buckets, by relay slot (spin lock)
 *   rf_ocnt    per-CPU counters per output / relay counter slot
 *   rf_reason  per-CPU drop and relay counters, by engine counter index
 *   rf_conf    interface, MTU, heartbeat and test switch
 */
#ifndef REFLECTOR_RELAY_MAPS_H
#define REFLECTOR_RELAY_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "relay_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RF_KT_MAX_RELAYS);
	__type(key, struct rf_kt_key);
	__type(value, struct rf_kt_ref);
} rf_keys SEC(".maps");

/* addresses of kernel relays (port 0): frames to them that no relay takes
 * are counted by reason, as the user tier counts what its socket filter
 * lets up (relay_filter.c) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RF_KT_MAX_RELAYS);
	__type(key, struct rf_kt_key);
	__type(value, __u32);
} rf_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RF_KT_MAX_RELAYS * RF_KT_BUFS);
	__type(key, __u32);
	__type(value, struct rf_kt_relay);
} rf_relays SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RF_KT_MAX_RELAYS);
	__type(key, __u32);
	__type(value, struct rf_kt_limit);
} rf_limits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RF_KT_MAX_COUNTERS);
	__type(key, __u32);
	__type(value, struct rf_kt_ocnt);
} rf_ocnt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RF_KT_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} rf_reason SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rf_kt_conf);
} rf_conf SEC(".maps");

static __always_inline void count_reason_n(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&rf_reason, &idx);

	if (v)
		*v += n; /* per CPU: no other writer */
}

static __always_inline void count_reason(__u32 idx)
{
	count_reason_n(idx, 1);
}

static __always_inline void count_slot(__u32 slot, __u64 packets, __u64 bytes, __u64 drops)
{
	struct rf_kt_ocnt *c;

	if (slot == 0xffffffffu)
		return;
	c = bpf_map_lookup_elem(&rf_ocnt, &slot);
	if (!c)
		return;
	c->packets += packets;
	c->bytes += bytes;
	c->drops += drops;
}

/* A relay's rate-limit drop: its drops and its limited counter. */
static __always_inline void count_limited(__u32 slot)
{
	struct rf_kt_ocnt *c;

	if (slot == 0xffffffffu)
		return;
	c = bpf_map_lookup_elem(&rf_ocnt, &slot);
	if (!c)
		return;
	c->drops += 1;
	c->limited += 1;
}

#endif
