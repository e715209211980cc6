/* SPDX-License-Identifier: MIT */
/*
 * Frame builders and checksum verifiers shared by the relay C tests and the
 * fuzz targets: they compute checksums the slow, obvious way (a full RFC
 * 1071 sum) so the incremental ones of the relay are checked against them.
 */
#ifndef REFLECTOR_RELAY_TESTPKT_H
#define REFLECTOR_RELAY_TESTPKT_H

#include <stdio.h>
#include <string.h>

#include "relay_int.h"

#define CHECK(cond)                                                                 \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			return 1;                                                   \
		}                                                                   \
	} while (0)

/* Full UDP checksum (pseudo-header included) of the datagram at `udp`. */
static inline uint16_t tp_udp_csum(int family, const uint8_t *src, const uint8_t *dst,
				   const uint8_t *udp, uint16_t ulen)
{
	size_t al = family == 4 ? 4 : 16;
	uint32_t sum = rf_csum_partial_be(src, al, 0);

	sum = rf_csum_partial_be(dst, al, sum);
	sum += 17 + ulen;
	sum = rf_csum_partial_be(udp, ulen, sum);
	return (uint16_t)~rf_csum_fold16(sum);
}

/*
 * Build an Ethernet + IPv4/IPv6 + UDP frame into `f`; returns its length.
 * Checksums are correct (pass csum_zero to send IPv4 without a UDP checksum).
 */
static inline uint32_t tp_build(uint8_t *f, int family, const uint8_t *src, uint16_t sport,
				const uint8_t *dst, uint16_t dport, const uint8_t *payload,
				uint16_t plen, int csum_zero)
{
	uint8_t *ip = f + 14, *udp;
	uint16_t ulen = (uint16_t)(plen + 8), c;

	memset(f, 0, 14 + 40 + 8);
	memcpy(f, "\x02\x00\x00\x00\x00\x01", 6);
	memcpy(f + 6, "\x02\x00\x00\x00\x00\x02", 6);
	if (family == 4) {
		rf_put16(f + 12, 0x0800);
		ip[0] = 0x45;
		ip[1] = 0xb8;
		rf_put16(ip + 2, (uint16_t)(20 + ulen));
		rf_put16(ip + 4, 0x1234);
		rf_put16(ip + 6, 0x4000);
		ip[8] = 63;
		ip[9] = 17;
		memcpy(ip + 12, src, 4);
		memcpy(ip + 16, dst, 4);
		rf_put16(ip + 10, (uint16_t)~rf_csum_fold16(rf_csum_partial_be(ip, 20, 0)));
		udp = ip + 20;
	} else {
		rf_put16(f + 12, 0x86dd);
		ip[0] = 0x6b; /* traffic class 0xb8 */
		ip[1] = 0x80;
		rf_put16(ip + 4, ulen);
		ip[6] = 17;
		ip[7] = 63;
		memcpy(ip + 8, src, 16);
		memcpy(ip + 24, dst, 16);
		udp = ip + 40;
	}
	rf_put16(udp, sport);
	rf_put16(udp + 2, dport);
	rf_put16(udp + 4, ulen);
	rf_put16(udp + 6, 0);
	memcpy(udp + 8, payload, plen);
	if (!csum_zero) {
		c = tp_udp_csum(family, family == 4 ? ip + 12 : ip + 8, family == 4 ? ip + 16 : ip + 24,
				udp, ulen);
		rf_put16(udp + 6, c ? c : 0xffff);
	}
	return (uint32_t)(udp + ulen - f);
}

/* 1 when the frame formed by `hdr` (hdr_len bytes) and `payload` carries a
 * valid IPv4 header checksum (IPv4) and a valid UDP checksum (or 0 on IPv4). */
static inline int tp_valid(const uint8_t *hdr, uint16_t hdr_len, const uint8_t *payload, uint16_t plen)
{
	uint8_t f[14 + 40 + 8 + 65536];
	const uint8_t *ip = f + 14, *udp;
	int family;
	uint16_t ulen, got;
	uint32_t sum;

	memcpy(f, hdr, hdr_len);
	memcpy(f + hdr_len, payload, plen);
	family = rf_get16(f + 12) == 0x0800 ? 4 : 6;
	if (family == 4) {
		if (rf_csum_fold16(rf_csum_partial_be(ip, 20, 0)) != 0xffff)
			return 0;
		udp = ip + 20;
	} else {
		udp = ip + 40;
	}
	ulen = rf_get16(udp + 4);
	if (ulen != plen + 8)
		return 0;
	got = rf_get16(udp + 6);
	if (family == 4 && got == 0)
		return 1;
	if (family == 6 && got == 0)
		return 0;
	sum = rf_csum_partial_be(family == 4 ? ip + 12 : ip + 8, family == 4 ? 4 : 16, 0);
	sum = rf_csum_partial_be(family == 4 ? ip + 16 : ip + 24, family == 4 ? 4 : 16, sum);
	sum += 17 + ulen;
	sum = rf_csum_partial_be(udp, ulen, sum);
	return rf_csum_fold16(sum) == 0xffff;
}

#endif
