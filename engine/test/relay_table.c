/* SPDX-License-Identifier: MIT */
/* Relay policy table and fast path: every policy op and its rejections,
 * split through a fake port (one header per output, the payload pointer
 * shared), counters by reason, copy-on-write retire by epoch, and the BPF
 * filter run by a small classic-BPF interpreter, the rate limit's token
 * buckets on a fake clock. Exits 0 or 1. */
#include <errno.h>
#include <linux/filter.h>
#include <stdlib.h>

#include "relay_testpkt.h"

static const uint8_t IFMAC[6] = { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee };
static const uint8_t P4[4] = { 198, 18, 0, 1 }, ORIGIN4[4] = { 198, 18, 1, 2 };
static const uint8_t P6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
static const uint8_t ORIGIN6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 2 };

static uint16_t be(uint16_t v) { return (uint16_t)(v >> 8 | v << 8); }

/* ------------------------------------------------------------ fake port -- */

struct rf_port {
	uint32_t room;       /* frames tx_burst accepts before "ring full" */
	uint32_t ring;       /* room a flush gives back (0: a flush frees nothing) */
	uint32_t n;
	uint32_t flushes;
	uint32_t refuse_at;  /* 1-based index of the frame of each call to refuse (0: none) */
	struct rf_tx_pkt pkts[4096];
	uint8_t hdrs[4096][RF_RELAY_HDR_MAX];
};

static uint32_t fake_tx(struct rf_port *p, struct rf_tx_pkt *pkts, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n && p->room; i++, p->room--) {
		if (p->refuse_at == i + 1) {
			/* taken and refused: the caller counts it, not as sent */
			pkts[i].refused = 1;
			continue;
		}
		p->pkts[p->n] = pkts[i];
		/* the relay reuses its header scratch after tx_burst returns:
		 * keep a copy, as AF_PACKET copies into its ring frame */
		memcpy(p->hdrs[p->n], pkts[i].hdr, pkts[i].hdr_len);
		p->pkts[p->n].hdr = p->hdrs[p->n];
		p->n++;
	}
	return i;
}

static int fake_flush(struct rf_port *p)
{
	p->flushes++;
	if (p->ring)
		p->room = p->ring;
	return 0;
}

static const struct rf_port_ops fake_ops = { .name = "fake", .tx_burst = fake_tx, .flush = fake_flush };

/* ------------------------------------------------------------- helpers -- */

static int apply(struct rf_relay *r, uint32_t op, const void *body, size_t len)
{
	struct rf_policy_msg m;

	memset(&m, 0, sizeof(m));
	m.op = op;
	memcpy(m.body, body, len);
	return rf_relay_apply(r, &m);
}

static int add_relay(struct rf_relay *r, uint32_t id, uint32_t counter, int family, const uint8_t *addr, uint16_t port)
{
	struct rf_policy_relay_add b;

	memset(&b, 0, sizeof(b));
	b.relay_id = id;
	b.counter = counter;
	b.family = (uint8_t)family;
	b.port = be(port);
	memcpy(b.addr, addr, family == 6 ? 16 : 4);
	memcpy(b.name, "test", 4);
	return apply(r, RF_POLICY_OP_RELAY_ADD, &b, sizeof(b));
}

static int allow(struct rf_relay *r, uint32_t id, int family, const uint8_t *addr, uint8_t len)
{
	struct rf_policy_relay_allow b;

	memset(&b, 0, sizeof(b));
	b.relay_id = id;
	b.family = (uint8_t)family;
	b.length = len;
	memcpy(b.addr, addr, family == 6 ? 16 : 4);
	return apply(r, RF_POLICY_OP_RELAY_ALLOW, &b, sizeof(b));
}

static struct rf_policy_output_add out_body(uint32_t relay, uint32_t id, int family, uint8_t last, uint16_t port)
{
	struct rf_policy_output_add b;

	memset(&b, 0, sizeof(b));
	b.relay_id = relay;
	b.output_id = id;
	b.family = (uint8_t)family;
	b.flags = RF_OUT_F_MAC_VALID;
	b.src_port = be(4000);
	b.dst_port = be(port);
	memcpy(b.dst_mac, "\x02\x00\x00\x00\x01", 5);
	b.dst_mac[5] = last;
	memcpy(b.src_addr, family == 4 ? P4 : P6, family == 6 ? 16 : 4);
	memcpy(b.dst_addr, family == 4 ? P4 : P6, family == 6 ? 16 : 4);
	b.dst_addr[family == 4 ? 3 : 15] = last;
	return b;
}

static int add_out(struct rf_relay *r, uint32_t relay, uint32_t id, int family, uint8_t last, uint16_t port)
{
	struct rf_policy_output_add b = out_body(relay, id, family, last, port);

	return apply(r, RF_POLICY_OP_OUTPUT_ADD, &b, sizeof(b));
}

static int rm_out(struct rf_relay *r, uint32_t relay, uint32_t id)
{
	struct rf_policy_output_ref b = { relay, id };

	return apply(r, RF_POLICY_OP_OUTPUT_REMOVE, &b, sizeof(b));
}

static void *make_region(void)
{
	struct rf_region_params p = { 1, 16, 512, 16, 1, 16, 16, 1, 2048 };
	struct rf_region_layout l;
	char err[256];
	void *mem;

	if (rf_region_layout(&p, &l, err, sizeof(err)) || !(mem = aligned_alloc(4096, l.size)))
		return NULL;
	if (rf_region_init(mem, l.size, &p, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	return mem;
}

static struct rf_output_counters *oc(void *region, uint32_t id)
{
	return (struct rf_output_counters *)((uint8_t *)region + rf_hdr(region)->output_counters_off) + id;
}

/* --------------------------------------------------------------- tests -- */

static int test_rejections(void *region)
{
	struct rf_relay *r = rf_relay_create(oc(region, 0), rf_hdr(region)->max_outputs, IFMAC, 1500);
	struct rf_policy_output_add b;
	struct rf_policy_msg m = { .op = 99 };
	uint8_t a[4] = { 198, 18, 5, 0 };
	uint32_t i;

	CHECK(r);
	CHECK(rf_relay_apply(r, &m) == -EOPNOTSUPP);
	CHECK(add_relay(r, 1, 100, 4, P4, 5000) == 0);
	CHECK(add_relay(r, 1, 101, 4, P4, 5001) == -EEXIST);     /* same id */
	CHECK(add_relay(r, 2, 101, 4, P4, 5000) == -EEXIST);     /* same key */
	CHECK(add_relay(r, 2, 100, 4, P4, 5001) == -EEXIST);     /* same counter */
	CHECK(add_relay(r, 2, 5000, 4, P4, 5001) == -ERANGE);    /* counter >= max_outputs */
	CHECK(add_relay(r, 2, RF_RELAY_NONE, 5, P4, 5001) == -EINVAL);
	CHECK(add_relay(r, 2, RF_RELAY_NONE, 4, P4, 0) == -EINVAL);
	CHECK(add_out(r, 1, 0, 4, 10, 6000) == 0);
	CHECK(add_out(r, 1, 0, 4, 11, 6000) == -EEXIST);         /* same output id */
	CHECK(add_out(r, 1, 100, 4, 11, 6000) == -EEXIST);       /* the relay's counter */
	CHECK(add_out(r, 9, 1, 4, 11, 6000) == -ENOENT);
	CHECK(add_out(r, 1, 2048, 4, 11, 6000) == -ERANGE);
	CHECK(add_out(r, 1, 1, 6, 11, 6000) == -EAFNOSUPPORT);
	CHECK(add_out(r, 1, 1, 4, 1, 5000) == -ELOOP);           /* to the relay itself */
	b = out_body(1, 1, 4, 11, 6000);
	b.flags |= RF_OUT_F_DSCP;
	b.dscp = 64;
	CHECK(apply(r, RF_POLICY_OP_OUTPUT_ADD, &b, sizeof(b)) == -EINVAL);
	b = out_body(1, 1, 4, 11, 6000);
	b.flags |= 0x80;
	CHECK(apply(r, RF_POLICY_OP_OUTPUT_ADD, &b, sizeof(b)) == -EINVAL);
	/* a relay listening where an output sends would loop */
	CHECK(add_relay(r, 3, RF_RELAY_NONE, 4, (uint8_t[]){ 198, 18, 0, 10 }, 6000) == -ELOOP);
	CHECK(allow(r, 1, 4, P4, 33) == -EINVAL);
	CHECK(allow(r, 1, 6, P6, 64) == -EAFNOSUPPORT);
	CHECK(allow(r, 7, 4, P4, 24) == -ENOENT);
	for (i = 0; i < RF_RELAY_MAX_PREFIXES; i++) {
		a[3] = (uint8_t)i;
		CHECK(allow(r, 1, 4, a, 32) == 0);
	}
	CHECK(allow(r, 1, 4, a, 32) == -ENOSPC);
	CHECK(rm_out(r, 1, 77) == -ENOENT);
	CHECK(rm_out(r, 1, 0) == 0);
	CHECK(rm_out(r, 1, 0) == -ENOENT);
	{
		struct rf_policy_relay_ref rr = { 1 };

		CHECK(apply(r, RF_POLICY_OP_RELAY_REMOVE, &rr, sizeof(rr)) == 0);
		CHECK(apply(r, RF_POLICY_OP_RELAY_REMOVE, &rr, sizeof(rr)) == -ENOENT);
	}
	/* limits */
	for (i = 0; i < RF_RELAY_MAX_RELAYS; i++)
		CHECK(add_relay(r, 10 + i, RF_RELAY_NONE, 4, P4, (uint16_t)(7000 + i)) == 0);
	CHECK(add_relay(r, 9, RF_RELAY_NONE, 4, P4, 6999) == -ENOSPC);
	for (i = 0; i < RF_RELAY_MAX_OUTPUTS; i++)
		CHECK(add_out(r, 10 + i % 8, i, 4, (uint8_t)(20 + i % 200), (uint16_t)(9000 + i)) == 0);
	CHECK(add_out(r, 10, RF_RELAY_MAX_OUTPUTS, 4, 9, 9) == -ENOSPC);
	rf_relay_destroy(r);
	return 0;
}

/* 1 frame from an allowed origin to a relay with n outputs */
static int test_split(void *region, int family, uint32_t nout)
{
	static struct rf_port port;
	uint64_t c[RF_COUNTERS_PER_BLOCK] = { 0 };
	struct rf_relay *r = rf_relay_create(oc(region, 0), rf_hdr(region)->max_outputs, IFMAC, 1500);
	uint8_t f[2048], pay[1316];
	struct rf_rx_pkt rx;
	uint32_t i, n;
	const uint8_t *P = family == 4 ? P4 : P6, *O = family == 4 ? ORIGIN4 : ORIGIN6;

	CHECK(r);
	memset(&port, 0, sizeof(port));
	port.room = 100000;
	for (i = 0; i < sizeof(pay); i++)
		pay[i] = (uint8_t)(i * 7);
	CHECK(add_relay(r, 1, 1000, family, P, 5000) == 0);
	CHECK(allow(r, 1, family, O, family == 4 ? 24 : 64) == 0);
	for (i = 0; i < nout; i++)
		CHECK(add_out(r, 1, i, family, (uint8_t)(10 + i), (uint16_t)(6000 + i)) == 0);
	n = tp_build(f, family, O, 5555, P, 5000, pay, sizeof(pay), 0);
	rx = (struct rf_rx_pkt){ .data = f, .len = n, .wire_len = n };
	rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
	CHECK(port.n == nout);
	CHECK(c[RF_C_RELAY_IN] == 1 && c[RF_C_RELAY_OUT] == nout);
	for (i = 0; i < nout; i++) {
		const struct rf_tx_pkt *t = &port.pkts[i];
		const uint8_t *udp = t->hdr + (family == 4 ? 34 : 54);

		/* no payload copy: every output points at the arriving payload */
		CHECK(t->payload == f + n - sizeof(pay) && t->payload_len == sizeof(pay));
		CHECK(tp_valid(t->hdr, t->hdr_len, t->payload, t->payload_len));
		CHECK(rf_get16(udp + 2) == (uint16_t)(6000 + i) && rf_get16(udp) == 4000);
		CHECK(t->hdr[5] == (uint8_t)(10 + i));
		CHECK(oc(region, i)->packets == 1 && oc(region, i)->bytes == t->hdr_len + sizeof(pay));
	}
	CHECK(oc(region, 1000)->packets == 1);

	/* the same frame as a local sender with checksum offload hands it: the
	 * UDP checksum field holds garbage for us, the outputs are still valid */
	rf_put16(f + n - sizeof(pay) - 2, 0x1234);
	rx.csum_partial = 1;
	port.n = 0;
	rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
	CHECK(port.n == nout);
	for (i = 0; i < nout; i++)
		CHECK(tp_valid(port.pkts[i].hdr, port.pkts[i].hdr_len, port.pkts[i].payload, port.pkts[i].payload_len));
	rx.csum_partial = 0;
	port.n = 0;
	c[RF_C_RELAY_IN] = 0;
	c[RF_C_RELAY_OUT] = 0;

	/* not allowed: counted at the relay and in the thread's counters */
	{
		uint8_t other[16];

		memset(other, 0, 16);
		memcpy(other, O, family == 4 ? 4 : 16);
		other[family == 4 ? 2 : 7] ^= 0x40;
		n = tp_build(f, family, other, 5555, P, 5000, pay, 100, 0);
		rx.len = rx.wire_len = n;
		port.n = 0;
		rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
		CHECK(port.n == 0 && c[RF_C_DROP_NOT_ALLOWED] == 1 && oc(region, 1000)->drops == 1);
	}
	/* other port: unmatched */
	n = tp_build(f, family, O, 5555, P, 5001, pay, 100, 0);
	rx.len = rx.wire_len = n;
	rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
	CHECK(port.n == 0 && c[RF_C_RX_UNMATCHED] == 1);
	/* a fragment to the relay's address */
	n = tp_build(f, family, O, 5555, P, 5000, pay, 100, 0);
	if (family == 4) {
		rf_put16(f + 20, 0x2000);
		rf_put16(f + 24, 0);
		rf_put16(f + 24, (uint16_t)~rf_csum_fold16(rf_csum_partial_be(f + 14, 20, 0)));
	} else {
		f[20] = 44;
	}
	rx.len = rx.wire_len = n;
	rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
	CHECK(port.n == 0 && c[RF_C_DROP_FRAGMENT] == 1);
	/* malformed */
	rx.len = 30;
	rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
	CHECK(c[RF_C_DROP_MALFORMED] == 1);
	/* next hop lost on output 0: only that output drops */
	{
		struct rf_policy_output_mac m = { 1, 0, { 0 }, 0, 0 };

		CHECK(apply(r, RF_POLICY_OP_OUTPUT_SET_MAC, &m, sizeof(m)) == 0);
		n = tp_build(f, family, O, 5555, P, 5000, pay, 100, 0);
		rx.len = rx.wire_len = n;
		rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
		CHECK(port.n == nout - 1 && c[RF_C_DROP_NO_NEIGHBOUR] == 1 && oc(region, 0)->drops == 1);
		memcpy(m.dst_mac, "\x02\x00\x00\x00\x01\x63", 6);
		m.valid = 1;
		CHECK(apply(r, RF_POLICY_OP_OUTPUT_SET_MAC, &m, sizeof(m)) == 0);
		port.n = 0;
		rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
		CHECK(port.n == nout && port.pkts[0].hdr[5] == 0x63);
	}
	/* TX ring full: flush once and retry, then count the rest */
	if (nout > 2) {
		uint64_t before = c[RF_C_DROP_TX_FULL];

		port.n = 0;
		port.room = 2;
		rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
		CHECK(port.n == 2 && port.flushes >= 1);
		CHECK(c[RF_C_DROP_TX_FULL] - before == nout - 2);
	}
	/* a frame the port refuses is counted once: dropped (drop_tx_error and
	 * the output's drops), not sent (relay_out and the output's packets).
	 * The port refuses the second frame of each tx_burst: one per batch */
	if (nout > 2) {
		uint32_t refused = (nout + RF_RELAY_TX_BATCH - 1) / RF_RELAY_TX_BATCH;
		uint64_t out0 = c[RF_C_RELAY_OUT], err0 = c[RF_C_DROP_TX_ERROR];
		uint64_t p1 = oc(region, 1)->packets, d1 = oc(region, 1)->drops;

		port.n = 0;
		port.room = 100000;
		port.refuse_at = 2;
		rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
		port.refuse_at = 0;
		CHECK(port.n == nout - refused);
		CHECK(c[RF_C_RELAY_OUT] - out0 == nout - refused && c[RF_C_DROP_TX_ERROR] - err0 == refused);
		/* the second output's frame: one drop, no packet */
		CHECK(oc(region, 1)->packets == p1 && oc(region, 1)->drops == d1 + 1);
	}
	/* a split wider than the TX ring: flush and go on while flushing makes
	 * room, nothing dropped */
	if (nout > 4) {
		uint64_t before = c[RF_C_DROP_TX_FULL];

		port.n = 0;
		port.flushes = 0;
		port.room = port.ring = 4;
		rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
		CHECK(port.n == nout && c[RF_C_DROP_TX_FULL] == before);
		CHECK(port.flushes == (nout - 1) / 4);
		port.ring = 0;
	}
	rf_relay_destroy(r);
	return 0;
}

/* A datagram too big for the interface's MTU once rebuilt is dropped
 * (RF_C_DROP_BAD_LEN + the output's drops), the next one still goes. */
static int test_oversize(void *region)
{
	static struct rf_port port;
	uint64_t c[RF_COUNTERS_PER_BLOCK] = { 0 };
	struct rf_relay *r = rf_relay_create(oc(region, 0), rf_hdr(region)->max_outputs, IFMAC, 576);
	uint8_t f[2048], pay[1400] = { 0 };
	struct rf_rx_pkt rx;
	uint32_t n;

	CHECK(r);
	memset(&port, 0, sizeof(port));
	port.room = 100;
	CHECK(add_relay(r, 1, RF_RELAY_NONE, 4, P4, 5000) == 0);
	CHECK(allow(r, 1, 4, ORIGIN4, 32) == 0);
	CHECK(add_out(r, 1, 40, 4, 10, 6000) == 0);
	n = tp_build(f, 4, ORIGIN4, 5555, P4, 5000, pay, sizeof(pay), 0);
	rx = (struct rf_rx_pkt){ .data = f, .len = n, .wire_len = n };
	rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
	CHECK(port.n == 0 && c[RF_C_DROP_BAD_LEN] == 1 && oc(region, 40)->drops == 1);
	n = tp_build(f, 4, ORIGIN4, 5555, P4, 5000, pay, 576 - 28, 0);
	rx.len = rx.wire_len = n;
	rf_relay_burst(r, &rx, 1, &fake_ops, &port, c);
	CHECK(port.n == 1 && c[RF_C_DROP_BAD_LEN] == 1);
	rf_relay_destroy(r);
	return 0;
}

/* Copy-on-write: a table held by a reader inside a burst is not reused
 * until the reader leaves; outputs present before and after stay. */
static int test_epoch(void *region)
{
	struct rf_relay *r = rf_relay_create(oc(region, 0), rf_hdr(region)->max_outputs, IFMAC, 1500);
	const struct rf_relay_table *held;
	struct rf_relay_table snapshot;

	CHECK(r);
	CHECK(add_relay(r, 1, RF_RELAY_NONE, 4, P4, 5000) == 0);
	CHECK(add_out(r, 1, 0, 4, 10, 6000) == 0);
	/* updates applied between bursts are freed at once: many of them fit
	 * in RF_RELAY_TABLES copies */
	for (int i = 0; i < 1000; i++) {
		CHECK(add_out(r, 1, 1, 4, 11, 6001) == 0);
		CHECK(rm_out(r, 1, 1) == 0);
	}
	held = rf_relay_read_begin(r);
	memcpy(&snapshot, held, sizeof(snapshot));
	CHECK(add_out(r, 1, 1, 4, 11, 6001) == 0);
	CHECK(add_out(r, 1, 2, 4, 12, 6002) == 0);
	/* both spare copies are now current or retired while the reader holds
	 * one: a third update must wait */
	CHECK(add_out(r, 1, 3, 4, 13, 6003) == -EBUSY);
	CHECK(!memcmp(held, &snapshot, sizeof(snapshot)));
	rf_relay_read_end(r);
	CHECK(add_out(r, 1, 3, 4, 13, 6003) == 0);
	held = rf_relay_read_begin(r);
	CHECK(held->n_outputs == 4 && held->relays[0].out_count == 4);
	CHECK(held->outs[0].id == 0 && held->outs[3].id == 3);
	rf_relay_read_end(r);
	rf_relay_destroy(r);
	return 0;
}

/* ------------------------------------------------- classic BPF interpreter -- */

static uint32_t bpf_run(const struct sock_filter *p, uint32_t n, const uint8_t *pkt, uint32_t len)
{
	uint32_t pc = 0, A = 0, steps = 0;

	while (pc < n && steps++ < 10000) {
		const struct sock_filter *i = &p[pc];
		uint32_t k = i->k;

		switch (i->code) {
		case BPF_LD | BPF_B | BPF_ABS:
			if (k + 1 > len) return 0;
			A = pkt[k];
			break;
		case BPF_LD | BPF_H | BPF_ABS:
			if (k + 2 > len) return 0;
			A = rf_get16(pkt + k);
			break;
		case BPF_LD | BPF_W | BPF_ABS:
			if (k + 4 > len) return 0;
			A = (uint32_t)rf_get16(pkt + k) << 16 | rf_get16(pkt + k + 2);
			break;
		case BPF_JMP | BPF_JA:
			pc += k;
			break;
		case BPF_JMP | BPF_JEQ | BPF_K:
			pc += A == k ? i->jt : i->jf;
			break;
		case BPF_RET | BPF_K:
			return k;
		default:
			return 0xdead;
		}
		pc++;
	}
	return 0xdead;
}

static int test_filter(void *region)
{
	struct rf_relay *r = rf_relay_create(oc(region, 0), rf_hdr(region)->max_outputs, IFMAC, 1500);
	struct sock_filter prog[4096];
	uint8_t f[256], pay[8] = { 0 };
	uint32_t n, len, i;

	CHECK(r);
	/* empty table: a program that refuses everything, then "no change" */
	n = rf_relay_filter(r, prog, 4096);
	CHECK(n > 0);
	len = tp_build(f, 4, ORIGIN4, 1, P4, 5000, pay, 8, 0);
	CHECK(bpf_run(prog, n, f, len) == 0);
	CHECK(rf_relay_filter(r, prog, 4096) == 0);
	CHECK(add_relay(r, 1, RF_RELAY_NONE, 4, P4, 5000) == 0);
	CHECK(add_relay(r, 2, RF_RELAY_NONE, 6, P6, 5000) == 0);
	for (i = 0; i < 40; i++) {
		uint8_t a[16];

		memcpy(a, P6, 16);
		a[14] = (uint8_t)(i + 1);
		CHECK(add_relay(r, 10 + i, RF_RELAY_NONE, 6, a, 5000) == 0);
	}
	n = rf_relay_filter(r, prog, 4096);
	CHECK(n > 0);
	CHECK(bpf_run(prog, n, f, len) != 0);
	len = tp_build(f, 6, ORIGIN6, 1, P6, 5000, pay, 8, 0);
	CHECK(bpf_run(prog, n, f, len) != 0);
	f[14 + 24 + 14] = 40; /* the last relay's address */
	CHECK(bpf_run(prog, n, f, len) != 0);
	f[14 + 24 + 14] = 99; /* nobody's */
	CHECK(bpf_run(prog, n, f, len) == 0);
	len = tp_build(f, 4, ORIGIN4, 1, ORIGIN4, 5000, pay, 8, 0);
	CHECK(bpf_run(prog, n, f, len) == 0);
	f[23] = 6; /* TCP to the relay */
	memcpy(f + 30, P4, 4);
	CHECK(bpf_run(prog, n, f, len) == 0);
	rf_put16(f + 12, 0x0806);
	CHECK(bpf_run(prog, n, f, len) == 0);
	/* too small for the exact program: the "any UDP" one */
	CHECK(add_relay(r, 3, RF_RELAY_NONE, 4, ORIGIN4, 5000) == 0);
	n = rf_relay_filter(r, prog, 40);
	CHECK(n > 0 && n <= 40);
	len = tp_build(f, 4, ORIGIN4, 1, (uint8_t[]){ 198, 18, 9, 9 }, 5000, pay, 8, 0);
	CHECK(bpf_run(prog, n, f, len) != 0);
	rf_relay_destroy(r);
	return 0;
}

/* ------------------------------------------------------- rate limits -- */

/* CHECK with the values that failed */
#define CHECKV(cond, ...)                                                           \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                               \
			fputc('\n', stderr);                                        \
			return 1;                                                   \
		}                                                                   \
	} while (0)

static uint64_t fake_ns;
static uint64_t fake_clock(void) { return fake_ns; }

static int set_limit(struct rf_relay *r, uint32_t id, uint32_t pps, uint64_t bytes_per_s)
{
	struct rf_policy_relay_limit b = { .relay_id = id, .pps = pps, .bytes_per_s = bytes_per_s };

	return apply(r, RF_POLICY_OP_RELAY_LIMIT, &b, sizeof(b));
}

/* `n` frames of `f` (len bytes) in one burst at fake time `at`; returns frames sent */
static uint32_t limit_burst(struct rf_relay *r, struct rf_port *port, uint64_t *c, const uint8_t *f, uint32_t len,
			    uint32_t n, uint64_t at)
{
	static struct rf_rx_pkt rx[64];
	uint32_t before = port->n, i;

	fake_ns = at;
	for (i = 0; i < n && i < 64; i++)
		rx[i] = (struct rf_rx_pkt){ .data = f, .len = len, .wire_len = len };
	rf_relay_burst(r, rx, n < 64 ? n : 64, &fake_ops, port, c);
	port->n = port->n < 4000 ? port->n : 0; /* keep room in the fake port */
	return port->n >= before ? port->n - before : port->n;
}

static int test_limit(void *region)
{
	static struct rf_port port;
	uint64_t c[RF_COUNTERS_PER_BLOCK] = { 0 };
	struct rf_relay *r = rf_relay_create(oc(region, 0), rf_hdr(region)->max_outputs, IFMAC, 1500);
	uint8_t f[2048], pay[1000];
	uint32_t len, i, sent;
	uint64_t t, bytes;

	CHECK(r);
	r->now_ns = fake_clock;
	fake_ns = 1000000000ull;
	memset(&port, 0, sizeof(port));
	port.room = 1u << 30;
	memset(pay, 0x5a, sizeof(pay));
	CHECK(add_relay(r, 1, 100, 4, P4, 5000) == 0);
	CHECK(allow(r, 1, 4, ORIGIN4, 24) == 0);
	CHECK(add_out(r, 1, 0, 4, 10, 6000) == 0);
	CHECK(set_limit(r, 9, 10, 0) == -ENOENT);
	len = tp_build(f, 4, ORIGIN4, 5555, P4, 5000, pay, sizeof(pay), 0);

	/* 1000 pps: a full bucket holds 100 ms = 100 packets; 4 bursts of 64 at once */
	CHECK(set_limit(r, 1, 1000, 0) == 0);
	for (sent = 0, i = 0; i < 4; i++)
		sent += limit_burst(r, &port, c, f, len, 64, fake_ns);
	CHECKV(sent == 100, "a full bucket passes 100 of 256 frames, passed %u", sent);
	CHECKV(c[RF_C_DROP_RATE_LIMIT] == 156, "drop_rate_limit %llu", (unsigned long long)c[RF_C_DROP_RATE_LIMIT]);
	CHECKV(oc(region, 100)->drops == 156 && oc(region, 100)->limited == 156, "the relay's drops and limited");
	CHECKV(oc(region, 100)->packets == 100, "the relay took in what it passed on");
	CHECKV(c[RF_C_RELAY_IN] == 256, "every frame reached the relay");
	/* 50 ms later: 50 more */
	sent = limit_burst(r, &port, c, f, len, 64, fake_ns + 50000000ull);
	CHECKV(sent == 50, "50 ms refill 50 packets, passed %u", sent);
	/* a steady 4000 pps for 2 s passes 1000 pps (plus nothing: the bucket is empty) */
	for (sent = 0, t = 0; t < 4000; t++)
		sent += limit_burst(r, &port, c, f, len, 2, fake_ns + 500000ull);
	CHECKV(sent >= 1999 && sent <= 2001, "2 s at 1000 pps passed %u", sent);
	/* a clock that goes back refills no more than one bucket */
	sent = 0;
	for (i = 0; i < 4; i++)
		sent += limit_burst(r, &port, c, f, len, 64, 5);
	CHECKV(sent <= 100, "a clock going back gives at most a bucket, passed %u", sent);

	/* 100 kB/s: one 1042-byte frame costs 10.42 ms; the bucket holds one
	 * 65535-byte datagram's worth (655 ms) */
	CHECK(set_limit(r, 1, 0, 100000) == 0);
	fake_ns = 10000000000ull;
	for (bytes = 0, t = 0; t < 2000; t++)
		bytes += (uint64_t)len * limit_burst(r, &port, c, f, len, 1, fake_ns + 1000000ull);
	CHECKV(bytes <= 200000 + 65535 + len && bytes >= 200000 - len, "2 s at 100 kB/s passed %llu bytes", (unsigned long long)bytes);
	/* both limits: the tighter one wins */
	CHECK(set_limit(r, 1, 1, 1u << 30) == 0);
	sent = limit_burst(r, &port, c, f, len, 64, fake_ns + 1);
	CHECKV(sent == 1, "1 pps passes one frame at a time, passed %u", sent);
	/* no limit again: everything passes */
	CHECK(set_limit(r, 1, 0, 0) == 0);
	sent = limit_burst(r, &port, c, f, len, 64, fake_ns + 2);
	CHECKV(sent == 64, "no limit passes all, passed %u", sent);
	/* the limit survives other table changes, and a re-added relay starts at zero */
	CHECK(set_limit(r, 1, 1000, 0) == 0);
	CHECK(add_out(r, 1, 1, 4, 11, 6001) == 0);
	for (sent = 0, i = 0; i < 4; i++)
		sent += limit_burst(r, &port, c, f, len, 64, fake_ns + 3);
	CHECKV(sent == 200, "100 frames to 2 outputs after an output was added, sent %u", sent);
	{
		struct rf_policy_relay_ref rr = { 1 };

		CHECK(apply(r, RF_POLICY_OP_RELAY_REMOVE, &rr, sizeof(rr)) == 0);
	}
	CHECK(add_relay(r, 2, 100, 4, P4, 5000) == 0);
	CHECKV(oc(region, 100)->limited == 0 && oc(region, 100)->drops == 0, "counters zeroed for the new relay");
	rf_relay_destroy(r);
	return 0;
}

int main(void)
{
	void *region = make_region();

	if (!region)
		return 1;
	if (test_rejections(region) || test_split(region, 4, 1) || test_split(region, 4, 8) ||
	    test_split(region, 4, 64) || test_split(region, 6, 8) || test_split(region, 4, 300) ||
	    test_epoch(region) || test_filter(region) || test_oversize(region) || test_limit(region))
		return 1;
	free(region);
	printf("relay_table: ok\n");
	return 0;
}
