/* SPDX-License-Identifier: MIT */
/*
 * Relay internals shared by relay*.c, the C tests (engine/test/relay_*.c)
 * and the fuzz targets (engine/fuzz/): the parsed view of a frame, the
 * policy table, the header rewriter and the Internet checksum helpers.
 */
#ifndef REFLECTOR_RELAY_INT_H
#define REFLECTOR_RELAY_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "netpkt.h"
#include "relay.h"

/* ---------------------------------------------------------- checksums -- */

/* The relay keeps its checksum state as host-order sums of big-endian words
 * (it adds header fields as numbers): rf_csum_partial_be, rf_csum_fold16 and
 * rf_csum_update of netpkt.h, the TX thread's helpers viewed in that order;
 * tested against full sums in engine/test/relay_rewrite.c. */

static inline uint16_t rf_get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline void rf_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* ------------------------------------------------------------- parser -- */

enum rf_parse_result {
	RF_PARSE_UDP = 0,       /* a complete, unfragmented UDP datagram: candidate for a relay */
	RF_PARSE_NOT_OURS,      /* not IP, not UDP, or VLAN-tagged: left to the kernel */
	RF_PARSE_MALFORMED,     /* IP frame with truncated or inconsistent headers */
	RF_PARSE_FRAGMENT,      /* IP fragment (first or not): `dst` is valid, ports are not */
};

/* What the fast path needs from a frame; pointers point into the frame. */
struct rf_pkt_view {
	uint8_t family;         /* 4 or 6 */
	uint8_t vlan_tags;      /* tags seen (kernel-stripped one included) */
	uint8_t tos;            /* IPv4 TOS / IPv6 traffic class */
	uint8_t df;             /* IPv4 don't-fragment bit was set */
	uint16_t ip_id;         /* IPv4 identification (host order) */
	uint16_t udp_csum;      /* as received (host order); 0 = none (IPv4 only) */
	uint16_t addr_sum;      /* folded sum of the arriving addresses and ports (the
				 * words each output replaces in the UDP checksum) */
	uint8_t csum_partial;   /* set by the caller: udp_csum is not final (rf_rx_pkt.csum_partial) */
	uint32_t payload_sum;   /* with csum_partial: unfolded sum of the payload, set by the caller */
	const uint8_t *src;     /* source address, 4 or 16 bytes */
	const uint8_t *dst;     /* destination address */
	const uint8_t *udp;     /* UDP header: ports at udp[0..3] */
	const uint8_t *payload;
	uint16_t payload_len;   /* UDP length - 8 */
	uint16_t l3_off;        /* bytes before the IP header */
};

/* Classify one frame (starting at the Ethernet header; `len` bytes captured
 * of `wire_len` on the wire; `vlan_valid`: the kernel stripped a tag).
 * Never reads outside [frame, frame + len). See relay_parse.c for the rules. */
enum rf_parse_result rf_relay_parse(const uint8_t *frame, uint32_t len, uint32_t wire_len,
				    int vlan_valid, struct rf_pkt_view *v);

/* -------------------------------------------------------------- table -- */

#define RF_RELAY_HDR_MAX 64u     /* Ethernet + IPv6 + UDP = 62 bytes */
#define RF_RELAY_TABLES  3u      /* current, being built, one retiring */

struct rf_relay_prefix {
	uint8_t family;
	uint8_t length;
	uint8_t addr[16];
};

struct rf_relay_out {
	uint32_t id;            /* output id = rf_output_counters index */
	uint8_t family;
	uint8_t flags;          /* RF_OUT_F_* */
	uint8_t dscp;           /* with RF_OUT_F_DSCP */
	uint8_t _pad;
	uint16_t hdr_len;       /* 42 (IPv4) or 62 (IPv6) */
	uint16_t udp_sum;       /* folded sum of src/dst address and ports: the words that
				 * replace the arriving packet's in the UDP checksum */
	uint16_t ip_sum;        /* IPv4: folded sum of the template header (tot_len, id,
				 * tos, DF and checksum zero) */
	uint8_t hdr[RF_RELAY_HDR_MAX]; /* Ethernet + IP + UDP template */
};

/* A relay's token buckets (RF_POLICY_OP_RELAY_LIMIT). Credit is kept in
 * nanoseconds of line time, scaled by 2^16: time adds credit one for one and
 * a packet costs 1e9 / rate ns, so the fast path multiplies and compares but
 * never divides (the costs are divided out once, when the limit is set).
 * A cost of 0 means no limit of that kind. */
struct rf_relay_lim {
	uint64_t cost_pkt;      /* q16 ns per packet */
	uint64_t cost_byte;     /* q16 ns per frame byte */
	uint64_t cap_pkt;       /* q16: the most credit each bucket holds */
	uint64_t cap_byte;
	uint64_t credit_pkt;    /* q16 */
	uint64_t credit_byte;
	uint64_t max_gap_ns;    /* a longer idle gap refills a bucket completely */
	uint64_t last_ns;       /* CLOCK_MONOTONIC of the last refill */
	uint32_t pps;           /* as set, for the tests and the fuzzers */
	uint8_t on;             /* any limit set */
	uint8_t _pad[3];
	uint64_t bytes_per_s;
};

struct rf_relay_ent {
	uint32_t id;
	uint32_t counter;       /* output counter slot of the relay, or RF_RELAY_NONE */
	uint8_t family;
	uint8_t n_prefix;
	uint16_t port;          /* network byte order */
	uint8_t addr[16];
	uint32_t out_first;     /* its outputs: table->outs[out_first .. + out_count) */
	uint32_t out_count;
	char name[RF_RELAY_NAME_LEN];
	struct rf_relay_prefix prefix[RF_RELAY_MAX_PREFIXES];
	/* written by the fast path of the RX thread, the table's only reader;
	 * copied with the entry when an update builds the next table */
	struct rf_relay_lim lim;
	/* relayed by the tc program (ktier.c sets it): the RX thread leaves it
	 * alone and the RX socket's filter leaves it out */
	uint8_t kernel;
};

struct rf_relay_table {
	uint32_t n_relays;
	uint32_t n_outputs;
	uint64_t keys_gen;      /* bumped when the set of relay keys changes (BPF filter) */
	struct rf_relay_ent relays[RF_RELAY_MAX_RELAYS];
	struct rf_relay_out outs[RF_RELAY_MAX_OUTPUTS];
};

#define RF_RELAY_TX_BATCH 256u   /* frames handed to tx_burst at once */

struct rf_relay {
	struct rf_output_counters *oc; /* region's output counters, max_outputs of them */
	uint32_t max_outputs;
	uint32_t mtu;
	uint8_t mac[6];
	/* CLOCK_MONOTONIC in ns for the rate limits; tests replace it */
	uint64_t (*now_ns)(void);

	/* The table the fast path reads. Written by rf_relay_apply (release),
	 * read at the start of each burst (acquire). */
	struct rf_relay_table *_Atomic cur;
	struct rf_relay_table *tables[RF_RELAY_TABLES];
	/* 0: free; otherwise the reader epoch seen when the table was retired */
	uint64_t retired_at[RF_RELAY_TABLES];
	uint8_t in_use[RF_RELAY_TABLES];
	/* Reader epoch: odd while a reader is inside a burst (see relay_table.c) */
	_Atomic uint64_t reader_epoch;
	/* keys_gen of the last filter handed out by rf_relay_filter */
	uint64_t filter_gen;
	/* the kernel tier mirrors every applied message (NULL: none) */
	struct rf_ktier *kt;

	/* The armed capture (relay_capture.c). The fast path compares cap_relay
	 * with each matched relay's id: one load, never equal when no capture
	 * runs (RF_RELAY_NONE is no relay's id). Written between bursts. */
	uint32_t cap_relay;
	uint32_t cap_output;    /* RF_RELAY_NONE: every output */
	uint8_t cap_ingress;
	uint32_t cap_prod;      /* our own copy of the ring's producer position */
	struct rf_capture_ring *cap_ring;

	/* fast-path scratch: headers and gather entries for one tx_burst */
	struct rf_tx_pkt tx[RF_RELAY_TX_BATCH];
	uint32_t tx_out[RF_RELAY_TX_BATCH]; /* output id of each entry */
	uint8_t hdrs[RF_RELAY_TX_BATCH][RF_RELAY_HDR_MAX];
};

/* Fill an output's template from its policy body and the interface MAC. */
void rf_relay_out_build(struct rf_relay_out *o, const struct rf_policy_output_add *b,
			const uint8_t if_mac[6]);

/* Write the headers of packet `v` sent to output `o` into `hdr`
 * (o->hdr_len bytes); checksums final. */
void rf_relay_rewrite(const struct rf_relay_out *o, const struct rf_pkt_view *v, uint8_t *hdr);

/* The relay whose key (family, address, port) the datagram `v` matches. */
const struct rf_relay_ent *rf_relay_lookup(const struct rf_relay_table *t,
					   const struct rf_pkt_view *v);
/* Does any relay listen on `v`'s destination address (fragments)? */
int rf_relay_lookup_addr(const struct rf_relay_table *t, const struct rf_pkt_view *v);
/* Is `v`'s source inside one of the relay's allowed prefixes? */
int rf_relay_allowed(const struct rf_relay_ent *e, const struct rf_pkt_view *v);

#define RF_RELAY_LIM_FRAME_MAX 65535u

/* Set relay entry e's limit (0 = none) and fill its buckets; `now` starts them. */
void rf_relay_lim_set(struct rf_relay_lim *l, uint32_t pps, uint64_t bytes_per_s, uint64_t now);

/* Take one frame of `bytes` from the buckets at `now`: 1 = pass, 0 = over the limit. */
static inline int rf_relay_lim_take(struct rf_relay_lim *l, uint64_t now, uint32_t bytes)
{
	uint64_t gap = now - l->last_ns, add, need;

	/* a long gap (or a clock that went back: the difference wraps) refills
	 * at most to the caps; the adds saturate at the caps, so nothing wraps */
	if (gap > l->max_gap_ns)
		gap = l->max_gap_ns;
	l->last_ns = now;
	add = gap << 16;
	l->credit_pkt = l->cap_pkt - l->credit_pkt < add ? l->cap_pkt : l->credit_pkt + add;
	l->credit_byte = l->cap_byte - l->credit_byte < add ? l->cap_byte : l->credit_byte + add;
	/* a frame costs at most an IP datagram's worth (the bucket's size) */
	if (bytes > RF_RELAY_LIM_FRAME_MAX)
		bytes = RF_RELAY_LIM_FRAME_MAX;
	need = (uint64_t)bytes * l->cost_byte;
	if (l->credit_pkt < l->cost_pkt || l->credit_byte < need)
		return 0;
	l->credit_pkt -= l->cost_pkt;
	l->credit_byte -= need;
	return 1;
}

/* Capture (relay_capture.c): apply RF_POLICY_OP_CAPTURE; copy one frame
 * (`a` then `b`, at most RF_CAPTURE_SNAP bytes) into the ring, or drop and
 * count it (rf_capture_ring.dropped) when it does not fit. */
int rf_relay_capture_apply(struct rf_relay *r, const struct rf_relay_table *cur,
			   const struct rf_policy_capture *b);
void rf_relay_capture_put(struct rf_relay *r, uint16_t kind, uint32_t id, const uint8_t *a, uint32_t alen,
			  const uint8_t *b, uint32_t blen, uint32_t wire_len);

/* Reader side of the table's epoch (relay_table.c). */
const struct rf_relay_table *rf_relay_read_begin(struct rf_relay *r);
void rf_relay_read_end(struct rf_relay *r);

#endif
