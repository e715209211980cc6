/* SPDX-License-Identifier: MIT */
/*
 * Frame parser of the relay fast path. Frames come from the wire: every
 * length is checked before the bytes it covers are read, and nothing is read
 * outside [frame, frame + len) (fuzzed by engine/fuzz/fuzz_parse.c).
 *
 * Rules (and why):
 * - Ethernet, then up to two VLAN tags inline (802.1Q 0x8100, 802.1ad
 *   0x88a8 outer, 0x8100 inner); a tag the kernel stripped (vlan_valid)
 *   counts as one. Tagged frames are parsed, then reported NOT_OURS: a relay
 *   listens on the interface's untagged network, and a tagged frame belongs
 *   to another broadcast domain that the kernel hands to its VLAN device.
 * - A frame the ring truncated (len < wire_len) with an IP ethertype is
 *   MALFORMED: its datagram cannot be relayed whole.
 * - IPv4: version 4, IHL >= 5 and within the frame, header checksum valid,
 *   total length in [IHL*4, captured bytes] (Ethernet padding after it is
 *   ignored). Options are skipped by IHL (outputs carry no options). Not UDP:
 *   NOT_OURS. MF set or offset != 0: FRAGMENT.
 * - IPv6: version 6, payload length non-zero (jumbograms are refused) and
 *   within the frame. Extension headers: hop-by-hop (only first), routing
 *   with segments left 0, and destination options are walked (at most 8
 *   headers); routing with segments left > 0 is MALFORMED (the relay is not
 *   the final destination); fragment header: FRAGMENT; any other next header
 *   (ESP, AH, no-next, ...): NOT_OURS.
 * - UDP: 8 <= length <= bytes left in the IP packet (a shorter length
 *   trims the datagram, as Linux does); IPv6 checksum 0 is MALFORMED
 *   (RFC 8200 8.1); an IPv4 checksum 0 means "none" and is kept.
 */
#include "relay_int.h"

#define ETH_HLEN 14u
#define ETHERTYPE_IPV4 0x0800u
#define ETHERTYPE_IPV6 0x86ddu
#define ETHERTYPE_VLAN 0x8100u
#define ETHERTYPE_QINQ 0x88a8u
#define IPPROTO_UDP_ 17u

/* The host-order sum of n big-endian 16-bit words at p: the header fields
 * rf_csum_partial_be() would sum (n <= 30 here, so no carry is lost), inline
 * and without its call and tail cases: three address/port sums and the IPv4
 * header check took 130 of the fast path's 1,040 instructions per packet
 * (callgrind, docs/relay-user-tier.md). */
static inline uint32_t sum_words(const uint8_t *p, uint32_t n)
{
	uint32_t s = 0, i;

	for (i = 0; i < n; i++)
		s += rf_get16(p + 2 * i);
	return s;
}

static enum rf_parse_result parse_udp(const uint8_t *udp, uint32_t left, struct rf_pkt_view *v)
{
	uint16_t ulen;
	uint32_t al;

	if (left < 8)
		return RF_PARSE_MALFORMED;
	ulen = rf_get16(udp + 4);
	if (ulen < 8 || ulen > left)
		return RF_PARSE_MALFORMED;
	v->udp = udp;
	v->udp_csum = rf_get16(udp + 6);
	if (v->family == 6 && v->udp_csum == 0)
		return RF_PARSE_MALFORMED;
	v->payload = udp + 8;
	v->payload_len = (uint16_t)(ulen - 8);
	/* once per datagram, not per output: the words every output replaces */
	al = v->family == 4 ? 2 : 8;
	v->addr_sum = rf_csum_fold16(sum_words(v->src, al) + sum_words(v->dst, al) + sum_words(udp, 2));
	return RF_PARSE_UDP;
}

static enum rf_parse_result parse_ipv4(const uint8_t *ip, uint32_t avail, struct rf_pkt_view *v)
{
	uint32_t ihl, tot;
	uint16_t frag;

	if (avail < 20)
		return RF_PARSE_MALFORMED;
	if ((ip[0] >> 4) != 4)
		return RF_PARSE_MALFORMED;
	ihl = (uint32_t)(ip[0] & 0x0f) * 4;
	if (ihl < 20 || ihl > avail)
		return RF_PARSE_MALFORMED;
	/* a header that does not sum to all-ones was corrupted: its addresses
	 * cannot be trusted, and we are about to rebuild it */
	if (rf_csum_fold16(sum_words(ip, ihl / 2)) != 0xffff)
		return RF_PARSE_MALFORMED;
	tot = rf_get16(ip + 2);
	if (tot < ihl || tot > avail)
		return RF_PARSE_MALFORMED;
	v->family = 4;
	v->tos = ip[1];
	v->ip_id = rf_get16(ip + 4);
	frag = rf_get16(ip + 6);
	v->df = (frag & 0x4000) != 0;
	v->src = ip + 12;
	v->dst = ip + 16;
	if (ip[9] != IPPROTO_UDP_)
		return RF_PARSE_NOT_OURS;
	if (frag & 0x3fff)
		return RF_PARSE_FRAGMENT;
	return parse_udp(ip + ihl, tot - ihl, v);
}

static enum rf_parse_result parse_ipv6(const uint8_t *ip, uint32_t avail, struct rf_pkt_view *v)
{
	uint32_t plen, off, n;
	uint8_t nh;

	if (avail < 40)
		return RF_PARSE_MALFORMED;
	if ((ip[0] >> 4) != 6)
		return RF_PARSE_MALFORMED;
	plen = rf_get16(ip + 4);
	if (plen == 0 || 40 + plen > avail)
		return RF_PARSE_MALFORMED;
	v->family = 6;
	v->tos = (uint8_t)((ip[0] & 0x0f) << 4 | ip[1] >> 4);
	v->src = ip + 8;
	v->dst = ip + 24;
	nh = ip[6];
	off = 40;
	for (n = 0; n < 8; n++) {
		uint32_t hlen;

		switch (nh) {
		case IPPROTO_UDP_:
			return parse_udp(ip + off, 40 + plen - off, v);
		case 44: /* fragment */
			return RF_PARSE_FRAGMENT;
		case 0:  /* hop-by-hop: only right after the IPv6 header (RFC 8200 4.1) */
			if (off != 40)
				return RF_PARSE_MALFORMED;
			break;
		case 43: /* routing */
		case 60: /* destination options */
			break;
		default:
			return RF_PARSE_NOT_OURS;
		}
		if (off + 8 > 40 + plen)
			return RF_PARSE_MALFORMED;
		if (nh == 43 && ip[off + 3] != 0)
			return RF_PARSE_MALFORMED;
		hlen = ((uint32_t)ip[off + 1] + 1) * 8;
		if (off + hlen > 40 + plen)
			return RF_PARSE_MALFORMED;
		nh = ip[off];
		off += hlen;
	}
	/* more than 8 extension headers: nobody sends that to a media relay */
	return RF_PARSE_MALFORMED;
}

enum rf_parse_result rf_relay_parse(const uint8_t *frame, uint32_t len, uint32_t wire_len,
				    int vlan_valid, struct rf_pkt_view *v)
{
	uint32_t off = ETH_HLEN;
	uint16_t type;
	enum rf_parse_result res;

	v->vlan_tags = vlan_valid ? 1 : 0;
	v->family = 0;
	v->csum_partial = 0;
	v->payload_sum = 0;
	if (len < ETH_HLEN)
		return RF_PARSE_NOT_OURS;
	type = rf_get16(frame + 12);
	/* outer 802.1ad or 802.1Q, then at most one inner 802.1Q */
	if (type == ETHERTYPE_QINQ || type == ETHERTYPE_VLAN) {
		if (len < off + 4)
			return RF_PARSE_NOT_OURS;
		type = rf_get16(frame + off + 2);
		off += 4;
		v->vlan_tags++;
		if (type == ETHERTYPE_VLAN) {
			if (len < off + 4)
				return RF_PARSE_NOT_OURS;
			type = rf_get16(frame + off + 2);
			off += 4;
			v->vlan_tags++;
		}
	}
	if (type != ETHERTYPE_IPV4 && type != ETHERTYPE_IPV6)
		return RF_PARSE_NOT_OURS;
	if (len < wire_len)
		return RF_PARSE_MALFORMED;
	v->l3_off = (uint16_t)off;
	if (type == ETHERTYPE_IPV4)
		res = parse_ipv4(frame + off, len - off, v);
	else
		res = parse_ipv6(frame + off, len - off, v);
	if (v->vlan_tags && res != RF_PARSE_MALFORMED)
		return RF_PARSE_NOT_OURS;
	return res;
}
