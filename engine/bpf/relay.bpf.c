/* SPDX-License-Identifier: MIT */
/*
 * Reflector's tc ingress program on the engine's interface (the kernel
 * tier, docs/kernel-tier.md). tc ingress runs after the packet taps, so the
 * engine's AF_PACKET socket has already seen every frame when this runs.
 * For a UDP datagram to a relay's listen <address, port> (rf_keys):
 *   - RF_KT_CONSUME (the user tier relays it): drop it from the kernel
 *     stack (no ICMP port unreachable, no second delivery);
 *   - RF_KT_RELAY: check the source against the relay's prefixes, rewrite
 *     the headers for each output (checksums updated, never recomputed over
 *     the payload) and send a clone out of the interface per output, the
 *     last one without a clone; then drop the original.
 * Everything else goes on to the stack untouched. With no heartbeat from
 * the engine for rf_conf.orphan_ns, everything goes on to the stack: a dead
 * server leaves no amplifier behind.
 *
 * Drops are counted in rf_reason by the engine's counter index (the same
 * reasons as the user tier, engine/src/relay.c) and in rf_ocnt per relay and
 * per output. Built into relay.bpf.o by `make -C engine bpf` (committed).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "relay_abi.h"
#include "relay_maps.h"
#include "relay_parsing.h"

#define OUT_F_MAC_VALID 0x01
#define OUT_F_DSCP      0x02

/* BPF_PROG_TEST_RUN only (rf_conf.test_out): the frame was rewritten for
 * the output asked for and is returned instead of sent */
#define KT_TEST_REWRITTEN 100

static __always_inline int allowed(const struct rf_kt_relay *r, const struct kt_pkt *p)
{
	__u32 i, n = r->n_prefix;

	for (i = 0; i < RF_KT_MAX_PREFIXES; i++) {
		const struct rf_kt_prefix *x = &r->prefix[i];

		if (i >= n)
			break;
		if ((p->src[0] & x->mask[0]) == x->addr[0] && (p->src[1] & x->mask[1]) == x->addr[1] &&
		    (p->src[2] & x->mask[2]) == x->addr[2] && (p->src[3] & x->mask[3]) == x->addr[3])
			return 1;
	}
	return 0;
}

/*
 * Sums of the 16-bit words of the addresses and of the ports a frame
 * carries, folded to 16 bits: what the UDP checksum's difference is taken
 * between. The words are summed as they lie in memory (the kernel's
 * csum_partial does the same), so no byte swap is needed on either side.
 */
struct kt_sums {
	__u16 addr;
	__u16 port;
};

static __always_inline __u16 sum_fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	return csum_fold16((__u32)s);
}

/* The one's complement difference `to - from` of two folded sums (any
 * representation of it is right for bpf_l4_csum_replace: the kernel folds). */
static __always_inline __u32 sum_diff(__u16 from, __u16 to)
{
	return (__u32)to + (__u16)~from;
}

/*
 * Rewrite the frame in `skb` for output `o`; `cur` holds the sums of the
 * addresses and ports the frame carries now (updated to `o`'s). The header
 * is composed on the stack from the output's template and written with one
 * store (Ethernet, the fixed IP header and the ports lie together: options
 * and extension headers were cut). The UDP checksum is updated by
 * difference, computed here rather than by bpf_csum_diff: addresses through
 * the pseudo-header flag (right for CHECKSUM_PARTIAL frames of a local
 * sender too), ports as data, each skipped when the output's words sum to
 * what the frame already has (an update by zero changes no checksum); a
 * zero IPv4 checksum ("none") stays zero (BPF_F_MARK_MANGLED_0).
 */
static __noinline int rewrite(struct __sk_buff *skb, const struct rf_kt_out *o,
				   const struct kt_pkt *p, struct kt_sums *cur)
{
	/* aligned: the words summed below are read from this copy (the stack
	 * is always checked for alignment), not from the map value a second
	 * time: the engine may rewrite a buffer while a frame still reads it,
	 * and the checksum must be the one of the bytes written */
	__u8 h[RF_KT_HDR_MAX] __attribute__((aligned(8)));
	__u8 tos = (o->flags & OUT_F_DSCP) ? (__u8)(o->dscp << 2 | (p->tos & 3)) : p->tos;
	__u32 sum, csum_off, n;
	struct kt_sums to;
	__u64 a = 0;
	int i;

	__builtin_memcpy(h, o->hdr, RF_KT_HDR_MAX);
	if (p->family == 4) {
		__u16 tot = (__u16)(20 + p->ulen), frag = p->df ? 0x4000 : 0;
		const __u16 *w = (const __u16 *)(h + 26);

		h[15] = tos;
		h[16] = (__u8)(tot >> 8);
		h[17] = (__u8)tot;
		h[18] = (__u8)(p->ip_id >> 8);
		h[19] = (__u8)p->ip_id;
		h[20] = (__u8)(frag >> 8);
		h[21] = (__u8)frag;
		/* the template's sum had these words zero (relay.c) */
		sum = (__u32)o->ip_sum + tos + tot + p->ip_id + frag;
		sum = (__u16)~csum_fold16(sum);
		h[24] = (__u8)(sum >> 8);
		h[25] = (__u8)sum;
		to.addr = sum_fold((__u64)w[0] + w[1] + w[2] + w[3]);
		to.port = sum_fold((__u64)w[4] + w[5]);
		n = 38; /* Ethernet + IPv4 (20) + ports */
	} else {
		const __u16 *w = (const __u16 *)(h + 22);

		h[14] = (__u8)(0x60 | tos >> 4);
		h[15] = (__u8)(tos << 4);
		h[18] = (__u8)(p->ulen >> 8);
		h[19] = (__u8)p->ulen;
#pragma unroll
		for (i = 0; i < 16; i++)
			a += w[i];
		to.addr = sum_fold(a);
		to.port = sum_fold((__u64)w[16] + w[17]);
		n = 58; /* Ethernet + IPv6 (40) + ports: not the UDP length and checksum */
	}
	/* the ports end the store and the UDP checksum follows the length:
	 * both where the parser found UDP (options cut, no VLAN tag) */
	if (p->l4_off + 4 != n)
		return -1;
	csum_off = n + 2;
	if (to.addr != cur->addr &&
	    bpf_l4_csum_replace(skb, csum_off, 0, sum_diff(cur->addr, to.addr),
				BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0))
		return -1;
	if (to.port != cur->port &&
	    bpf_l4_csum_replace(skb, csum_off, 0, sum_diff(cur->port, to.port), BPF_F_MARK_MANGLED_0))
		return -1;
	if (bpf_skb_store_bytes(skb, 0, h, n, 0))
		return -1;
	*cur = to;
	return 0;
}

/* State of one packet's walk over its relay's outputs (bpf_loop: the
 * verifier checks the body once, not once per output). */
struct walk {
	struct __sk_buff *skb;
	const struct rf_kt_relay *r;
	const struct kt_pkt *p;
	const struct rf_kt_conf *conf;
	struct kt_sums cur;
	__u32 n, last, alen, sent;
	__u32 broken;      /* a rewrite failed: the frame's checksum no longer follows cur */
	int ret;
};

static int walk_out(__u32 k, void *arg)
{
	struct walk *w = arg;
	const struct rf_kt_out *o;
	const struct kt_pkt *p = w->p;
	struct __sk_buff *skb = w->skb;
	__u32 bytes;

	if (k >= w->n || k >= RF_KT_MAX_OUTS)
		return 1;
	/* the verifier must see the bound on the register used as the index:
	 * hide k from the optimiser, then mask it */
	asm volatile("" : "+r"(k));
	k &= RF_KT_MAX_OUTS - 1;
	o = &w->r->out[k];
	bytes = (__u32)o->hdr_len + p->ulen - 8;
	/* BPF_PROG_TEST_RUN: nothing past the output asked for */
	if (w->conf->test_out && k >= w->conf->test_out)
		return 1;
	if (w->broken) {
		/* counter: RF_C_DROP_TX_ERROR + the output's drops */
		count_reason(RF_KT_C_DROP_TX_ERROR);
		count_slot(o->id, 0, 0, 1);
		return 0;
	}
	if (!(o->flags & OUT_F_MAC_VALID)) {
		/* counter: RF_C_DROP_NO_NEIGHBOUR + the output's drops */
		count_reason(RF_KT_C_DROP_NO_NEIGHBOUR);
		count_slot(o->id, 0, 0, 1);
		return 0;
	}
	if (w->alen + p->ulen > w->conf->mtu) {
		/* counter: RF_C_DROP_BAD_LEN + the output's drops */
		count_reason(RF_KT_C_DROP_BAD_LEN);
		count_slot(o->id, 0, 0, 1);
		return 0;
	}
	if (w->conf->test_out) {
		/* every output up to the one asked for is written over the
		 * last, as when sending: the chain of checksum updates is
		 * what gets compared */
		if (rewrite(skb, o, p, &w->cur)) {
			w->ret = TC_ACT_SHOT;
			return 1;
		}
		if (k + 1 != w->conf->test_out)
			return 0;
		w->ret = KT_TEST_REWRITTEN;
		return 1;
	}
	if (rewrite(skb, o, p, &w->cur)) {
		/* a checksum update may have been made: this output and every
		 * later one are not sent (the frame is dropped unless an earlier
		 * clone took it) */
		w->broken = 1;
		/* counter: RF_C_DROP_TX_ERROR + the output's drops */
		count_reason(RF_KT_C_DROP_TX_ERROR);
		count_slot(o->id, 0, 0, 1);
		return 0;
	}
	if (k == w->last) {
		/* the last output takes the original, not a clone */
		w->sent++;
		count_slot(o->id, 1, bytes, 0);
		w->ret = bpf_redirect(w->conf->ifindex, 0);
		return 1;
	}
	if (bpf_clone_redirect(skb, w->conf->ifindex, 0)) {
		/* counter: RF_C_DROP_TX_ERROR + the output's drops */
		count_reason(RF_KT_C_DROP_TX_ERROR);
		count_slot(o->id, 0, 0, 1);
		return 0;
	}
	w->sent++;
	count_slot(o->id, 1, bytes, 0);
	return 0;
}

/* Take one frame of `bytes` from relay slot `slot`'s buckets (relay_int.h
 * rf_relay_lim_take, under the bucket's lock: every CPU shares it).
 * 1 = pass, 0 = over the limit. */
static __noinline int lim_take(__u32 slot, __u32 bytes)
{
	struct rf_kt_limit *l = bpf_map_lookup_elem(&rf_limits, &slot);
	__u64 now = bpf_ktime_get_ns(), gap, add, need;
	int ok;

	if (!l)
		return 1;
	if (bytes > 65535)
		bytes = 65535;
	bpf_spin_lock(&l->lock);
	gap = now - l->last_ns;
	/* another CPU's clock read a moment later took the lock first: no
	 * credit, and the time does not go back */
	if ((__s64)gap < 0) {
		gap = 0;
		now = l->last_ns;
	}
	if (gap > l->max_gap_ns)
		gap = l->max_gap_ns;
	l->last_ns = now;
	add = gap << 16;
	l->credit_pkt = l->cap_pkt - l->credit_pkt < add ? l->cap_pkt : l->credit_pkt + add;
	l->credit_byte = l->cap_byte - l->credit_byte < add ? l->cap_byte : l->credit_byte + add;
	need = (__u64)bytes * l->cost_byte;
	ok = !(l->credit_pkt < l->cost_pkt || l->credit_byte < need);
	if (ok) {
		l->credit_pkt -= l->cost_pkt;
		l->credit_byte -= need;
	}
	bpf_spin_unlock(&l->lock);
	return ok;
}

static __always_inline int relay(struct __sk_buff *skb, const struct rf_kt_relay *r,
				 struct kt_pkt *p, const struct rf_kt_conf *conf, __u32 slot)
{
	struct walk w = { .skb = skb, .r = r, .p = p, .conf = conf, .ret = TC_ACT_SHOT };
	__u32 want;

	/* received by the engine's interface as far as the counters go: the
	 * RX thread does not see a kernel relay's frames */
	count_reason(RF_KT_C_RX_PACKETS);
	count_reason_n(RF_KT_C_RX_BYTES, skb->len);
	/* matched a relay, as the user tier counts relay_in: before the checks */
	count_reason(RF_KT_C_RELAY_IN);
	if (!allowed(r, p)) {
		/* counter: RF_C_DROP_NOT_ALLOWED + the relay's drops */
		count_reason(RF_KT_C_DROP_NOT_ALLOWED);
		count_slot(r->counter, 0, 0, 1);
		return TC_ACT_SHOT;
	}
	if (r->mode == RF_KT_RELAY_LIMITED && !lim_take(slot, skb->len)) {
		/* counter: RF_C_DROP_RATE_LIMIT + the relay's drops and limited */
		count_reason(RF_KT_C_DROP_RATE_LIMIT);
		count_limited(r->counter);
		return TC_ACT_SHOT;
	}
	count_slot(r->counter, 1, skb->len, 0);
	w.alen = p->family == 4 ? 20 : 40;
	if (p->has_opts) {
		/* outputs carry no IPv4 options or IPv6 extension headers (as the
		 * user tier's): remove the bytes between the fixed IP header and
		 * UDP; rewrite() writes the fixed header whole */
		__s32 cut = (__s32)p->l4_off - (__s32)(p->l3_off + w.alen);

		if (cut < 0 || cut > 1024 || bpf_skb_adjust_room(skb, -cut, BPF_ADJ_ROOM_NET, 0)) {
			/* counter: RF_C_DROP_MALFORMED */
			count_reason(RF_KT_C_DROP_MALFORMED);
			return TC_ACT_SHOT;
		}
		p->l4_off = (__u16)(p->l3_off + w.alen);
	}
	w.n = r->n_out;
	w.last = r->last;
	/* Ethernet padding and bytes past the UDP length are not relayed */
	want = p->l3_off + w.alen + p->ulen;
	if (skb->len > want && bpf_skb_change_tail(skb, want, 0)) {
		count_reason(RF_KT_C_DROP_MALFORMED);
		return TC_ACT_SHOT;
	}
	/* the sums of what the frame carries now (the same words as the
	 * templates': network order as in memory) */
	{
		__u64 a = (__u64)p->src[0] + p->dst[0];

		if (p->family == 6)
			a += (__u64)p->src[1] + p->src[2] + p->src[3] + p->dst[1] + p->dst[2] + p->dst[3];
		w.cur.addr = sum_fold(a);
		w.cur.port = sum_fold((__u64)p->sport + p->dport);
	}
	bpf_loop(RF_KT_MAX_OUTS, walk_out, &w, 0);
	/* counter: RF_C_RELAY_OUT, once per frame for every output sent */
	if (w.sent)
		count_reason_n(RF_KT_C_RELAY_OUT, w.sent);
	return w.ret;
}

/*
 * Is the frame sent to a kernel relay's address, read at the fixed offsets
 * the user tier's socket filter reads (relay_filter.c: IPv4 protocol UDP,
 * IPv6 first next header UDP, hop-by-hop, routing, destination options or
 * fragment)? Then the user tier would have seen it and counted it.
 */
static __noinline int to_kernel_relay(struct __sk_buff *skb)
{
	struct rf_kt_key key = {};
	__u8 b[2];

	if (bpf_skb_load_bytes(skb, 12, b, 2))
		return 0;
	if (b[0] == 0x08 && b[1] == 0x00) {
		if (bpf_skb_load_bytes(skb, 23, b, 1) || b[0] != 17 ||
		    bpf_skb_load_bytes(skb, 30, key.addr, 4))
			return 0;
		key.family = 4;
	} else if (b[0] == 0x86 && b[1] == 0xdd) {
		if (bpf_skb_load_bytes(skb, 20, b, 1) ||
		    (b[0] != 17 && b[0] != 0 && b[0] != 43 && b[0] != 60 && b[0] != 44) ||
		    bpf_skb_load_bytes(skb, 38, key.addr, 16))
			return 0;
		key.family = 6;
	} else {
		return 0;
	}
	return bpf_map_lookup_elem(&rf_addrs, &key) != 0;
}

/* A frame no kernel relay takes: counted as the user tier counts it, then
 * left to the stack. */
static __always_inline int not_taken(struct __sk_buff *skb, int res)
{
	if (!to_kernel_relay(skb))
		return TC_ACT_OK;
	if (res == KT_MALFORMED)
		count_reason(RF_KT_C_DROP_MALFORMED); /* counter: RF_C_DROP_MALFORMED */
	else if (res == KT_FRAGMENT)
		count_reason(RF_KT_C_DROP_FRAGMENT);  /* counter: RF_C_DROP_FRAGMENT */
	else
		count_reason(RF_KT_C_RX_UNMATCHED);   /* counter: RF_C_RX_UNMATCHED */
	return TC_ACT_OK;
}

SEC("tc")
int rf_ingress(struct __sk_buff *skb)
{
	struct kt_pkt p = {};
	struct rf_kt_key key = {};
	struct rf_kt_ref *ref;
	struct rf_kt_relay *r;
	struct rf_kt_conf *conf;
	__u32 zero = 0, buf;
	int res;

	res = kt_parse(skb, &p);
	if (res != KT_UDP)
		return not_taken(skb, res);
	key.family = p.family;
	key.port = p.dport;
	__builtin_memcpy(key.addr, p.dst, 16);
	if (p.family == 4)
		__builtin_memset(key.addr + 4, 0, 12);
	ref = bpf_map_lookup_elem(&rf_keys, &key);
	if (!ref)
		return not_taken(skb, KT_NOT_OURS);
	conf = bpf_map_lookup_elem(&rf_conf, &zero);
	if (!conf)
		return TC_ACT_OK;
	if (conf->orphan_ns && bpf_ktime_get_ns() - conf->heartbeat_ns > conf->orphan_ns) {
		/* no engine: pass to the stack, relay nothing */
		count_reason(RF_KT_C_ORPHAN_PASS);
		return TC_ACT_OK;
	}
	/* one load: the buffer current at this packet (relay_abi.h) */
	buf = ref->buf;
	r = bpf_map_lookup_elem(&rf_relays, &buf);
	if (!r)
		return TC_ACT_OK;
	if (r->mode != RF_KT_RELAY && r->mode != RF_KT_RELAY_LIMITED) {
		/* counter: kernel-only CONSUMED (the user tier counts it) */
		count_reason(RF_KT_C_CONSUMED);
		return TC_ACT_SHOT;
	}
	return relay(skb, r, &p, conf, buf / RF_KT_BUFS);
}

char _license[] SEC("license") = "Dual MIT/GPL";
