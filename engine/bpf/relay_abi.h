/* SPDX-License-Identifier: MIT */
/*
 * The contract between the tc ingress program (engine/bpf/relay.bpf.c) and
 * the engine (engine/src/ktier*.c): the maps' key and value layouts, their
 * names and sizes. This header is the one owner; both sides include it, and
 * the static asserts at the end pin every byte position (a BPF object built
 * from another version of this file is refused at load: the engine checks
 * RF_KT_ABI in the object's `rf_abi` map size, see ktier.c).
 *
 * Byte order: addresses, ports and header templates as on the wire; ids,
 * counters and times in host order.
 */
#ifndef REFLECTOR_RELAY_ABI_H
#define REFLECTOR_RELAY_ABI_H

#ifdef __bpf__
#include <linux/types.h>
typedef __u8 rf_u8;
typedef __u16 rf_u16;
typedef __u32 rf_u32;
typedef __u64 rf_u64;
#else
#include <stddef.h>
#include <stdint.h>
typedef uint8_t rf_u8;
typedef uint16_t rf_u16;
typedef uint32_t rf_u32;
typedef uint64_t rf_u64;
#endif

/* bumped on any change of a layout below */
#define RF_KT_ABI 2u

#define RF_KT_MAX_RELAYS   64u  /* = RF_RELAY_MAX_RELAYS */
#define RF_KT_MAX_OUTS     64u  /* outputs of one relay relayed in the kernel */
#define RF_KT_MAX_PREFIXES 16u  /* = RF_RELAY_MAX_PREFIXES */
#define RF_KT_BUFS         4u   /* buffers per relay slot (see rf_keys) */
#define RF_KT_HDR_MAX      64u  /* Ethernet + IPv6 + UDP = 62 */
#define RF_KT_MAX_COUNTERS 4096u /* output counter slots (region max_outputs is at most this) */
#define RF_KT_REASONS      64u  /* per-reason drop counters, indexed by RF_C_* */

/* What the program does with a datagram to a relay's key. */
enum rf_kt_mode {
	RF_KT_CONSUME = 1, /* user tier relays it (AF_PACKET saw it first): drop it from the stack */
	RF_KT_RELAY = 2,   /* relay it here: check, rewrite, clone to every output, drop */
	RF_KT_RELAY_LIMITED = 3, /* the same, through the relay's token buckets (rf_limits) */
};

/* rf_keys key: a relay's listen <address, port>. */
struct rf_kt_key {
	rf_u8 family;      /* 4 or 6 */
	rf_u8 _pad;
	rf_u16 port;       /* network byte order */
	rf_u8 addr[16];    /* IPv4 in the first 4 bytes, the rest zero */
};

/*
 * rf_keys value: which buffer of rf_relays holds the relay now
 * (slot * RF_KT_BUFS + buffer). An update writes the relay's next buffer
 * (not the current one, which programs may be reading) and then flips this
 * one word with one map update: a packet sees the old relay or the new one,
 * never a mix. A buffer is rewritten only RF_KT_BUFS - 1 flips after it
 * stopped being current (a program holds it for one packet).
 */
struct rf_kt_ref {
	rf_u32 buf;
	rf_u32 _pad;
};

struct rf_kt_prefix {
	rf_u32 addr[4];    /* masked, network order words */
	rf_u32 mask[4];
};

/* One output: its headers, ready but for the per-packet words. */
struct rf_kt_out {
	rf_u32 id;         /* output counter slot */
	rf_u8 flags;       /* RF_OUT_F_* (relay.h) */
	rf_u8 dscp;
	rf_u16 hdr_len;    /* 42 or 62 */
	rf_u16 ip_sum;     /* IPv4: folded sum of the template header (host order) */
	rf_u16 _pad;
	rf_u8 hdr[RF_KT_HDR_MAX]; /* Ethernet + IP + UDP template (rf_relay_out_build) */
};

struct rf_kt_relay {
	rf_u32 id;
	rf_u32 counter;    /* relay counter slot, or 0xffffffff */
	rf_u8 family;
	rf_u8 mode;        /* enum rf_kt_mode */
	rf_u8 n_prefix;
	rf_u8 last;        /* index of the last output with a next hop, 0xff = none */
	rf_u32 n_out;
	struct rf_kt_prefix prefix[RF_KT_MAX_PREFIXES];
	struct rf_kt_out out[RF_KT_MAX_OUTS];
};

/* rf_limits[slot]: a relay's token buckets (RF_POLICY_OP_RELAY_LIMIT), the
 * arithmetic of relay_int.h rf_relay_lim_take: q16 ns of line time, costs
 * divided out when the limit is set. One per relay slot, shared by every
 * CPU under its spin lock. */
struct rf_kt_limit {
#ifdef __bpf__
	struct bpf_spin_lock lock;
#else
	rf_u32 lock;       /* the kernel's bpf_spin_lock: never written from here */
#endif
	rf_u32 _pad;
	rf_u64 cost_pkt;
	rf_u64 cost_byte;
	rf_u64 cap_pkt;
	rf_u64 cap_byte;
	rf_u64 credit_pkt;
	rf_u64 credit_byte;
	rf_u64 max_gap_ns;
	rf_u64 last_ns;    /* bpf_ktime_get_ns() = CLOCK_MONOTONIC */
};

/* rf_ocnt (per CPU, indexed by counter slot): summed into rf_output_counters. */
struct rf_kt_ocnt {
	rf_u64 packets;
	rf_u64 bytes;
	rf_u64 drops;
	rf_u64 limited;
};

/* rf_conf[0]: written by the engine. */
struct rf_kt_conf {
	rf_u32 ifindex;    /* where outputs are sent (the engine's interface) */
	rf_u32 mtu;        /* largest IP packet an output may carry */
	rf_u64 heartbeat_ns; /* bpf_ktime_get_ns() of the engine's last heartbeat */
	rf_u64 orphan_ns;  /* no heartbeat for this long: pass everything (0 = never) */
	rf_u32 test_out;   /* BPF_PROG_TEST_RUN only: rewrite for output k-1 and return (0 = off) */
	rf_u32 owner_pid;  /* the engine's process: a live one keeps a second engine off the interface */
};

/* Per-reason counters: the engine's RX counter indexes (region.h RF_C_*),
 * mirrored here so the program needs no engine header. */
#define RF_KT_C_RX_PACKETS        5
#define RF_KT_C_RX_BYTES          6
#define RF_KT_C_DROP_BAD_LEN      11
#define RF_KT_C_DROP_TX_ERROR     13
#define RF_KT_C_RELAY_IN          19
#define RF_KT_C_RELAY_OUT         20
#define RF_KT_C_DROP_NOT_ALLOWED  21
#define RF_KT_C_DROP_MALFORMED    22
#define RF_KT_C_DROP_FRAGMENT     23
#define RF_KT_C_DROP_NO_NEIGHBOUR 24
#define RF_KT_C_RX_UNMATCHED      26
#define RF_KT_C_DROP_RATE_LIMIT   30
/* kernel-tier only (no engine counter): at the end of the block */
#define RF_KT_C_ORPHAN_PASS     60  /* passed to the stack: no heartbeat for orphan_ns */
#define RF_KT_C_CONSUMED        61  /* dropped from the stack for the user tier */

#define RF_KT_MAP_KEYS   "rf_keys"
#define RF_KT_MAP_ADDRS  "rf_addrs"
#define RF_KT_MAP_RELAYS "rf_relays"
#define RF_KT_MAP_OCNT   "rf_ocnt"
#define RF_KT_MAP_REASON "rf_reason"
#define RF_KT_MAP_CONF   "rf_conf"
#define RF_KT_MAP_LIMITS "rf_limits"
#define RF_KT_PROG       "rf_ingress"

_Static_assert(sizeof(struct rf_kt_key) == 20, "rf_kt_key");
_Static_assert(__builtin_offsetof(struct rf_kt_key, port) == 2, "rf_kt_key.port");
_Static_assert(__builtin_offsetof(struct rf_kt_key, addr) == 4, "rf_kt_key.addr");
_Static_assert(sizeof(struct rf_kt_ref) == 8, "rf_kt_ref");
_Static_assert(sizeof(struct rf_kt_prefix) == 32, "rf_kt_prefix");
_Static_assert(sizeof(struct rf_kt_out) == 76, "rf_kt_out");
_Static_assert(__builtin_offsetof(struct rf_kt_out, hdr) == 12, "rf_kt_out.hdr");
_Static_assert(__builtin_offsetof(struct rf_kt_relay, prefix) == 16, "rf_kt_relay.prefix");
_Static_assert(__builtin_offsetof(struct rf_kt_relay, out) == 16 + 32 * RF_KT_MAX_PREFIXES, "rf_kt_relay.out");
_Static_assert(sizeof(struct rf_kt_ocnt) == 32, "rf_kt_ocnt");
_Static_assert(sizeof(struct rf_kt_limit) == 72, "rf_kt_limit");
_Static_assert(__builtin_offsetof(struct rf_kt_limit, cost_pkt) == 8, "rf_kt_limit.cost_pkt");
_Static_assert(sizeof(struct rf_kt_conf) == 32, "rf_kt_conf");
_Static_assert(__builtin_offsetof(struct rf_kt_conf, heartbeat_ns) == 8, "rf_kt_conf.heartbeat_ns");

#endif
