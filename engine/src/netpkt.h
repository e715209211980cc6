/* SPDX-License-Identifier: MIT */
/*
 * Building Ethernet + IPv4/IPv6 + UDP headers in front of a payload, and the
 * Internet checksum helpers (RFC 1071 sums, RFC 1624 incremental updates)
 * shared by the TX thread and the relay.
 *
 * Checksum values are kept as they sit in memory: a 16-bit field read from a
 * packet with memcpy is passed in and stored back unchanged, so no byte swap
 * is needed on either endianness (the one's complement sum is byte-order
 * independent, RFC 1071 section 2(B)).
 */
#ifndef REFLECTOR_NETPKT_H
#define REFLECTOR_NETPKT_H

#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "reflector/region.h"

#define RF_ETH_HLEN      14u
#define RF_IPV4_HLEN     20u
#define RF_IPV6_HLEN     40u
#define RF_UDP_HLEN      8u
#define RF_HDR_V4        (RF_ETH_HLEN + RF_IPV4_HLEN + RF_UDP_HLEN) /* 42 */
#define RF_HDR_V6        (RF_ETH_HLEN + RF_IPV6_HLEN + RF_UDP_HLEN) /* 62 */
#define RF_HDR_MAX       64u

/*
 * One's complement partial sum of `len` bytes added to `sum` (not folded,
 * not inverted). Chain calls to sum several pieces; every piece but the last
 * must have an even length (an odd piece would shift the next one by a byte).
 */
uint32_t rf_csum_partial(const void *buf, size_t len, uint32_t sum);

/* Fold a partial sum to 16 bits and invert it: the value to store in a
 * checksum field (as it sits in memory). */
static inline uint16_t rf_csum_fold(uint32_t sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Fold a partial sum to 16 bits, not inverted: the folded sum of some words
 * (in the byte order they were summed in), for RFC 1624 updates. */
static inline uint16_t rf_csum_fold16(uint32_t sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/*
 * The same sum in host order of big-endian words, for code that adds header
 * fields as numbers (the relay's rewriter: tot_len, id, ports): `sum` plus
 * the folded sum of `len` bytes at p read as big-endian 16-bit words (an odd
 * trailing byte padded with zero). Not folded. It is rf_csum_partial's sum
 * byte-swapped: a one's complement sum commutes with swapping the bytes of
 * every word (RFC 1071 section 2(B)).
 */
static inline uint32_t rf_csum_partial_be(const void *p, size_t len, uint32_t sum)
{
	return sum + ntohs(rf_csum_fold16(rf_csum_partial(p, len, 0)));
}

/* RFC 1624 eqn. 3 on values: HC' = ~(~HC + ~m + m'), where m and m' are the
 * folded sums of the old and the new values of the changed words; all three
 * in one byte order (either). */
static inline uint16_t rf_csum_update(uint16_t hc, uint16_t m_old, uint16_t m_new)
{
	uint32_t sum = (uint32_t)(uint16_t)~hc + (uint16_t)~m_old + m_new;

	return (uint16_t)~rf_csum_fold16(sum);
}

/* Add two partial sums (one's complement addition). */
static inline uint32_t rf_csum_add(uint32_t a, uint32_t b)
{
	uint32_t s = a + b;

	return s + (s < a);
}

/*
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). Update checksum field *csum (as in
 * memory) for a change of a 16-bit / 32-bit / 128-bit field from `from` to
 * `to` (both as in memory). For the UDP checksum over IPv4 a field of 0 means
 * "no checksum": leave it alone, and store 0xffff if the result is 0
 * (rf_udp_csum_fixup).
 */
void rf_csum_replace2(uint16_t *csum, uint16_t from, uint16_t to);
void rf_csum_replace4(uint16_t *csum, uint32_t from, uint32_t to);
void rf_csum_replace16(uint16_t *csum, const uint8_t from[16], const uint8_t to[16]);

/* A computed UDP checksum of 0 is sent as 0xffff (RFC 768; 0 means none). */
static inline uint16_t rf_udp_csum_fixup(uint16_t c) { return c ? c : 0xffff; }

/*
 * Complete a UDP checksum built with payload_sum 0 (rf_netpkt_build_sum):
 * `field` points at it (in the frame), payload_sum is rf_csum_partial() of
 * the payload. The result equals what rf_netpkt_build() writes.
 */
static inline void rf_csum_complete(uint8_t *field, uint32_t payload_sum)
{
	uint16_t c;
	uint64_t sum;

	memcpy(&c, field, 2);
	/* ~c is the folded sum of everything but the payload; 0xffff and 0
	 * (the fixup) are the same one's complement zero, so either adds alike */
	sum = (uint64_t)(uint16_t)~c + payload_sum;
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffffffu) + (sum >> 32);
	c = rf_udp_csum_fixup(rf_csum_fold((uint32_t)sum));
	memcpy(field, &c, 2);
}

/* Header length for a destination: RF_HDR_V4, RF_HDR_V6, or 0 if the family
 * is neither 4 nor 6. */
static inline uint32_t rf_netpkt_hdr_len(const struct rf_dest *d)
{
	return d->family == 4 ? RF_HDR_V4 : d->family == 6 ? RF_HDR_V6 : 0;
}

/*
 * Write Ethernet + IP + UDP headers for `payload_len` bytes to `d` into hdr
 * (at least RF_HDR_MAX bytes), with final IPv4 header and UDP checksums.
 * payload_sum is rf_csum_partial(payload, payload_len, 0): a split computes
 * it once for many destinations. IPv4 gets DF and identification ip_id.
 * Returns the header length, or 0 if d->family is invalid.
 */
uint32_t rf_netpkt_build_sum(uint8_t *hdr, const struct rf_dest *d, uint16_t payload_len,
			     uint32_t payload_sum, uint16_t ip_id);

/*
 * A destination's headers built once, for many packets (the TX thread keeps
 * one per destination entry, as the relay keeps one per output): per packet
 * only the lengths, the IPv4 identification and the checksums change.
 * Sums are in memory order, as everywhere in this file.
 */
struct rf_netpkt_tpl {
	uint8_t hdr[RF_HDR_MAX]; /* lengths, id and checksums zero */
	uint64_t ip_sum;         /* IPv4: sum of the template's IP header words */
	uint64_t udp_sum;        /* the pseudo header's addresses and protocol, the ports */
	uint32_t gen;            /* rf_dest.gen of the version it was built from */
	uint16_t hlen;           /* RF_HDR_V4 or RF_HDR_V6; 0 = no template */
	uint8_t family;
	uint8_t _pad;
};

/* Build `t` from a destination (a private copy: the caller checked it).
 * Returns the header length, or 0 (t->hlen = 0) if d->family is invalid. */
uint32_t rf_netpkt_tpl_build(struct rf_netpkt_tpl *t, const struct rf_dest *d);

static inline uint32_t rf_csum_fold64(uint64_t s)
{
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffffffu) + (s >> 32);
	return (uint32_t)s;
}

/*
 * Write the headers of a `payload_len`-byte packet to the template's
 * destination into hdr (RF_HDR_MAX bytes), with identification ip_id: what
 * rf_netpkt_build_sum(hdr, d, payload_len, 0, ip_id) writes (the UDP
 * checksum without the payload, completed by rf_csum_complete). Returns the
 * header length.
 *
 * The sums add each new 16-bit field as it sits in memory: 2^16 = 1 in one's
 * complement arithmetic, so a field adds the same to the folded sum whether
 * it is the low or the high half of a 32-bit word (RFC 1071 section 2(B)),
 * on either byte order, and nothing is stored and read back.
 */
static inline uint32_t rf_netpkt_tpl_apply(uint8_t *hdr, const struct rf_netpkt_tpl *t,
					   uint16_t payload_len, uint16_t ip_id)
{
	uint16_t udp_len = (uint16_t)(RF_UDP_HLEN + payload_len);
	uint16_t ulen_be = htons(udp_len), c;
	uint8_t *ip = hdr + RF_ETH_HLEN, *udp;

	memcpy(hdr, t->hdr, RF_HDR_MAX);
	if (t->family == 4) {
		uint16_t tot_be = htons((uint16_t)(RF_IPV4_HLEN + udp_len)), id_be = htons(ip_id);

		memcpy(ip + 2, &tot_be, 2);
		memcpy(ip + 4, &id_be, 2);
		c = rf_csum_fold(rf_csum_fold64(t->ip_sum + tot_be + id_be));
		memcpy(ip + 10, &c, 2);
		udp = ip + RF_IPV4_HLEN;
	} else {
		memcpy(ip + 4, &ulen_be, 2);
		udp = ip + RF_IPV6_HLEN;
	}
	memcpy(udp + 4, &ulen_be, 2);
	/* the length twice: in the pseudo header and in the UDP header */
	c = rf_udp_csum_fixup(rf_csum_fold(rf_csum_fold64(t->udp_sum + 2u * ulen_be)));
	memcpy(udp + 6, &c, 2);
	return t->hlen;
}

/* Same, summing the payload itself. */
static inline uint32_t rf_netpkt_build(uint8_t *hdr, const struct rf_dest *d,
				       const uint8_t *payload, uint16_t payload_len, uint16_t ip_id)
{
	return rf_netpkt_build_sum(hdr, d, payload_len, rf_csum_partial(payload, payload_len, 0),
				   ip_id);
}

#endif
