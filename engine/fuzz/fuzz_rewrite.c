/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the relay fast path (parse, lookup, source check,
 * rewrite, split) on arbitrary frames against a table with one IPv4 and one
 * IPv6 relay (the seed corpus from gen_seeds.c targets them). Every output
 * frame of an input whose UDP checksum was valid must carry valid IPv4 and
 * UDP checksums (the incremental update is checked against a full sum).
 */
#include <stdlib.h>

#include "../test/relay_testpkt.h"

static const uint8_t IFMAC[6] = { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee };
static const uint8_t P4[4] = { 198, 18, 0, 1 };
static const uint8_t P6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };

struct rf_port {
	uint32_t n;
	int check;
};

static uint32_t fake_tx(struct rf_port *p, struct rf_tx_pkt *pkts, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (p->check && !tp_valid(pkts[i].hdr, pkts[i].hdr_len, pkts[i].payload, pkts[i].payload_len))
			abort();
	/* pretend the ring fills now and then: exercises flush-and-retry */
	p->n += n;
	return (p->n % 7 == 3 && n > 1) ? n - 1 : n;
}

static int fake_flush(struct rf_port *p)
{
	(void)p;
	return 0;
}

static const struct rf_port_ops fake_ops = { .name = "fuzz", .tx_burst = fake_tx, .flush = fake_flush };

static void apply(struct rf_relay *r, uint32_t op, const void *body, size_t len)
{
	struct rf_policy_msg m;

	memset(&m, 0, sizeof(m));
	m.op = op;
	memcpy(m.body, body, len);
	if (rf_relay_apply(r, &m))
		abort();
}

static struct rf_relay *setup(void)
{
	/* the layout with 2.1's capture rings (2 MiB after the pool) */
	static uint8_t region[1 << 22] __attribute__((aligned(4096)));
	struct rf_region_params p = { 1, 16, 512, 16, 1, 16, 16, 1, 64 };
	char err[256];
	struct rf_relay *r;
	int fam, i;

	if (rf_region_init(region, sizeof(region), &p, err, sizeof(err)))
		abort();
	r = rf_relay_create((struct rf_output_counters *)(region + rf_hdr(region)->output_counters_off),
			    rf_hdr(region)->max_outputs, IFMAC, 9000);
	for (fam = 4; fam <= 6; fam += 2) {
		const uint8_t *P = fam == 4 ? P4 : P6;
		struct rf_policy_relay_add ra = { .relay_id = (uint32_t)fam, .counter = (uint32_t)fam,
						  .family = (uint8_t)fam, .port = 0x8813 /* 5000 */ };
		struct rf_policy_relay_allow al = { .relay_id = (uint32_t)fam, .family = (uint8_t)fam, .length = 0 };

		memcpy(ra.addr, P, fam == 4 ? 4 : 16);
		apply(r, RF_POLICY_OP_RELAY_ADD, &ra, sizeof(ra));
		apply(r, RF_POLICY_OP_RELAY_ALLOW, &al, sizeof(al));
		for (i = 0; i < 3; i++) {
			struct rf_policy_output_add o = { .relay_id = (uint32_t)fam, .output_id = (uint32_t)(10 * fam + i),
							  .family = (uint8_t)fam, .src_port = 0x8813,
							  .dst_port = (uint16_t)(0x7017 + i) };

			o.flags = (uint8_t)(RF_OUT_F_MAC_VALID | (i == 1 ? RF_OUT_F_DSCP | RF_OUT_F_TTL : 0));
			o.dscp = 46;
			o.ttl = 9;
			memcpy(o.src_addr, P, fam == 4 ? 4 : 16);
			memcpy(o.dst_addr, P, fam == 4 ? 4 : 16);
			o.dst_addr[fam == 4 ? 3 : 15] = (uint8_t)(20 + i);
			apply(r, RF_POLICY_OP_OUTPUT_ADD, &o, sizeof(o));
		}
	}
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rf_relay *r;
	static uint64_t c[RF_COUNTERS_PER_BLOCK];
	struct rf_port port = { 0, 0 };
	struct rf_rx_pkt rx = { .data = data, .len = (uint32_t)size, .wire_len = (uint32_t)size };
	struct rf_pkt_view v;

	if (!r)
		r = setup();
	/* only inputs with a valid UDP checksum must give valid outputs */
	if (rf_relay_parse(data, (uint32_t)size, (uint32_t)size, 0, &v) == RF_PARSE_UDP &&
	    !(v.family == 4 && v.udp_csum == 0)) {
		uint16_t ulen = (uint16_t)(v.payload_len + 8);

		size_t al = v.family == 4 ? 4 : 16;
		uint32_t sum = rf_csum_partial_be(v.dst, al, rf_csum_partial_be(v.src, al, 17u + ulen));

		/* a datagram summed with its own checksum folds to all-ones when valid */
		port.check = rf_csum_fold16(rf_csum_partial_be(v.udp, ulen, sum)) == 0xffff;
	}
	rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
	/* as a local sender with checksum offload hands it: the relay sums the
	 * payload itself, so every output must be valid whatever the input */
	rx.csum_partial = 1;
	port.check = 1;
	rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
	return 0;
}
