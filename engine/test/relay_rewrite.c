/* SPDX-License-Identifier: MIT */
/* Relay header rewriter: incremental checksums equal full ones on random
 * IPv4/IPv6 datagrams, fields set as configured, a zero IPv4 UDP checksum
 * stays zero. Exits 0 (pass) or 1 (fail). */
#include <stdlib.h>

#include "relay_testpkt.h"

static uint32_t seed = 12345;
static uint32_t rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 17;
	seed ^= seed << 5;
	return seed;
}

static void rnd_bytes(uint8_t *p, size_t n)
{
	while (n--)
		*p++ = (uint8_t)rnd();
}

static uint16_t htons_(uint16_t v) { return (uint16_t)(v >> 8 | v << 8); }

static const uint8_t IFMAC[6] = { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee };

static int one(int family, int csum_zero)
{
	static uint8_t f[2048], pay[1500], hdr[RF_RELAY_HDR_MAX];
	uint8_t src[16], dst[16];
	struct rf_policy_output_add b;
	struct rf_relay_out o;
	struct rf_pkt_view v;
	uint16_t plen = (uint16_t)(rnd() % 1400), sport = (uint16_t)(rnd() | 1), dport = (uint16_t)(rnd() | 1);
	uint32_t n;
	const uint8_t *ip;
	size_t al = family == 4 ? 4 : 16;

	rnd_bytes(src, 16);
	rnd_bytes(dst, 16);
	rnd_bytes(pay, plen);
	n = tp_build(f, family, src, sport, dst, dport, pay, plen, csum_zero);
	if (rnd() & 1)
		f[family == 4 ? 15 : 15] = (uint8_t)rnd(); /* vary TOS/traffic class */
	if (family == 4)
		rf_put16(f + 24, 0), rf_put16(f + 24, (uint16_t)~rf_csum_fold16(rf_csum_partial_be(f + 14, 20, 0)));
	CHECK(rf_relay_parse(f, n, n, 0, &v) == RF_PARSE_UDP);
	if (!csum_zero && rnd() % 3 == 0) {
		/* checksum offload (CHECKSUM_PARTIAL): the field is not final, the
		 * relay sums the payload itself */
		v.udp_csum = (uint16_t)(rnd() | 1);
		v.csum_partial = 1;
		v.payload_sum = rf_csum_partial_be(v.payload, v.payload_len, 0);
	}

	memset(&b, 0, sizeof(b));
	b.family = (uint8_t)family;
	b.output_id = 3;
	b.flags = RF_OUT_F_MAC_VALID | (rnd() & 1 ? RF_OUT_F_DSCP : 0) | (rnd() & 1 ? RF_OUT_F_TTL : 0);
	b.dscp = (uint8_t)(rnd() % 64);
	b.ttl = (uint8_t)(rnd() % 255 + 1);
	b.src_port = (uint16_t)(rnd() | 1);
	b.dst_port = (uint16_t)(rnd() | 1);
	rnd_bytes(b.dst_mac, 6);
	rnd_bytes(b.src_addr, 16);
	rnd_bytes(b.dst_addr, 16);
	rf_relay_out_build(&o, &b, IFMAC);
	rf_relay_rewrite(&o, &v, hdr);

	CHECK(o.hdr_len == (family == 4 ? 42 : 62));
	CHECK(tp_valid(hdr, o.hdr_len, v.payload, v.payload_len));
	CHECK(!memcmp(hdr, b.dst_mac, 6) && !memcmp(hdr + 6, IFMAC, 6));
	ip = hdr + 14;
	if (family == 4) {
		CHECK(ip[0] == 0x45 && ip[9] == 17);
		CHECK(ip[8] == ((b.flags & RF_OUT_F_TTL) ? b.ttl : 64));
		CHECK(ip[1] == ((b.flags & RF_OUT_F_DSCP) ? (uint8_t)(b.dscp << 2 | (v.tos & 3)) : v.tos));
		CHECK(rf_get16(ip + 2) == 28 + plen && rf_get16(ip + 4) == 0x1234 && rf_get16(ip + 6) == 0x4000);
		CHECK(!memcmp(ip + 12, b.src_addr, al) && !memcmp(ip + 16, b.dst_addr, al));
		if (csum_zero)
			CHECK(rf_get16(ip + 26) == 0);
	} else {
		uint8_t tc = (uint8_t)((ip[0] & 15) << 4 | ip[1] >> 4);

		CHECK(ip[0] >> 4 == 6 && ip[6] == 17 && rf_get16(ip + 4) == 8 + plen);
		CHECK(ip[7] == ((b.flags & RF_OUT_F_TTL) ? b.ttl : 64));
		CHECK(tc == ((b.flags & RF_OUT_F_DSCP) ? (uint8_t)(b.dscp << 2 | (v.tos & 3)) : v.tos));
		CHECK(!memcmp(ip + 8, b.src_addr, al) && !memcmp(ip + 24, b.dst_addr, al));
		CHECK(rf_get16(ip + 46) != 0);
	}
	CHECK(!memcmp(ip + (family == 4 ? 20 : 40), &b.src_port, 2));
	CHECK(!memcmp(ip + (family == 4 ? 22 : 42), &b.dst_port, 2));
	return 0;
}

/* The one's complement corner: an arriving checksum of 0xffff (a computed
 * zero) and outputs whose new checksum computes to zero are sent as 0xffff. */
static int corner(void)
{
	uint8_t f[256], hdr[RF_RELAY_HDR_MAX];
	uint8_t src[4] = { 198, 18, 0, 2 }, dst[4] = { 198, 18, 0, 1 };
	struct rf_policy_output_add b;
	struct rf_relay_out o;
	struct rf_pkt_view v;
	uint32_t n, tries, hits = 0;

	for (tries = 0; tries < 200000 && hits < 4; tries++) {
		uint8_t pay[2];

		rf_put16(pay, (uint16_t)tries);
		n = tp_build(f, 4, src, 5000, dst, 6000, pay, 2, 0);
		CHECK(rf_relay_parse(f, n, n, 0, &v) == RF_PARSE_UDP);
		memset(&b, 0, sizeof(b));
		b.family = 4;
		b.flags = RF_OUT_F_MAC_VALID;
		b.src_port = htons_(7000);
		b.dst_port = htons_(8000);
		memcpy(b.src_addr, src, 4);
		memcpy(b.dst_addr, (uint8_t[]){ 198, 18, 0, 9 }, 4);
		rf_relay_out_build(&o, &b, IFMAC);
		rf_relay_rewrite(&o, &v, hdr);
		CHECK(tp_valid(hdr, o.hdr_len, v.payload, 2));
		CHECK(rf_get16(hdr + 40) != 0);
		if (rf_get16(hdr + 40) == 0xffff || v.udp_csum == 0xffff)
			hits++;
	}
	CHECK(hits > 0);
	return 0;
}

int main(void)
{
	int i;

	for (i = 0; i < 20000; i++)
		if (one(4, 0) || one(6, 0) || one(4, 1))
			return 1;
	if (corner())
		return 1;
	printf("relay_rewrite: ok\n");
	return 0;
}
