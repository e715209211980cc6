/* SPDX-License-Identifier: MIT */
/* Ethernet/IP/UDP header building and Internet checksums (netpkt.h). */
#include <string.h>

#include "netpkt.h"

uint32_t rf_csum_partial(const void *buf, size_t len, uint32_t sum)
{
	const uint8_t *p = buf;
	uint64_t acc = sum;
	uint32_t w;

	/* 32-bit words into a 64-bit accumulator: carries pile up in the top half
	 * and are folded once at the end (RFC 1071 "deferred carries"); 2^32
	 * words would be needed to overflow */
	while (len >= 16) {
		uint32_t a, b, c, d;

		memcpy(&a, p, 4);
		memcpy(&b, p + 4, 4);
		memcpy(&c, p + 8, 4);
		memcpy(&d, p + 12, 4);
		acc += (uint64_t)a + b + c + d;
		p += 16;
		len -= 16;
	}
	while (len >= 4) {
		memcpy(&w, p, 4);
		acc += w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		uint16_t h;

		memcpy(&h, p, 2);
		acc += h;
		p += 2;
		len -= 2;
	}
	if (len) {
		/* the odd byte is the first byte of a zero-padded 16-bit word */
		uint8_t last[2] = { p[0], 0 };
		uint16_t h;

		memcpy(&h, last, 2);
		acc += h;
	}
	return rf_csum_fold64(acc);
}

/* Sum of `words` 32-bit words, not folded: the fixed-size header pieces, so
 * the compiler unrolls them in place of a call per piece (the TX thread
 * builds a header per packet). */
static inline uint64_t sum_words(const uint8_t *p, unsigned words)
{
	uint64_t acc = 0;
	unsigned i;

	for (i = 0; i < words; i++) {
		uint32_t w;

		memcpy(&w, p + 4 * i, 4);
		acc += w;
	}
	return acc;
}

static void csum_update(uint16_t *csum, uint32_t delta_sum)
{
	/* ~HC + (~m + m') folded, inverted again */
	uint32_t s = rf_csum_add((uint16_t)~*csum, delta_sum);

	*csum = rf_csum_fold(s);
}

void rf_csum_replace2(uint16_t *csum, uint16_t from, uint16_t to)
{
	csum_update(csum, (uint32_t)(uint16_t)~from + to);
}

void rf_csum_replace4(uint16_t *csum, uint32_t from, uint32_t to)
{
	uint32_t s = (uint32_t)(uint16_t)~(from & 0xffff) + (uint16_t)~(from >> 16) +
		     (to & 0xffff) + (to >> 16);

	csum_update(csum, s);
}

void rf_csum_replace16(uint16_t *csum, const uint8_t from[16], const uint8_t to[16])
{
	uint32_t s = 0;
	int i;

	for (i = 0; i < 16; i += 2) {
		uint16_t f, t;

		memcpy(&f, from + i, 2);
		memcpy(&t, to + i, 2);
		s += (uint16_t)~f;
		s += t;
	}
	csum_update(csum, s);
}

static inline void put16(uint8_t *p, uint16_t host)
{
	p[0] = (uint8_t)(host >> 8);
	p[1] = (uint8_t)host;
}

uint32_t rf_netpkt_build_sum(uint8_t *hdr, const struct rf_dest *d, uint16_t payload_len,
			     uint32_t payload_sum, uint16_t ip_id)
{
	uint8_t ttl = d->ttl ? d->ttl : 64;
	uint16_t udp_len = (uint16_t)(RF_UDP_HLEN + payload_len);
	uint8_t *udp;
	uint64_t sum;
	uint16_t c;

	memcpy(hdr, d->dst_mac, 6);
	memcpy(hdr + 6, d->src_mac, 6);
	if (d->family == 4) {
		uint8_t *ip = hdr + RF_ETH_HLEN;

		hdr[12] = 0x08;
		hdr[13] = 0x00;
		ip[0] = 0x45;
		ip[1] = (uint8_t)(d->dscp << 2);
		put16(ip + 2, (uint16_t)(RF_IPV4_HLEN + udp_len));
		put16(ip + 4, ip_id);
		/* DF: media packets are sized to the path MTU, never fragmented */
		put16(ip + 6, 0x4000);
		ip[8] = ttl;
		ip[9] = 17;
		ip[10] = ip[11] = 0;
		memcpy(ip + 12, d->src_addr, 4);
		memcpy(ip + 16, d->dst_addr, 4);
		c = rf_csum_fold(rf_csum_fold64(sum_words(ip, RF_IPV4_HLEN / 4)));
		memcpy(ip + 10, &c, 2);
		udp = ip + RF_IPV4_HLEN;
		/* pseudo header: addresses, zero + protocol, UDP length */
		sum = sum_words(ip + 12, 2);
	} else if (d->family == 6) {
		uint8_t *ip = hdr + RF_ETH_HLEN;
		uint8_t tc = (uint8_t)(d->dscp << 2);

		hdr[12] = 0x86;
		hdr[13] = 0xdd;
		ip[0] = (uint8_t)(0x60 | tc >> 4);
		ip[1] = (uint8_t)(tc << 4);
		ip[2] = ip[3] = 0;
		put16(ip + 4, udp_len);
		ip[6] = 17;
		ip[7] = ttl;
		memcpy(ip + 8, d->src_addr, 16);
		memcpy(ip + 24, d->dst_addr, 16);
		udp = ip + RF_IPV6_HLEN;
		sum = sum_words(ip + 8, 8);
	} else {
		return 0;
	}
	memcpy(udp, &d->src_port, 2);
	memcpy(udp + 2, &d->dst_port, 2);
	put16(udp + 4, udp_len);
	udp[6] = udp[7] = 0;
	{
		/* the rest of the pseudo header (0, 17, length) and the UDP header
		 * with a zero checksum: 8 more bytes, even, before the payload */
		uint8_t tail[4] = { 0, 17, (uint8_t)(udp_len >> 8), (uint8_t)udp_len };

		sum += sum_words(tail, 1);
		sum += sum_words(udp, RF_UDP_HLEN / 4);
	}
	/* 64-bit accumulator: at most 16 words + a 32-bit sum, no overflow */
	sum += payload_sum;
	/* mandatory for IPv6, and cheap for IPv4 with the payload sum at hand */
	c = rf_udp_csum_fixup(rf_csum_fold(rf_csum_fold64(sum)));
	memcpy(udp + 6, &c, 2);
	return (uint32_t)(udp + RF_UDP_HLEN - hdr);
}

uint32_t rf_netpkt_tpl_build(struct rf_netpkt_tpl *t, const struct rf_dest *d)
{
	uint8_t *ip = t->hdr + RF_ETH_HLEN, *udp;
	uint8_t proto[2] = { 0, 17 };
	uint16_t p;
	uint32_t hlen;

	memset(t, 0, sizeof(*t));
	hlen = rf_netpkt_build_sum(t->hdr, d, 0, 0, 0);
	if (!hlen)
		return 0;
	if (d->family == 4) {
		/* tot_len, id and the checksum are per packet */
		memset(ip + 2, 0, 4);
		memset(ip + 10, 0, 2);
		t->ip_sum = sum_words(ip, RF_IPV4_HLEN / 4);
		t->udp_sum = sum_words(ip + 12, 2);
		udp = ip + RF_IPV4_HLEN;
	} else {
		memset(ip + 4, 0, 2);
		t->udp_sum = sum_words(ip + 8, 8);
		udp = ip + RF_IPV6_HLEN;
	}
	memset(udp + 4, 0, 4);
	/* the ports, and the pseudo header's (0, 17) as it sits in memory */
	memcpy(&p, proto, 2);
	t->udp_sum += sum_words(udp, 1) + p;
	t->hlen = (uint16_t)hlen;
	t->family = d->family;
	t->gen = d->gen;
	return hlen;
}
