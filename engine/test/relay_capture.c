/* SPDX-License-Identifier: MIT */
/* The relay's capture (relay_capture.c): arming and its rejections, the
 * ingress frame and each output frame as rewritten in the ring, the
 * --subscriber filter, wrap with a PAD record, drop-and-count when the
 * consumer does not keep up (the relay's outputs are never affected), a
 * bogus consumer position, disarm and removal. Exits 0 or 1. */
#include <errno.h>
#include <stdlib.h>

#include "relay_testpkt.h"

static const uint8_t IFMAC[6] = { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee };
static const uint8_t P4[4] = { 198, 18, 0, 1 }, ORIGIN4[4] = { 198, 18, 1, 2 };

static uint16_t be(uint16_t v) { return (uint16_t)(v >> 8 | v << 8); }

struct rf_port {
	uint32_t n;
};

static uint32_t fake_tx(struct rf_port *p, struct rf_tx_pkt *pkts, uint32_t n)
{
	(void)pkts;
	p->n += n;
	return n;
}

static int fake_flush(struct rf_port *p)
{
	(void)p;
	return 0;
}

static const struct rf_port_ops fake_ops = { .name = "fake", .tx_burst = fake_tx, .flush = fake_flush };

static int apply(struct rf_relay *r, uint32_t op, const void *body, size_t len)
{
	struct rf_policy_msg m;

	memset(&m, 0, sizeof(m));
	m.op = op;
	memcpy(m.body, body, len);
	return rf_relay_apply(r, &m);
}

static int arm(struct rf_relay *r, uint32_t relay, uint32_t output, uint8_t ingress)
{
	struct rf_policy_capture b = { relay, output, ingress, { 0 } };

	return apply(r, RF_POLICY_OP_CAPTURE, &b, sizeof(b));
}

static int setup(struct rf_relay *r)
{
	struct rf_policy_relay_add ra;
	struct rf_policy_relay_allow al;
	struct rf_policy_output_add oa;
	uint32_t i;

	memset(&ra, 0, sizeof(ra));
	ra.relay_id = 1;
	ra.counter = 100;
	ra.family = 4;
	ra.port = be(5000);
	memcpy(ra.addr, P4, 4);
	memcpy(ra.name, "cap", 3);
	CHECK(apply(r, RF_POLICY_OP_RELAY_ADD, &ra, sizeof(ra)) == 0);
	memset(&al, 0, sizeof(al));
	al.relay_id = 1;
	al.family = 4;
	al.length = 24;
	memcpy(al.addr, ORIGIN4, 4);
	CHECK(apply(r, RF_POLICY_OP_RELAY_ALLOW, &al, sizeof(al)) == 0);
	for (i = 0; i < 2; i++) {
		memset(&oa, 0, sizeof(oa));
		oa.relay_id = 1;
		oa.output_id = i;
		oa.family = 4;
		oa.flags = RF_OUT_F_MAC_VALID;
		oa.src_port = be(4000);
		oa.dst_port = be((uint16_t)(6000 + i));
		memcpy(oa.dst_mac, "\x02\x00\x00\x00\x01", 5);
		oa.dst_mac[5] = (uint8_t)(10 + i);
		memcpy(oa.src_addr, P4, 4);
		memcpy(oa.dst_addr, P4, 4);
		oa.dst_addr[3] = (uint8_t)(10 + i);
		CHECK(apply(r, RF_POLICY_OP_OUTPUT_ADD, &oa, sizeof(oa)) == 0);
	}
	return 0;
}

static const struct rf_capture_rec *rec_at(const struct rf_capture_ring *c, uint32_t pos)
{
	return (const struct rf_capture_rec *)((const uint8_t *)c + RF_CAPTURE_HDR + (pos & (RF_CAPTURE_DATA - 1)));
}

/* Take every record from the ring like src/capture/ring.ts does; count them by kind. */
static uint32_t drain(struct rf_capture_ring *c, uint32_t *kinds, uint32_t *ids_out, uint32_t max_ids)
{
	uint32_t pos = c->consumer, end = c->producer, n = 0;

	while (pos != end) {
		uint32_t tail = RF_CAPTURE_DATA - (pos & (RF_CAPTURE_DATA - 1));
		const struct rf_capture_rec *rec;

		if (tail < sizeof(*rec)) {
			pos += tail;
			continue;
		}
		rec = rec_at(c, pos);
		if (rec->kind != RF_CAP_PAD) {
			kinds[rec->kind]++;
			if (n < max_ids)
				ids_out[n] = rec->kind << 16 | rec->id;
			n++;
		}
		pos += rec->len;
	}
	c->consumer = pos;
	return n;
}

int main(void)
{
	struct rf_region_params p = { 1, 16, 512, 16, 1, 16, 16, 1, 2048 };
	struct rf_region_layout l;
	struct rf_port port = { 0 };
	uint64_t cnt[RF_COUNTERS_PER_BLOCK] = { 0 };
	uint8_t f[2048], pay[1000];
	uint32_t kinds[4] = { 0 }, ids[8], i, n, sent;
	struct rf_capture_ring *c;
	struct rf_relay *r;
	struct rf_rx_pkt rx;
	char err[256];
	void *mem;

	CHECK(rf_region_layout(&p, &l, err, sizeof(err)) == 0);
	CHECK((mem = aligned_alloc(4096, l.size)) != NULL);
	CHECK(rf_region_init(mem, l.size, &p, err, sizeof(err)) == 0);
	CHECK(l.capture_off >= l.pool_off && l.capture_off + RF_CAPTURE_RINGS * RF_CAPTURE_STRIDE <= l.size);
	c = rf_capture_ring_at(mem, rf_hdr(mem), RF_THREAD_RX);
	CHECK(c->size == RF_CAPTURE_DATA && c->data_off == RF_CAPTURE_HDR);
	r = rf_relay_create((struct rf_output_counters *)((uint8_t *)mem + rf_hdr(mem)->output_counters_off),
			    rf_hdr(mem)->max_outputs, IFMAC, 1500);
	CHECK(r);
	CHECK(setup(r) == 0);
	/* without a ring: ENODEV; unknown relay or output: ENOENT */
	CHECK(arm(r, 1, RF_RELAY_NONE, 1) == -ENODEV);
	rf_relay_set_capture(r, c);
	CHECK(arm(r, 7, RF_RELAY_NONE, 1) == -ENOENT);
	CHECK(arm(r, 1, 9, 1) == -ENOENT);
	CHECK(arm(r, 1, RF_RELAY_NONE, 2) == -EINVAL);

	for (i = 0; i < sizeof(pay); i++)
		pay[i] = (uint8_t)(i * 3);
	n = tp_build(f, 4, ORIGIN4, 5555, P4, 5000, pay, sizeof(pay), 0);
	rx = (struct rf_rx_pkt){ .data = f, .len = n, .wire_len = n };

	/* not armed: nothing captured */
	rf_relay_burst(r, &rx, 1, &fake_ops, &port, cnt);
	CHECK(c->producer == 0 && c->captured == 0 && port.n == 2);

	/* armed for everything: the ingress frame, then each output's frame as rewritten */
	CHECK(arm(r, 1, RF_RELAY_NONE, 1) == 0);
	rf_relay_burst(r, &rx, 1, &fake_ops, &port, cnt);
	CHECK(c->captured == 3);
	{
		const struct rf_capture_rec *a = rec_at(c, 0), *b, *d;
		const uint8_t *fa = (const uint8_t *)(a + 1), *fb;

		CHECK(a->kind == RF_CAP_INGRESS && a->id == 1 && a->caplen == n && a->wire_len == n);
		CHECK(!memcmp(fa, f, n));
		CHECK(a->len % 8 == 0 && a->ts_ns > 1600000000ull * 1000000000ull);
		b = rec_at(c, a->len);
		fb = (const uint8_t *)(b + 1);
		CHECK(b->kind == RF_CAP_OUTPUT && b->id == 0 && b->caplen == 42 + sizeof(pay));
		CHECK(tp_valid(fb, 42, fb + 42, sizeof(pay)));
		CHECK(fb[5] == 10 && rf_get16(fb + 34 + 2) == 6000);
		d = rec_at(c, a->len + b->len);
		CHECK(d->kind == RF_CAP_OUTPUT && d->id == 1 && ((const uint8_t *)(d + 1))[5] == 11);
	}
	memset(kinds, 0, sizeof(kinds));
	CHECK(drain(c, kinds, ids, 8) == 3);

	/* one output only (--subscriber), no ingress */
	CHECK(arm(r, 1, 1, 0) == 0);
	rf_relay_burst(r, &rx, 1, &fake_ops, &port, cnt);
	memset(kinds, 0, sizeof(kinds));
	CHECK(drain(c, kinds, ids, 8) == 1 && ids[0] == (RF_CAP_OUTPUT << 16 | 1));

	/* a consumer that never reads: the ring fills, then frames are dropped
	 * and counted; the relay's outputs all still go out; wrap keeps records whole */
	CHECK(arm(r, 1, RF_RELAY_NONE, 1) == 0);
	sent = port.n;
	for (i = 0; i < 2000; i++)
		rf_relay_burst(r, &rx, 1, &fake_ops, &port, cnt);
	CHECK(port.n - sent == 4000);
	CHECK(c->dropped > 0 && c->captured - 4 + c->dropped == 6000);
	memset(kinds, 0, sizeof(kinds));
	n = drain(c, kinds, ids, 0);
	CHECK(n > 0 && n == kinds[RF_CAP_INGRESS] + kinds[RF_CAP_OUTPUT]);
	/* after the reader caught up, records flow again across the wrap */
	{
		uint64_t before = c->captured;

		for (i = 0; i < 2000; i++) {
			rf_relay_burst(r, &rx, 1, &fake_ops, &port, cnt);
			memset(kinds, 0, sizeof(kinds));
			drain(c, kinds, ids, 0);
			CHECK(kinds[RF_CAP_INGRESS] == 1 && kinds[RF_CAP_OUTPUT] == 2);
		}
		CHECK(c->captured - before == 6000);
	}
	/* a bogus consumer position (ahead of the producer): drops, writes nothing */
	{
		uint32_t prod = c->producer;
		uint64_t dropped = c->dropped;

		c->consumer = prod + 12345;
		rf_relay_burst(r, &rx, 1, &fake_ops, &port, cnt);
		CHECK(c->producer == prod && c->dropped == dropped + 3);
		c->consumer = prod;
	}
	/* disarmed: nothing more; removal disarms too */
	CHECK(arm(r, RF_RELAY_NONE, 0, 0) == 0);
	n = c->producer;
	rf_relay_burst(r, &rx, 1, &fake_ops, &port, cnt);
	CHECK(c->producer == n);
	CHECK(arm(r, 1, RF_RELAY_NONE, 1) == 0);
	{
		struct rf_policy_relay_ref rr = { 1 };

		CHECK(apply(r, RF_POLICY_OP_RELAY_REMOVE, &rr, sizeof(rr)) == 0);
		CHECK(r->cap_relay == RF_RELAY_NONE);
	}
	rf_relay_destroy(r);
	free(mem);
	printf("relay_capture: ok\n");
	return 0;
}
