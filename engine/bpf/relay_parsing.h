/* SPDX-License-Identifier: MIT */
/*
 * Frame parsing of the tc program: the rules of the engine's parser
 * (engine/src/relay_parse.c) on an skb, through bpf_skb_load_bytes (every
 * read bounds-checked by the kernel). BPF_PROG_TEST_RUN compares both on
 * the same frames (test/relay/kernel-diff.test.ts).
 */
#ifndef REFLECTOR_RELAY_PARSING_H
#define REFLECTOR_RELAY_PARSING_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "csum_helpers.h"

enum kt_parse {
	KT_UDP = 0,
	KT_NOT_OURS,
	KT_MALFORMED,
	KT_FRAGMENT,
};

struct kt_pkt {
	__u8 family;
	__u8 tos;
	__u8 df;
	__u8 has_opts;     /* IPv4 options or IPv6 extension headers */
	__u16 ip_id;       /* host order */
	__u16 ulen;        /* UDP length (host order) */
	__u16 udp_csum;    /* host order */
	__u16 l3_off;
	__u16 l4_off;
	__u16 _pad;
	__u32 src[4];      /* network order words */
	__u32 dst[4];
	__u16 sport;       /* network order */
	__u16 dport;
};

static __always_inline int kt_parse_udp(struct __sk_buff *skb, __u32 off, __u32 left, struct kt_pkt *p)
{
	__u8 u[8];

	if (left < 8 || bpf_skb_load_bytes(skb, off, u, 8))
		return KT_MALFORMED;
	p->ulen = (__u16)(u[4] << 8 | u[5]);
	if (p->ulen < 8 || p->ulen > left)
		return KT_MALFORMED;
	p->udp_csum = (__u16)(u[6] << 8 | u[7]);
	if (p->family == 6 && p->udp_csum == 0)
		return KT_MALFORMED;
	__builtin_memcpy(&p->sport, u, 2);
	__builtin_memcpy(&p->dport, u + 2, 2);
	p->l4_off = (__u16)off;
	return KT_UDP;
}

static __noinline int kt_parse_ipv4(struct __sk_buff *skb, __u32 off, __u32 avail, struct kt_pkt *p)
{
	__u8 h[60];
	__u32 ihl, tot, sum = 0, i;
	__u16 frag;

	if (avail < 20 || bpf_skb_load_bytes(skb, off, h, 20))
		return KT_MALFORMED;
	if ((h[0] >> 4) != 4)
		return KT_MALFORMED;
	ihl = (__u32)(h[0] & 0x0f) * 4;
	if (ihl < 20 || ihl > avail)
		return KT_MALFORMED;
	if (ihl > 20) {
		/* options: load the whole header for its checksum */
		if (bpf_skb_load_bytes(skb, off, h, ihl & 0x3c))
			return KT_MALFORMED;
		p->has_opts = 1;
	}
	/* a header that does not sum to all-ones was corrupted (relay_parse.c) */
#pragma unroll
	for (i = 0; i < 60; i += 2)
		if (i < ihl)
			sum += (__u32)h[i] << 8 | h[i + 1];
	if (csum_fold16(sum) != 0xffff)
		return KT_MALFORMED;
	tot = (__u32)h[2] << 8 | h[3];
	if (tot < ihl || tot > avail)
		return KT_MALFORMED;
	p->family = 4;
	p->tos = h[1];
	p->ip_id = (__u16)(h[4] << 8 | h[5]);
	frag = (__u16)(h[6] << 8 | h[7]);
	p->df = (frag & 0x4000) != 0;
	__builtin_memcpy(&p->src[0], h + 12, 4);
	__builtin_memcpy(&p->dst[0], h + 16, 4);
	if (h[9] != 17)
		return KT_NOT_OURS;
	if (frag & 0x3fff)
		return KT_FRAGMENT;
	return kt_parse_udp(skb, off + ihl, tot - ihl, p);
}

static __noinline int kt_parse_ipv6(struct __sk_buff *skb, __u32 off, __u32 avail, struct kt_pkt *p)
{
	__u8 h[40], x[8];
	__u32 plen, o, n, hlen;
	__u8 nh;

	if (avail < 40 || bpf_skb_load_bytes(skb, off, h, 40))
		return KT_MALFORMED;
	if ((h[0] >> 4) != 6)
		return KT_MALFORMED;
	plen = (__u32)h[4] << 8 | h[5];
	if (plen == 0 || 40 + plen > avail)
		return KT_MALFORMED;
	p->family = 6;
	p->tos = (__u8)((h[0] & 0x0f) << 4 | h[1] >> 4);
	__builtin_memcpy(p->src, h + 8, 16);
	__builtin_memcpy(p->dst, h + 24, 16);
	nh = h[6];
	o = 40;
#pragma unroll
	for (n = 0; n < 8; n++) {
		if (nh == 17)
			return kt_parse_udp(skb, off + o, 40 + plen - o, p);
		if (nh == 44)
			return KT_FRAGMENT;
		if (nh == 0) {
			if (o != 40)
				return KT_MALFORMED;
		} else if (nh != 43 && nh != 60) {
			return KT_NOT_OURS;
		}
		if (o + 8 > 40 + plen || o > 1024)
			return KT_MALFORMED;
		if (bpf_skb_load_bytes(skb, off + o, x, 8))
			return KT_MALFORMED;
		if (nh == 43 && x[3] != 0)
			return KT_MALFORMED;
		hlen = ((__u32)x[1] + 1) * 8;
		if (o + hlen > 40 + plen)
			return KT_MALFORMED;
		nh = x[0];
		o += hlen;
		p->has_opts = 1;
	}
	return KT_MALFORMED;
}

/* Classify the frame in `skb` (Ethernet first). */
static __noinline int kt_parse(struct __sk_buff *skb, struct kt_pkt *p)
{
	__u8 eth[14];
	__u16 type;
	__u32 len = skb->len;
	int res;

	if (len < 14 || bpf_skb_load_bytes(skb, 0, eth, 14))
		return KT_NOT_OURS;
	type = (__u16)(eth[12] << 8 | eth[13]);
	/* tagged frames belong to another broadcast domain (relay_parse.c):
	 * a kernel-stripped tag or one inline */
	if (skb->vlan_present || type == 0x8100 || type == 0x88a8)
		return KT_NOT_OURS;
	if (type != 0x0800 && type != 0x86dd)
		return KT_NOT_OURS;
	p->l3_off = 14;
	if (type == 0x0800)
		res = kt_parse_ipv4(skb, 14, len - 14, p);
	else
		res = kt_parse_ipv6(skb, 14, len - 14, p);
	return res;
}

#endif
