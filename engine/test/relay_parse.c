/* SPDX-License-Identifier: MIT */
/* Relay frame parser: every rule of relay_parse.c on hand-made frames, and
 * every truncation of valid frames. Exits 0 (pass) or 1 (fail). */
#include "relay_testpkt.h"

static const uint8_t S4[4] = { 198, 18, 1, 2 }, D4[4] = { 198, 18, 0, 1 };
static const uint8_t S6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 2 };
static const uint8_t D6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
static const uint8_t PAY[] = "0123456789abcdefghij";

static enum rf_parse_result parse(const uint8_t *f, uint32_t len, struct rf_pkt_view *v)
{
	return rf_relay_parse(f, len, len, 0, v);
}

static void fix_ip4_csum(uint8_t *ip)
{
	uint32_t ihl = (ip[0] & 15u) * 4;

	rf_put16(ip + 10, 0);
	rf_put16(ip + 10, (uint16_t)~rf_csum_fold16(rf_csum_partial_be(ip, ihl, 0)));
}

static int test_ipv4(void)
{
	uint8_t f[256], g[256];
	struct rf_pkt_view v;
	uint32_t n = tp_build(f, 4, S4, 5000, D4, 6000, PAY, 20, 0), i;

	CHECK(parse(f, n, &v) == RF_PARSE_UDP);
	CHECK(v.family == 4 && v.payload_len == 20 && !memcmp(v.payload, PAY, 20));
	CHECK(!memcmp(v.src, S4, 4) && !memcmp(v.dst, D4, 4));
	CHECK(rf_get16(v.udp + 2) == 6000 && v.tos == 0xb8 && v.df && v.ip_id == 0x1234);
	/* the ring truncated the frame */
	CHECK(rf_relay_parse(f, n, n + 1, 0, &v) == RF_PARSE_MALFORMED);
	/* Ethernet padding after the IP packet is ignored */
	memcpy(g, f, n);
	memset(g + n, 0xee, 20);
	CHECK(parse(g, n + 20, &v) == RF_PARSE_UDP && v.payload_len == 20);
	/* every truncation: short of 14 bytes not ours, else malformed */
	for (i = 0; i < n; i++)
		CHECK(parse(f, i, &v) == (i < 14 ? RF_PARSE_NOT_OURS : RF_PARSE_MALFORMED));
	/* version, IHL, header checksum, total length */
	memcpy(g, f, n); g[14] = 0x55; fix_ip4_csum(g + 14);
	CHECK(parse(g, n, &v) == RF_PARSE_MALFORMED);
	memcpy(g, f, n); g[14] = 0x44; fix_ip4_csum(g + 14);
	CHECK(parse(g, n, &v) == RF_PARSE_MALFORMED);
	memcpy(g, f, n); g[14 + 10] ^= 1;
	CHECK(parse(g, n, &v) == RF_PARSE_MALFORMED);
	memcpy(g, f, n); rf_put16(g + 16, (uint16_t)(n - 14 + 1)); fix_ip4_csum(g + 14);
	CHECK(parse(g, n, &v) == RF_PARSE_MALFORMED);
	memcpy(g, f, n); rf_put16(g + 16, 19); fix_ip4_csum(g + 14);
	CHECK(parse(g, n, &v) == RF_PARSE_MALFORMED);
	memcpy(g, f, n); rf_put16(g + 16, 27); fix_ip4_csum(g + 14);
	CHECK(parse(g, n, &v) == RF_PARSE_MALFORMED);
	/* UDP length: < 8 and > IP payload are malformed, shorter trims */
	memcpy(g, f, n); rf_put16(g + 38, 7);
	CHECK(parse(g, n, &v) == RF_PARSE_MALFORMED);
	memcpy(g, f, n); rf_put16(g + 38, 29);
	CHECK(parse(g, n, &v) == RF_PARSE_MALFORMED);
	memcpy(g, f, n); rf_put16(g + 38, 18);
	CHECK(parse(g, n, &v) == RF_PARSE_UDP && v.payload_len == 10);
	/* fragments: MF, offset */
	memcpy(g, f, n); rf_put16(g + 20, 0x2000); fix_ip4_csum(g + 14);
	CHECK(parse(g, n, &v) == RF_PARSE_FRAGMENT && !memcmp(v.dst, D4, 4));
	memcpy(g, f, n); rf_put16(g + 20, 0x0010); fix_ip4_csum(g + 14);
	CHECK(parse(g, n, &v) == RF_PARSE_FRAGMENT);
	/* not UDP */
	memcpy(g, f, n); g[23] = 6; fix_ip4_csum(g + 14);
	CHECK(parse(g, n, &v) == RF_PARSE_NOT_OURS);
	/* not IP */
	memcpy(g, f, n); rf_put16(g + 12, 0x0806);
	CHECK(parse(g, n, &v) == RF_PARSE_NOT_OURS);
	/* IP options (IHL 6) are skipped */
	memcpy(g, f, 34);
	g[14] = 0x46;
	memset(g + 34, 1, 4); /* four NOPs */
	memcpy(g + 38, f + 34, n - 34);
	rf_put16(g + 16, (uint16_t)(n - 14 + 4));
	fix_ip4_csum(g + 14);
	CHECK(parse(g, n + 4, &v) == RF_PARSE_UDP && v.payload_len == 20 && !memcmp(v.payload, PAY, 20));
	CHECK(v.udp == g + 38);
	/* options longer than the frame */
	g[14] = 0x4f; fix_ip4_csum(g + 14);
	CHECK(parse(g, 14 + 40, &v) == RF_PARSE_MALFORMED);
	return 0;
}

static int test_vlan(void)
{
	uint8_t f[256], g[256];
	struct rf_pkt_view v;
	uint32_t n = tp_build(f, 4, S4, 5000, D4, 6000, PAY, 20, 0);

	/* kernel-stripped tag */
	CHECK(rf_relay_parse(f, n, n, 1, &v) == RF_PARSE_NOT_OURS && v.vlan_tags == 1);
	/* one inline 802.1Q tag */
	memcpy(g, f, 12);
	rf_put16(g + 12, 0x8100); rf_put16(g + 14, 7);
	memcpy(g + 16, f + 12, n - 12);
	CHECK(parse(g, n + 4, &v) == RF_PARSE_NOT_OURS && v.vlan_tags == 1 && v.family == 4);
	/* 802.1ad + 802.1Q */
	memcpy(g, f, 12);
	rf_put16(g + 12, 0x88a8); rf_put16(g + 14, 7);
	rf_put16(g + 16, 0x8100); rf_put16(g + 18, 8);
	memcpy(g + 20, f + 12, n - 12);
	CHECK(parse(g, n + 8, &v) == RF_PARSE_NOT_OURS && v.vlan_tags == 2 && v.family == 4);
	/* tagged and broken: still counted as malformed */
	CHECK(parse(g, 40, &v) == RF_PARSE_MALFORMED);
	/* tag header itself cut */
	CHECK(parse(g, 16, &v) == RF_PARSE_NOT_OURS);
	return 0;
}

static int test_ipv6(void)
{
	uint8_t f[256], g[256];
	struct rf_pkt_view v;
	uint32_t n = tp_build(f, 6, S6, 5000, D6, 6000, PAY, 20, 0), i;

	CHECK(parse(f, n, &v) == RF_PARSE_UDP);
	CHECK(v.family == 6 && v.payload_len == 20 && !memcmp(v.payload, PAY, 20) && v.tos == 0xb8);
	CHECK(!memcmp(v.src, S6, 16) && !memcmp(v.dst, D6, 16));
	for (i = 14; i < n; i++)
		CHECK(parse(f, i, &v) == RF_PARSE_MALFORMED);
	/* checksum 0 is not allowed over IPv6 */
	memcpy(g, f, n); rf_put16(g + 54 + 6, 0);
	CHECK(parse(g, n, &v) == RF_PARSE_MALFORMED);
	/* jumbogram / zero payload length, version */
	memcpy(g, f, n); rf_put16(g + 18, 0);
	CHECK(parse(g, n, &v) == RF_PARSE_MALFORMED);
	memcpy(g, f, n); g[14] = 0x4b;
	CHECK(parse(g, n, &v) == RF_PARSE_MALFORMED);

	/* extension headers: insert one 8-byte header of type `t` */
	{
		static const uint8_t types[] = { 0, 60, 43, 43, 44, 59, 50 };
		static const enum rf_parse_result want[] = { RF_PARSE_UDP, RF_PARSE_UDP, RF_PARSE_UDP,
			RF_PARSE_MALFORMED, RF_PARSE_FRAGMENT, RF_PARSE_NOT_OURS, RF_PARSE_NOT_OURS };
		for (i = 0; i < sizeof(types); i++) {
			memcpy(g, f, 54);
			g[20] = types[i];
			memset(g + 54, 0, 8);
			g[54] = 17;  /* next: UDP */
			g[55] = 0;   /* 8 bytes */
			if (i == 3)
				g[57] = 1; /* routing, segments left 1 */
			memcpy(g + 62, f + 54, n - 54);
			rf_put16(g + 18, (uint16_t)(n - 54 + 8));
			CHECK(parse(g, n + 8, &v) == want[i]);
			if (want[i] == RF_PARSE_UDP)
				CHECK(v.payload_len == 20 && !memcmp(v.payload, PAY, 20));
			/* cut inside the extension header */
			CHECK(parse(g, 58, &v) == RF_PARSE_MALFORMED);
		}
		/* hop-by-hop that is not first */
		memcpy(g, f, 54);
		g[20] = 60;
		memset(g + 54, 0, 16);
		g[54] = 0;
		g[62] = 17;
		memcpy(g + 70, f + 54, n - 54);
		rf_put16(g + 18, (uint16_t)(n - 54 + 16));
		CHECK(parse(g, n + 16, &v) == RF_PARSE_MALFORMED);
		/* an extension header whose length runs past the packet */
		memcpy(g, f, 54);
		g[20] = 60;
		memset(g + 54, 0, 8);
		g[54] = 17;
		g[55] = 20;
		memcpy(g + 62, f + 54, n - 54);
		rf_put16(g + 18, (uint16_t)(n - 54 + 8));
		CHECK(parse(g, n + 8, &v) == RF_PARSE_MALFORMED);
	}
	/* nine destination-options headers in a row */
	{
		uint32_t k, off = 54;

		memcpy(g, f, 54);
		g[20] = 60;
		for (k = 0; k < 9; k++, off += 8) {
			memset(g + off, 0, 8);
			g[off] = k == 8 ? 17 : 60;
		}
		memcpy(g + off, f + 54, n - 54);
		rf_put16(g + 18, (uint16_t)(n - 54 + 72));
		CHECK(parse(g, n + 72, &v) == RF_PARSE_MALFORMED);
	}
	return 0;
}

int main(void)
{
	if (test_ipv4() || test_vlan() || test_ipv6())
		return 1;
	printf("relay_parse: ok\n");
	return 0;
}
