/* SPDX-License-Identifier: MIT */
/*
 * netpkt: header building and checksums, checked against a byte-at-a-time
 * reference implementation of RFC 1071 (IPv4 header, UDP over IPv4/IPv6 with
 * pseudo header), for odd and even payload lengths, and the RFC 1624
 * incremental updates against a full recomputation.
 */
#include <arpa/inet.h>
#include <string.h>

#include "netpkt.h"
#include "testlib.h"

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

/* reference: big-endian 16-bit words, byte by byte */
static uint32_t ref_sum(const uint8_t *p, size_t len, uint32_t s)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	return s;
}

static uint16_t ref_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void fill_dest(struct rf_dest *d, int family)
{
	uint32_t i;

	memset(d, 0, sizeof(*d));
	d->family = (uint8_t)family;
	d->flags = RF_DEST_F_VALID;
	d->ttl = (uint8_t)(rnd() % 3 == 0 ? 0 : rnd());
	d->dscp = (uint8_t)(rnd() & 63);
	d->src_port = htons((uint16_t)rnd());
	d->dst_port = htons((uint16_t)rnd());
	for (i = 0; i < 6; i++) {
		d->dst_mac[i] = (uint8_t)rnd();
		d->src_mac[i] = (uint8_t)rnd();
	}
	for (i = 0; i < 16; i++) {
		d->src_addr[i] = (uint8_t)rnd();
		d->dst_addr[i] = (uint8_t)rnd();
	}
}

/* Verify a built frame field by field and its checksums with the reference. */
static void verify(const uint8_t *hdr, uint32_t hlen, const struct rf_dest *d,
		   const uint8_t *payload, uint16_t plen, uint16_t id)
{
	const uint8_t *ip = hdr + 14, *udp;
	uint8_t ph[40];
	uint32_t s;
	uint16_t udp_len = (uint16_t)(8 + plen);

	CHECK(memcmp(hdr, d->dst_mac, 6) == 0 && memcmp(hdr + 6, d->src_mac, 6) == 0, "MACs");
	if (d->family == 4) {
		CHECK(hlen == 42, "v4 header length %u", hlen);
		CHECK(get16(hdr + 12) == 0x0800, "ethertype");
		CHECK(ip[0] == 0x45 && ip[1] == d->dscp << 2, "version/ihl/tos");
		CHECK(get16(ip + 2) == 20 + udp_len, "total length");
		CHECK(get16(ip + 4) == id, "id");
		CHECK(get16(ip + 6) == 0x4000, "DF, no fragment offset");
		CHECK(ip[8] == (d->ttl ? d->ttl : 64) && ip[9] == 17, "ttl/protocol");
		CHECK(ref_fold(ref_sum(ip, 20, 0)) == 0, "IPv4 header checksum verifies");
		CHECK(memcmp(ip + 12, d->src_addr, 4) == 0 && memcmp(ip + 16, d->dst_addr, 4) == 0,
		      "addresses");
		udp = ip + 20;
		memcpy(ph, ip + 12, 8);
		ph[8] = 0;
		ph[9] = 17;
		ph[10] = (uint8_t)(udp_len >> 8);
		ph[11] = (uint8_t)udp_len;
		s = ref_sum(ph, 12, 0);
	} else {
		CHECK(hlen == 62, "v6 header length %u", hlen);
		CHECK(get16(hdr + 12) == 0x86dd, "ethertype");
		CHECK((ip[0] >> 4) == 6, "version");
		CHECK(((ip[0] & 15) << 4 | ip[1] >> 4) == d->dscp << 2, "traffic class");
		CHECK(get16(ip + 4) == udp_len, "payload length");
		CHECK(ip[6] == 17 && ip[7] == (d->ttl ? d->ttl : 64), "next header/hop limit");
		CHECK(memcmp(ip + 8, d->src_addr, 16) == 0 && memcmp(ip + 24, d->dst_addr, 16) == 0,
		      "addresses");
		udp = ip + 40;
		memcpy(ph, ip + 8, 32);
		ph[32] = ph[33] = 0;
		ph[34] = (uint8_t)(udp_len >> 8);
		ph[35] = (uint8_t)udp_len;
		ph[36] = ph[37] = ph[38] = 0;
		ph[39] = 17;
		s = ref_sum(ph, 40, 0);
	}
	CHECK(memcmp(udp, &d->src_port, 2) == 0 && memcmp(udp + 2, &d->dst_port, 2) == 0, "ports");
	CHECK(get16(udp + 4) == udp_len, "UDP length");
	CHECK(get16(udp + 6) != 0, "UDP checksum present");
	s = ref_sum(udp, 8, s);
	s = ref_sum(payload, plen, s);
	CHECK(ref_fold(s) == 0, "UDP checksum verifies (family %d, len %u)", d->family, plen);
}

int main(void)
{
	static uint8_t payload[9000];
	uint8_t hdr[RF_HDR_MAX];
	struct rf_dest d;
	uint32_t i, len;

	for (i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)rnd();

	/* rf_csum_partial == reference, any length, any start alignment */
	for (len = 0; len < 300; len++) {
		uint32_t off = rnd() % 8;

		CHECK(ntohs(rf_csum_fold(rf_csum_partial(payload + off, len, 0))) ==
			      ref_fold(ref_sum(payload + off, len, 0)),
		      "partial sum of %u bytes at offset %u", len, off);
	}
	CHECK(ntohs(rf_csum_fold(rf_csum_partial(payload, 8999, 0))) == ref_fold(ref_sum(payload, 8999, 0)),
	      "large odd buffer");
	/* chained even pieces equal one sum */
	CHECK(ntohs(rf_csum_fold(rf_csum_partial(payload + 100, 57,
						 rf_csum_partial(payload, 100, 0)))) ==
		      ref_fold(ref_sum(payload, 157, 0)),
	      "chained partial sums");
	/* worst case for carries: all 0xff */
	{
		uint8_t ff[1501];

		memset(ff, 0xff, sizeof(ff));
		CHECK(ntohs(rf_csum_fold(rf_csum_partial(ff, sizeof(ff), 0))) ==
			      ref_fold(ref_sum(ff, sizeof(ff), 0)), "all-ones buffer");
	}

	/* headers, IPv4 and IPv6, odd and even lengths */
	for (i = 0; i < 2000; i++) {
		int fam = i & 1 ? 6 : 4;
		uint16_t plen = (uint16_t)(i < 40 ? i : rnd() % 1473);
		uint16_t id = (uint16_t)rnd();
		uint32_t hl;

		fill_dest(&d, fam);
		memset(hdr, 0xaa, sizeof(hdr));
		hl = rf_netpkt_build(hdr, &d, payload + (i % 7), plen, id);
		verify(hdr, hl, &d, payload + (i % 7), plen, id);
	}
	/* the precomputed-sum variant gives the same bytes */
	{
		uint8_t h2[RF_HDR_MAX];

		fill_dest(&d, 6);
		rf_netpkt_build(hdr, &d, payload, 333, 7);
		rf_netpkt_build_sum(h2, &d, 333, rf_csum_partial(payload, 333, 0), 7);
		CHECK(memcmp(hdr, h2, 62) == 0, "build_sum == build");
	}
	/* the TX path's split: header summed without the payload, completed
	 * from the payload afterwards (rf_tx_pkt.csum_off) == build */
	for (i = 0; i < 4000; i++) {
		uint8_t h2[RF_HDR_MAX], ones[1472];
		uint16_t plen = (uint16_t)(i < 40 ? i : rnd() % 1473);
		const uint8_t *p = i % 5 == 4 ? ones : payload + (i % 7);
		uint32_t hl, hl2;

		memset(ones, 0xff, sizeof(ones));
		fill_dest(&d, i & 1 ? 6 : 4);
		d.src_port = (uint16_t)rnd();
		hl = rf_netpkt_build(hdr, &d, p, plen, (uint16_t)i);
		hl2 = rf_netpkt_build_sum(h2, &d, plen, 0, (uint16_t)i);
		rf_csum_complete(h2 + hl2 - 2, rf_csum_partial(p, plen, 0));
		CHECK(hl == hl2 && memcmp(hdr, h2, hl) == 0, "build_sum(0) + complete == build (len %u)",
		      plen);
	}
	/* the TX thread's header templates: one template per destination,
	 * applied to many lengths and ids, writes what build_sum(0) writes,
	 * byte for byte (the 0xffff fixup and the IPv4 header checksum
	 * included); an invalid family builds no template */
	for (i = 0; i < 4000; i++) {
		struct rf_netpkt_tpl tp;
		uint8_t h2[RF_HDR_MAX];
		uint32_t k, hl, hl2;

		fill_dest(&d, i & 1 ? 6 : 4);
		d.src_port = (uint16_t)rnd();
		d.gen = 2 * i;
		hl = rf_netpkt_tpl_build(&tp, &d);
		CHECK(hl == (i & 1 ? RF_HDR_V6 : RF_HDR_V4) && tp.hlen == hl && tp.gen == 2 * i,
		      "template of family %u: %u bytes", d.family, hl);
		for (k = 0; k < 4; k++) {
			uint16_t plen = (uint16_t)(k == 0 ? i % 40 : rnd() % 1473), id = (uint16_t)rnd();

			memset(hdr, 0xaa, sizeof(hdr));
			hl = rf_netpkt_tpl_apply(hdr, &tp, plen, id);
			hl2 = rf_netpkt_build_sum(h2, &d, plen, 0, id);
			CHECK(hl == hl2 && memcmp(hdr, h2, hl) == 0, "template == build_sum(0) (family %u, len %u)",
			      d.family, plen);
			rf_csum_complete(hdr + hl - 2, rf_csum_partial(payload, plen, 0));
			verify(hdr, hl, &d, payload, plen, id);
		}
	}
	{
		struct rf_netpkt_tpl tp;

		fill_dest(&d, 5);
		CHECK(rf_netpkt_tpl_build(&tp, &d) == 0 && tp.hlen == 0, "no template for family 5");
	}
	/* a computed checksum of 0 is sent as 0xffff: force it by search */
	{
		int found = 0;

		fill_dest(&d, 4);
		for (i = 0; i < 200000 && !found; i++) {
			uint8_t p[2] = { (uint8_t)(i >> 8), (uint8_t)i };

			d.src_port = (uint16_t)(i >> 3);
			rf_netpkt_build(hdr, &d, p, 2, 0);
			if (get16(hdr + 40) == 0xffff) {
				uint8_t h2[RF_HDR_MAX];

				verify(hdr, 42, &d, p, 2, 0);
				/* completing gives the same 0xffff */
				rf_netpkt_build_sum(h2, &d, 2, 0, 0);
				rf_csum_complete(h2 + 40, rf_csum_partial(p, 2, 0));
				CHECK(memcmp(hdr, h2, 42) == 0, "complete keeps the 0xffff fixup");
				found = 1;
			}
		}
		CHECK(found, "found a packet whose UDP checksum folds to 0xffff");
	}
	fill_dest(&d, 5);
	CHECK(rf_netpkt_build(hdr, &d, payload, 10, 0) == 0, "family 5 refused");

	/* RFC 1624 incremental updates == recomputation */
	for (i = 0; i < 2000; i++) {
		uint8_t pkt[RF_HDR_MAX + 64];
		uint8_t *ip, *udp;
		uint16_t ipc, udpc;
		uint32_t plen = rnd() % 64;

		fill_dest(&d, i & 1 ? 6 : 4);
		rf_netpkt_build(pkt, &d, payload, (uint16_t)plen, 1);
		ip = pkt + 14;
		udp = ip + (d.family == 4 ? 20 : 40);
		memcpy(udp + 8, payload, plen);
		if (d.family == 4) {
			uint32_t from, to = rnd();
			uint16_t pf, pt = (uint16_t)rnd();

			memcpy(&from, ip + 16, 4);
			memcpy(&ipc, ip + 10, 2);
			memcpy(&udpc, udp + 6, 2);
			rf_csum_replace4(&ipc, from, to);
			rf_csum_replace4(&udpc, from, to);
			memcpy(ip + 16, &to, 4);
			memcpy(&pf, udp + 2, 2);
			rf_csum_replace2(&udpc, pf, pt);
			memcpy(udp + 2, &pt, 2);
			udpc = rf_udp_csum_fixup(udpc);
			memcpy(ip + 10, &ipc, 2);
			memcpy(udp + 6, &udpc, 2);
			CHECK(ref_fold(ref_sum(ip, 20, 0)) == 0, "IPv4 header after replace4");
			memcpy(d.dst_addr, &to, 4);
			d.dst_port = pt;
		} else {
			uint8_t to[16];
			uint32_t k;

			for (k = 0; k < 16; k++)
				to[k] = (uint8_t)rnd();
			memcpy(&udpc, udp + 6, 2);
			rf_csum_replace16(&udpc, ip + 24, to);
			udpc = rf_udp_csum_fixup(udpc);
			memcpy(ip + 24, to, 16);
			memcpy(udp + 6, &udpc, 2);
			memcpy(d.dst_addr, to, 16);
		}
		verify(pkt, d.family == 4 ? 42 : 62, &d, udp + 8, (uint16_t)plen, 1);
	}
	return t_result("netpkt");
}
