/* SPDX-License-Identifier: MIT */
/*
 * The relay fast path (relay.h): for each received frame, parse it, find
 * the relay whose key <address, UDP port> it is sent to, check its source,
 * and queue one frame per output: a per-output header built here in front
 * of the arriving payload, which is never copied by this code.
 *
 * Copies of the payload per output frame, by backend: AF_PACKET's TX ring
 * needs one contiguous frame, so its tx_burst copies header and payload into
 * the ring frame (one payload copy per output); a backend that chains
 * buffers (DPDK indirect mbufs, AF_XDP multi-buffer) would send the shared
 * payload with zero copies; the null backend copies nothing.
 *
 * Checksums: the IPv4 header checksum comes from the output's precomputed
 * template sum plus the per-packet words (RFC 1624 from a zero field), the
 * UDP checksum from the arriving one with the old addresses and ports
 * swapped for the new (RFC 1624 eqn. 3). The payload is never summed, and a
 * corrupted payload stays detectably corrupted at the subscriber. An IPv4
 * datagram sent without a checksum (0) is relayed without one; IPv6 always
 * carries one (the parser refuses 0).
 *
 * A frame from a local sender with checksum offload (veth, the kernel's
 * CHECKSUM_PARTIAL: rf_rx_pkt.csum_partial) carries only the pseudo-header
 * sum in its UDP checksum field, so there is nothing to update: the payload
 * is summed once per frame (not per output) and each output's checksum is
 * computed from its own pseudo-header, header and that sum.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "reflector/barrier.h"
#include "relay_int.h"

#define ETH_HLEN 14u

struct rf_relay *rf_relay_create(struct rf_output_counters *oc, uint32_t max_outputs,
				 const uint8_t if_mac[6], uint32_t mtu)
{
	struct rf_relay *r = calloc(1, sizeof(*r));
	uint32_t i;

	if (!r)
		return NULL;
	for (i = 0; i < RF_RELAY_TABLES; i++) {
		r->tables[i] = calloc(1, sizeof(struct rf_relay_table));
		if (!r->tables[i]) {
			rf_relay_destroy(r);
			return NULL;
		}
	}
	/* from the caller's checked copy of the header, never the live one */
	r->oc = oc;
	r->max_outputs = oc ? max_outputs : 0;
	r->mtu = mtu ? mtu : 1500;
	r->now_ns = rf_now_ns;
	memcpy(r->mac, if_mac, 6);
	r->in_use[0] = 1;
	r->cap_relay = RF_RELAY_NONE;
	r->cap_output = RF_RELAY_NONE;
	/* keys_gen starts at 1 so the first rf_relay_filter() call installs a
	 * filter even for an empty table */
	r->tables[0]->keys_gen = 1;
	atomic_store_explicit(&r->cur, r->tables[0], memory_order_release);
	return r;
}

void rf_relay_destroy(struct rf_relay *r)
{
	uint32_t i;

	if (!r)
		return;
	for (i = 0; i < RF_RELAY_TABLES; i++)
		free(r->tables[i]);
	free(r);
}

/* ------------------------------------------------------------ rewrite -- */

void rf_relay_out_build(struct rf_relay_out *o, const struct rf_policy_output_add *b,
			const uint8_t if_mac[6])
{
	uint8_t *h = o->hdr, *ip = h + ETH_HLEN, *udp;
	size_t al = b->family == 4 ? 4 : 16;
	uint8_t ttl = (b->flags & RF_OUT_F_TTL) ? b->ttl : 64;
	uint32_t sum;

	memset(o, 0, sizeof(*o));
	o->id = b->output_id;
	o->family = b->family;
	o->flags = b->flags;
	memcpy(h, b->dst_mac, 6);
	memcpy(h + 6, if_mac, 6);
	if (b->family == 4) {
		rf_put16(h + 12, 0x0800);
		/* tot_len, id, tos and DF are per packet: left zero here and
		 * added to ip_sum in rf_relay_rewrite() */
		ip[0] = 0x45;
		ip[8] = ttl;
		ip[9] = 17;
		memcpy(ip + 12, b->src_addr, 4);
		memcpy(ip + 16, b->dst_addr, 4);
		udp = ip + 20;
		o->ip_sum = rf_csum_fold16(rf_csum_partial_be(ip, 20, 0));
	} else {
		rf_put16(h + 12, 0x86dd);
		ip[0] = 0x60;
		ip[6] = 17;
		ip[7] = ttl;
		memcpy(ip + 8, b->src_addr, 16);
		memcpy(ip + 24, b->dst_addr, 16);
		udp = ip + 40;
	}
	/* ports are in network byte order in the body: copy the bytes */
	memcpy(udp, &b->src_port, 2);
	memcpy(udp + 2, &b->dst_port, 2);
	o->hdr_len = (uint16_t)(udp + 8 - h);
	sum = rf_csum_partial_be(b->src_addr, al, 0);
	sum = rf_csum_partial_be(b->dst_addr, al, sum);
	sum = rf_csum_partial_be(udp, 4, sum);
	o->udp_sum = rf_csum_fold16(sum);
	o->dscp = b->dscp;
}

void rf_relay_rewrite(const struct rf_relay_out *o, const struct rf_pkt_view *v, uint8_t *hdr)
{
	uint8_t *ip = hdr + ETH_HLEN, *udp;
	uint16_t ulen = (uint16_t)(v->payload_len + 8);
	uint8_t tos = (o->flags & RF_OUT_F_DSCP) ? (uint8_t)(o->dscp << 2 | (v->tos & 3)) : v->tos;
	uint32_t sum;
	uint16_t csum;

	memcpy(hdr, o->hdr, o->hdr_len);
	if (o->family == 4) {
		uint16_t tot = (uint16_t)(20 + ulen);
		uint16_t frag = v->df ? 0x4000 : 0;

		ip[1] = tos;
		rf_put16(ip + 2, tot);
		rf_put16(ip + 4, v->ip_id);
		rf_put16(ip + 6, frag);
		/* the template's sum had these words zero: add their new values */
		sum = (uint32_t)o->ip_sum + tos + tot + v->ip_id + frag;
		rf_put16(ip + 10, (uint16_t)~rf_csum_fold16(sum));
		udp = ip + 20;
	} else {
		ip[0] = (uint8_t)(0x60 | tos >> 4);
		ip[1] = (uint8_t)(tos << 4);
		rf_put16(ip + 4, ulen);
		udp = ip + 40;
	}
	rf_put16(udp + 4, ulen);
	if (rf_unlikely(v->csum_partial)) {
		/* pseudo-header (addresses, protocol, length) + UDP header (ports,
		 * length, checksum 0) + payload */
		sum = (uint32_t)o->udp_sum + 17u + ulen + ulen + v->payload_sum;
		csum = (uint16_t)~rf_csum_fold16(sum);
		rf_put16(udp + 6, csum ? csum : 0xffff);
		return;
	}
	if (v->family == 4 && v->udp_csum == 0) {
		/* sent without a checksum: relayed without one */
		rf_put16(udp + 6, 0);
		return;
	}
	/* the pseudo-header's length and protocol and the payload are unchanged:
	 * only the addresses and ports differ (their old sum: the parser's,
	 * once per datagram) */
	csum = rf_csum_update(v->udp_csum, v->addr_sum, o->udp_sum);
	/* a computed zero is sent as all-ones (RFC 768): zero means "none" */
	rf_put16(udp + 6, csum ? csum : 0xffff);
}

/* ---------------------------------------------------------- fast path -- */

/* A relay's rate-limit drop: its drops and its limited counter. */
static void count_limited(struct rf_relay *r, uint32_t id)
{
	if (!r->oc || id >= r->max_outputs)
		return;
	rf_counter_add(&r->oc[id].drops, 1);
	rf_counter_add(&r->oc[id].limited, 1);
}

static void count_out(struct rf_relay *r, uint32_t id, uint64_t packets, uint64_t bytes, uint64_t drops)
{
	struct rf_output_counters *oc;

	if (!r->oc || id >= r->max_outputs)
		return;
	oc = &r->oc[id];
	if (packets) {
		rf_counter_add(&oc->packets, packets);
		rf_counter_add(&oc->bytes, bytes);
	}
	if (drops)
		rf_counter_add(&oc->drops, drops);
}

/* Hand the batch to the port. A wide split (64 outputs x a 64-frame burst)
 * can be larger than the TX ring: when the ring is full, flush (the kernel
 * takes the queued frames) and go on with the rest, for as long as flushing
 * makes room. When it makes none, the device is refusing frames (AF_PACKET:
 * send() fails with ENOBUFS and keeps the frame requested, e.g. a veth
 * peer's backlog is full while its CPU is busy): retry for up to
 * RELAY_TX_WAIT_NS, every RELAY_TX_RETRY_NS, before dropping, so that a
 * moment's backpressure holds the RX ring (which buffers it, and drops at
 * the input if it lasts: RF_C_DROP_RX_RING) instead of discarding whole
 * batches already built. What still does not fit is dropped
 * (RF_C_DROP_TX_FULL + the output's drops). */
#define RELAY_TX_WAIT_NS  1000000ull
#define RELAY_TX_RETRY_NS 20000ull

static void send_batch(struct rf_relay *r, uint32_t n, const struct rf_port_ops *ops,
		       struct rf_port *port, uint64_t *c)
{
	uint32_t done, got, i, refused = 0;
	uint64_t until = 0;

	done = ops->tx_burst(port, r->tx, n);
	while (rf_unlikely(done < n)) {
		rf_counter_add(&c[RF_C_TX_RING_FULL], 1);
		ops->flush(port);
		got = ops->tx_burst(port, r->tx + done, n - done);
		if (got) {
			done += got;
			continue;
		}
		{
			uint64_t now = rf_now_ns(), next = now + RELAY_TX_RETRY_NS;

			if (!until)
				until = now + RELAY_TX_WAIT_NS;
			else if (now >= until)
				break;
			/* a short spin: the device's consumer runs on another CPU */
			while (rf_now_ns() < next)
				;
		}
	}
	/* each frame once: sent, refused by the port or left over */
	for (i = 0; i < n; i++) {
		uint32_t bytes = (uint32_t)r->tx[i].hdr_len + r->tx[i].payload_len;

		if (rf_likely(i < done && !r->tx[i].refused)) {
			count_out(r, r->tx_out[i], 1, bytes, 0);
		} else {
			/* counter: RF_C_DROP_TX_ERROR (refused) or RF_C_DROP_TX_FULL */
			refused += i < done;
			count_out(r, r->tx_out[i], 0, 0, 1);
		}
	}
	rf_counter_add(&c[RF_C_RELAY_OUT], done - refused);
	if (rf_unlikely(refused))
		rf_counter_add(&c[RF_C_DROP_TX_ERROR], refused);
	if (done < n)
		rf_counter_add(&c[RF_C_DROP_TX_FULL], n - done);
}

void rf_relay_burst(struct rf_relay *r, const struct rf_rx_pkt *pkts, uint32_t n,
		    const struct rf_port_ops *ops, struct rf_port *port, uint64_t *c)
{
	const struct rf_relay_table *t = rf_relay_read_begin(r);
	uint32_t ntx = 0, i, k;
	uint64_t unmatched = 0, in = 0, now = 0;

	for (i = 0; i < n; i++) {
		const struct rf_rx_pkt *p = &pkts[i];
		const struct rf_relay_ent *e;
		struct rf_pkt_view v;
		int cap;

		/* the next frame's headers while this one is rewritten and copied */
		if (i + 1 < n)
			__builtin_prefetch(pkts[i + 1].data + 14);
		switch (rf_relay_parse(p->data, p->len, p->wire_len, p->vlan_valid, &v)) {
		case RF_PARSE_UDP:
			break;
		case RF_PARSE_NOT_OURS:
			/* counter: RF_C_RX_UNMATCHED (the kernel gets it) */
			unmatched++;
			continue;
		case RF_PARSE_MALFORMED:
			/* counter: RF_C_DROP_MALFORMED */
			rf_counter_add(&c[RF_C_DROP_MALFORMED], 1);
			continue;
		case RF_PARSE_FRAGMENT:
			if (rf_relay_lookup_addr(t, &v)) {
				/* counter: RF_C_DROP_FRAGMENT */
				rf_counter_add(&c[RF_C_DROP_FRAGMENT], 1);
			} else {
				unmatched++;
			}
			continue;
		}
		e = rf_relay_lookup(t, &v);
		/* a kernel relay's frames are the tc program's (ktier.c) */
		if (!e || rf_unlikely(e->kernel)) {
			unmatched++;
			continue;
		}
		if (rf_unlikely(p->csum_partial)) {
			v.csum_partial = 1;
			v.payload_sum = rf_csum_partial_be(v.payload, v.payload_len, 0);
		}
		in++;
		if (rf_unlikely(!rf_relay_allowed(e, &v))) {
			/* counter: RF_C_DROP_NOT_ALLOWED + the relay's drops */
			rf_counter_add(&c[RF_C_DROP_NOT_ALLOWED], 1);
			count_out(r, e->counter, 0, 0, 1);
			continue;
		}
		if (rf_unlikely(e->lim.on)) {
			/* the clock once per burst, and only when a limit is set */
			if (!now)
				now = r->now_ns();
			/* the RX thread is the table's only reader (relay_table.c): the
			 * bucket is written in place, without a lock */
			if (!rf_relay_lim_take((struct rf_relay_lim *)&e->lim, now, p->len)) {
				/* counter: RF_C_DROP_RATE_LIMIT + the relay's drops and limited */
				rf_counter_add(&c[RF_C_DROP_RATE_LIMIT], 1);
				count_limited(r, e->counter);
				continue;
			}
		}
		count_out(r, e->counter, 1, p->len, 0);
		/* counter: the capture ring's captured / dropped (relay_capture.c) */
		cap = rf_unlikely(r->cap_relay == e->id);
		if (cap && r->cap_ingress)
			rf_relay_capture_put(r, RF_CAP_INGRESS, e->id, p->data, p->len, NULL, 0, p->wire_len);
		for (k = 0; k < e->out_count; k++) {
			const struct rf_relay_out *o = &t->outs[e->out_first + k];
			struct rf_tx_pkt *tx;

			if (rf_unlikely(!(o->flags & RF_OUT_F_MAC_VALID))) {
				/* counter: RF_C_DROP_NO_NEIGHBOUR + the output's drops */
				rf_counter_add(&c[RF_C_DROP_NO_NEIGHBOUR], 1);
				count_out(r, o->id, 0, 0, 1);
				continue;
			}
			if (rf_unlikely((uint32_t)o->hdr_len - ETH_HLEN + v.payload_len > r->mtu)) {
				/* counter: RF_C_DROP_BAD_LEN + the output's drops */
				rf_counter_add(&c[RF_C_DROP_BAD_LEN], 1);
				count_out(r, o->id, 0, 0, 1);
				continue;
			}
			rf_relay_rewrite(o, &v, r->hdrs[ntx]);
			if (cap && (r->cap_output == RF_RELAY_NONE || r->cap_output == o->id))
				rf_relay_capture_put(r, RF_CAP_OUTPUT, o->id, r->hdrs[ntx], o->hdr_len, v.payload,
						     v.payload_len, (uint32_t)o->hdr_len + v.payload_len);
			tx = &r->tx[ntx];
			tx->hdr = r->hdrs[ntx];
			tx->hdr_len = o->hdr_len;
			/* the arriving payload, shared by every output of this frame */
			tx->payload = v.payload;
			tx->payload_len = v.payload_len;
			/* rf_relay_rewrite() wrote the final checksum */
			tx->csum_off = 0;
			tx->refused = 0;
			r->tx_out[ntx] = o->id;
			if (++ntx == RF_RELAY_TX_BATCH) {
				send_batch(r, ntx, ops, port, c);
				ntx = 0;
			}
		}
	}
	if (ntx)
		send_batch(r, ntx, ops, port, c);
	if (unmatched)
		rf_counter_add(&c[RF_C_RX_UNMATCHED], unmatched);
	if (in)
		rf_counter_add(&c[RF_C_RELAY_IN], in);
	rf_relay_read_end(r);
}
