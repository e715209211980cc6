/* SPDX-License-Identifier: MIT */
/*
 * The relay policy table: applying policy messages by copy-on-write, and
 * the epoch that says when an old copy may be reused.
 *
 * Update protocol (lock-free for the reader, no packet of an unchanged
 * output lost or duplicated):
 *   1. take a free preallocated copy (RF_RELAY_TABLES of them, no malloc);
 *   2. build the new table in it from the current one plus the change;
 *   3. publish it with one release store of `cur`;
 *   4. retire the old copy: it may be reused once no reader can still hold
 *      it. A reader makes its epoch odd when it enters a burst (before it
 *      loads `cur`) and even when it leaves. A copy retired while the epoch
 *      was even is free at once (the reader's next load sees the new
 *      pointer); one retired while it was odd e is free once the epoch is
 *      no longer e.
 * Today the RX thread is the only reader and applies updates itself between
 * bursts, so step 4 always frees at once; the epoch makes the rule explicit
 * and keeps it correct if another engine thread ever reads the table.
 * A burst reads one table from start to end, so each frame goes to exactly
 * the outputs of one version: an output present in both sees every frame.
 */
#include <errno.h>
#include <string.h>

#include "reflector/barrier.h"
#include "ktier.h"
#include "relay_int.h"

/* ---------------------------------------------------------- epochs -- */

const struct rf_relay_table *rf_relay_read_begin(struct rf_relay *r)
{
	uint64_t e = atomic_load_explicit(&r->reader_epoch, memory_order_relaxed);

	/* seq_cst store then load: the writer that reads our epoch after
	 * swapping `cur` either sees us inside (odd) or we see its new table.
	 * Pairs with the seq_cst exchange/load in retire(). */
	atomic_store_explicit(&r->reader_epoch, e + 1, memory_order_seq_cst);
	return atomic_load_explicit(&r->cur, memory_order_seq_cst);
}

void rf_relay_read_end(struct rf_relay *r)
{
	uint64_t e = atomic_load_explicit(&r->reader_epoch, memory_order_relaxed);

	/* our reads of the table happen before the writer may reuse it:
	 * pairs with the acquire load in reclaim() */
	atomic_store_explicit(&r->reader_epoch, e + 1, memory_order_release);
}

static void reclaim(struct rf_relay *r)
{
	uint64_t e = atomic_load_explicit(&r->reader_epoch, memory_order_acquire);
	uint32_t i;

	for (i = 0; i < RF_RELAY_TABLES; i++)
		if (r->in_use[i] && r->retired_at[i] && r->retired_at[i] != e)
			r->in_use[i] = 0, r->retired_at[i] = 0;
}

static int table_index(const struct rf_relay *r, const struct rf_relay_table *t)
{
	uint32_t i;

	for (i = 0; i < RF_RELAY_TABLES; i++)
		if (r->tables[i] == t)
			return (int)i;
	return -1;
}

static struct rf_relay_table *take_free(struct rf_relay *r)
{
	uint32_t i;

	reclaim(r);
	for (i = 0; i < RF_RELAY_TABLES; i++) {
		if (!r->in_use[i]) {
			r->in_use[i] = 1;
			r->retired_at[i] = 0;
			return r->tables[i];
		}
	}
	return NULL;
}

/* Publish `t` and retire the previous table. */
static void publish(struct rf_relay *r, struct rf_relay_table *t)
{
	struct rf_relay_table *old;
	uint64_t e;
	int i;

	/* the whole new table is written before a reader can load the pointer:
	 * pairs with the seq_cst load in rf_relay_read_begin() */
	old = atomic_exchange_explicit(&r->cur, t, memory_order_seq_cst);
	e = atomic_load_explicit(&r->reader_epoch, memory_order_seq_cst);
	i = table_index(r, old);
	if (i < 0)
		return;
	if (e & 1)
		r->retired_at[i] = e; /* a reader may hold it: wait for its epoch to move */
	else
		r->in_use[i] = 0;     /* no reader inside: free now */
}

/* ------------------------------------------------------------ lookup -- */

static size_t alen(uint8_t family) { return family == 4 ? 4 : 16; }

const struct rf_relay_ent *rf_relay_lookup(const struct rf_relay_table *t,
					   const struct rf_pkt_view *v)
{
	uint16_t dport;
	uint32_t i;

	memcpy(&dport, v->udp + 2, 2);
	/* linear: at most RF_RELAY_MAX_RELAYS, port compared first */
	for (i = 0; i < t->n_relays; i++) {
		const struct rf_relay_ent *e = &t->relays[i];

		if (e->port == dport && e->family == v->family &&
		    !memcmp(e->addr, v->dst, alen(e->family)))
			return e;
	}
	return NULL;
}

int rf_relay_lookup_addr(const struct rf_relay_table *t, const struct rf_pkt_view *v)
{
	uint32_t i;

	for (i = 0; i < t->n_relays; i++) {
		const struct rf_relay_ent *e = &t->relays[i];

		if (e->family == v->family && !memcmp(e->addr, v->dst, alen(e->family)))
			return 1;
	}
	return 0;
}

static int prefix_match(const uint8_t *a, const uint8_t *p, uint8_t length)
{
	uint32_t full = length / 8u, rest = length % 8u;

	if (memcmp(a, p, full))
		return 0;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));

		return (a[full] & mask) == (p[full] & mask);
	}
	return 1;
}

int rf_relay_allowed(const struct rf_relay_ent *e, const struct rf_pkt_view *v)
{
	uint32_t i;

	for (i = 0; i < e->n_prefix; i++)
		if (e->prefix[i].family == v->family && prefix_match(v->src, e->prefix[i].addr, e->prefix[i].length))
			return 1;
	return 0;
}

/* ------------------------------------------------------------ checks -- */

static int find_relay(const struct rf_relay_table *t, uint32_t id)
{
	uint32_t i;

	for (i = 0; i < t->n_relays; i++)
		if (t->relays[i].id == id)
			return (int)i;
	return -1;
}

static int find_output(const struct rf_relay_table *t, const struct rf_relay_ent *e, uint32_t id)
{
	uint32_t i;

	for (i = 0; i < e->out_count; i++)
		if (t->outs[e->out_first + i].id == id)
			return (int)(e->out_first + i);
	return -1;
}

/* Is counter slot `id` taken by an output or a relay of `t`? */
static int counter_used(const struct rf_relay_table *t, uint32_t id)
{
	uint32_t i;

	for (i = 0; i < t->n_relays; i++)
		if (t->relays[i].counter == id)
			return 1;
	for (i = 0; i < t->n_outputs; i++)
		if (t->outs[i].id == id)
			return 1;
	return 0;
}

static int family_ok(uint8_t f) { return f == 4 || f == 6; }

/* Output destination <addr, port> of output `o` (from its template). */
static int out_is_key(const struct rf_relay_out *o, uint8_t family, const uint8_t *addr, uint16_t port)
{
	const uint8_t *ip = o->hdr + 14;
	const uint8_t *dst = o->family == 4 ? ip + 16 : ip + 24;
	const uint8_t *udp = ip + (o->family == 4 ? 20 : 40);
	uint16_t dport;

	memcpy(&dport, udp + 2, 2);
	return o->family == family && dport == port && !memcmp(dst, addr, alen(family));
}

static void zero_counter(struct rf_relay *r, uint32_t id)
{
	struct rf_output_counters *oc;

	if (id == RF_RELAY_NONE || !r->oc)
		return;
	oc = &r->oc[id];
	/* the RX thread is the counters' only writer; TypeScript reads them */
	atomic_store_explicit((_Atomic uint64_t *)&oc->packets, 0, memory_order_relaxed);
	atomic_store_explicit((_Atomic uint64_t *)&oc->bytes, 0, memory_order_relaxed);
	atomic_store_explicit((_Atomic uint64_t *)&oc->drops, 0, memory_order_relaxed);
	atomic_store_explicit((_Atomic uint64_t *)&oc->limited, 0, memory_order_relaxed);
}

/* ------------------------------------------------------- rate limits -- */

void rf_relay_lim_set(struct rf_relay_lim *l, uint32_t pps, uint64_t bytes_per_s, uint64_t now)
{
	/* one second of line time in q16 ns: costs are divided out here, once */
	const uint64_t second = 1000000000ull << 16, burst = RF_RELAY_LIMIT_BURST_NS << 16;
	uint64_t gap;

	memset(l, 0, sizeof(*l));
	l->pps = pps;
	l->bytes_per_s = bytes_per_s;
	if (pps) {
		l->cost_pkt = second / pps;
		/* at least one packet fits, however low the rate */
		l->cap_pkt = l->cost_pkt > burst ? l->cost_pkt : burst;
	}
	if (bytes_per_s) {
		/* above 2^16 GB/s a byte costs nothing: no limit in practice */
		l->cost_byte = bytes_per_s < second ? second / bytes_per_s : 0;
		l->cap_byte = (uint64_t)RF_RELAY_LIM_FRAME_MAX * l->cost_byte > burst
				      ? (uint64_t)RF_RELAY_LIM_FRAME_MAX * l->cost_byte
				      : burst;
	}
	l->on = l->cost_pkt || l->cost_byte;
	l->credit_pkt = l->cap_pkt;
	l->credit_byte = l->cap_byte;
	gap = (l->cap_pkt > l->cap_byte ? l->cap_pkt : l->cap_byte) >> 16;
	l->max_gap_ns = gap + 1;
	l->last_ns = now;
}

/* ----------------------------------------------------------- building -- */

/*
 * Copy `src` into `dst` relay by relay, keeping each relay's outputs
 * contiguous, with one edit applied on the way: skip relay `skip_relay`,
 * skip output `skip_out` (index in src), or append `add` to relay
 * `add_to`. Sizes were checked by the caller.
 */
static void copy_table(struct rf_relay_table *dst, const struct rf_relay_table *src,
		       int skip_relay, int skip_out, int add_to, const struct rf_relay_out *add)
{
	uint32_t i, k;

	dst->n_relays = 0;
	dst->n_outputs = 0;
	dst->keys_gen = src->keys_gen;
	for (i = 0; i < src->n_relays; i++) {
		const struct rf_relay_ent *se = &src->relays[i];
		struct rf_relay_ent *de;

		if ((int)i == skip_relay)
			continue;
		de = &dst->relays[dst->n_relays++];
		*de = *se;
		de->out_first = dst->n_outputs;
		de->out_count = 0;
		for (k = 0; k < se->out_count; k++) {
			if ((int)(se->out_first + k) == skip_out)
				continue;
			dst->outs[dst->n_outputs++] = src->outs[se->out_first + k];
			de->out_count++;
		}
		if ((int)i == add_to) {
			dst->outs[dst->n_outputs++] = *add;
			de->out_count++;
		}
	}
}

static int op_relay_add(struct rf_relay *r, const struct rf_relay_table *cur,
			const struct rf_policy_relay_add *b)
{
	struct rf_relay_table *t;
	struct rf_relay_ent *e;
	uint32_t i;

	if (!family_ok(b->family) || b->port == 0 || b->relay_id == RF_RELAY_NONE)
		return -EINVAL;
	if (b->counter != RF_RELAY_NONE && b->counter >= r->max_outputs)
		return -ERANGE;
	if (find_relay(cur, b->relay_id) >= 0)
		return -EEXIST;
	for (i = 0; i < cur->n_relays; i++)
		if (cur->relays[i].family == b->family && cur->relays[i].port == b->port &&
		    !memcmp(cur->relays[i].addr, b->addr, alen(b->family)))
			return -EEXIST;
	if (b->counter != RF_RELAY_NONE && counter_used(cur, b->counter))
		return -EEXIST;
	for (i = 0; i < cur->n_outputs; i++)
		if (out_is_key(&cur->outs[i], b->family, b->addr, b->port))
			return -ELOOP;
	if (cur->n_relays >= RF_RELAY_MAX_RELAYS)
		return -ENOSPC;
	t = take_free(r);
	if (!t)
		return -EBUSY;
	copy_table(t, cur, -1, -1, -1, NULL);
	e = &t->relays[t->n_relays++];
	memset(e, 0, sizeof(*e));
	e->id = b->relay_id;
	e->counter = b->counter;
	e->family = b->family;
	e->port = b->port;
	memcpy(e->addr, b->addr, alen(b->family));
	memcpy(e->name, b->name, RF_RELAY_NAME_LEN);
	e->out_first = t->n_outputs;
	t->keys_gen++;
	zero_counter(r, b->counter);
	publish(r, t);
	return 0;
}

static int op_relay_remove(struct rf_relay *r, const struct rf_relay_table *cur,
			   const struct rf_policy_relay_ref *b)
{
	struct rf_relay_table *t;
	int ri = find_relay(cur, b->relay_id);

	if (ri < 0)
		return -ENOENT;
	t = take_free(r);
	if (!t)
		return -EBUSY;
	copy_table(t, cur, ri, -1, -1, NULL);
	t->keys_gen++;
	publish(r, t);
	/* capture (#14): a removed relay is no longer captured */
	if (r->cap_relay == b->relay_id)
		r->cap_relay = RF_RELAY_NONE;
	return 0;
}

static int op_relay_allow(struct rf_relay *r, const struct rf_relay_table *cur,
			  const struct rf_policy_relay_allow *b)
{
	struct rf_relay_table *t;
	struct rf_relay_ent *e;
	struct rf_relay_prefix *p;
	int ri = find_relay(cur, b->relay_id);
	uint32_t i;

	if (ri < 0)
		return -ENOENT;
	if (!family_ok(b->family) || b->length > (b->family == 4 ? 32 : 128))
		return -EINVAL;
	if (b->family != cur->relays[ri].family)
		return -EAFNOSUPPORT;
	if (cur->relays[ri].n_prefix >= RF_RELAY_MAX_PREFIXES)
		return -ENOSPC;
	t = take_free(r);
	if (!t)
		return -EBUSY;
	copy_table(t, cur, -1, -1, -1, NULL);
	e = &t->relays[ri];
	p = &e->prefix[e->n_prefix++];
	memset(p, 0, sizeof(*p));
	p->family = b->family;
	p->length = b->length;
	memcpy(p->addr, b->addr, alen(b->family));
	/* bits past the prefix length are ignored by prefix_match; clear them
	 * anyway so two equal prefixes compare equal */
	for (i = (b->length + 7u) / 8u; i < 16; i++)
		p->addr[i] = 0;
	if (b->length % 8)
		p->addr[b->length / 8] &= (uint8_t)(0xff << (8 - b->length % 8));
	publish(r, t);
	return 0;
}

static int op_output_add(struct rf_relay *r, const struct rf_relay_table *cur,
			 const struct rf_policy_output_add *b)
{
	struct rf_relay_table *t;
	struct rf_relay_out o;
	int ri = find_relay(cur, b->relay_id);
	uint32_t i;

	if (ri < 0)
		return -ENOENT;
	if (!family_ok(b->family) || b->dst_port == 0 || b->src_port == 0 ||
	    (b->flags & ~(RF_OUT_F_MAC_VALID | RF_OUT_F_DSCP | RF_OUT_F_TTL)) ||
	    ((b->flags & RF_OUT_F_TTL) && b->ttl == 0) ||
	    ((b->flags & RF_OUT_F_DSCP) && b->dscp > 63))
		return -EINVAL;
	if (b->family != cur->relays[ri].family)
		return -EAFNOSUPPORT;
	if (b->output_id >= r->max_outputs)
		return -ERANGE;
	if (counter_used(cur, b->output_id))
		return -EEXIST;
	for (i = 0; i < cur->n_relays; i++) {
		const struct rf_relay_ent *e = &cur->relays[i];

		if (e->family == b->family && e->port == b->dst_port &&
		    !memcmp(e->addr, b->dst_addr, alen(e->family)))
			return -ELOOP;
	}
	if (cur->n_outputs >= RF_RELAY_MAX_OUTPUTS)
		return -ENOSPC;
	t = take_free(r);
	if (!t)
		return -EBUSY;
	rf_relay_out_build(&o, b, r->mac);
	copy_table(t, cur, -1, -1, ri, &o);
	zero_counter(r, b->output_id);
	publish(r, t);
	return 0;
}

static int op_output_remove(struct rf_relay *r, const struct rf_relay_table *cur,
			    const struct rf_policy_output_ref *b)
{
	struct rf_relay_table *t;
	int ri = find_relay(cur, b->relay_id), oi;

	if (ri < 0)
		return -ENOENT;
	oi = find_output(cur, &cur->relays[ri], b->output_id);
	if (oi < 0)
		return -ENOENT;
	t = take_free(r);
	if (!t)
		return -EBUSY;
	copy_table(t, cur, -1, oi, -1, NULL);
	publish(r, t);
	return 0;
}

static int op_relay_limit(struct rf_relay *r, const struct rf_relay_table *cur,
			  const struct rf_policy_relay_limit *b)
{
	struct rf_relay_table *t;
	int ri = find_relay(cur, b->relay_id);

	if (ri < 0)
		return -ENOENT;
	t = take_free(r);
	if (!t)
		return -EBUSY;
	copy_table(t, cur, -1, -1, -1, NULL);
	rf_relay_lim_set(&t->relays[ri].lim, b->pps, b->bytes_per_s, r->now_ns());
	publish(r, t);
	return 0;
}

static int op_output_mac(struct rf_relay *r, const struct rf_relay_table *cur,
			 const struct rf_policy_output_mac *b)
{
	struct rf_relay_table *t;
	struct rf_relay_out *o;
	int ri = find_relay(cur, b->relay_id), oi;

	if (ri < 0)
		return -ENOENT;
	oi = find_output(cur, &cur->relays[ri], b->output_id);
	if (oi < 0)
		return -ENOENT;
	if (b->valid > 1)
		return -EINVAL;
	t = take_free(r);
	if (!t)
		return -EBUSY;
	copy_table(t, cur, -1, -1, -1, NULL);
	o = &t->outs[oi];
	memcpy(o->hdr, b->dst_mac, 6);
	if (b->valid)
		o->flags |= RF_OUT_F_MAC_VALID;
	else
		o->flags &= (uint8_t)~RF_OUT_F_MAC_VALID;
	publish(r, t);
	return 0;
}

static int apply(struct rf_relay *r, const struct rf_policy_msg *msg)
{
	const struct rf_relay_table *cur = atomic_load_explicit(&r->cur, memory_order_relaxed);
	union {
		struct rf_policy_relay_add ra;
		struct rf_policy_relay_ref rr;
		struct rf_policy_relay_allow al;
		struct rf_policy_output_add oa;
		struct rf_policy_output_ref orf;
		struct rf_policy_output_mac om;
		struct rf_policy_relay_limit rl;
		struct rf_policy_capture cap; /* capture (#14): relay_capture.c */
	} b;

	/* copy out of the shared ring entry: TypeScript could (wrongly) still
	 * write it, and we must check and use the same bytes */
	memcpy(&b, msg->body, sizeof(b));
	switch (msg->op) {
	case RF_POLICY_OP_KERNEL_COMMIT:
		if (r->kt)
			rf_ktier_commit(r->kt, atomic_load_explicit(&r->cur, memory_order_relaxed));
		return 0;
	case RF_POLICY_OP_RELAY_ADD:
		return op_relay_add(r, cur, &b.ra);
	case RF_POLICY_OP_RELAY_REMOVE:
		return op_relay_remove(r, cur, &b.rr);
	case RF_POLICY_OP_RELAY_ALLOW:
		return op_relay_allow(r, cur, &b.al);
	case RF_POLICY_OP_OUTPUT_ADD:
		return op_output_add(r, cur, &b.oa);
	case RF_POLICY_OP_OUTPUT_REMOVE:
		return op_output_remove(r, cur, &b.orf);
	case RF_POLICY_OP_OUTPUT_SET_MAC:
		return op_output_mac(r, cur, &b.om);
	case RF_POLICY_OP_RELAY_LIMIT:
		return op_relay_limit(r, cur, &b.rl);
	case RF_POLICY_OP_CAPTURE:
		return rf_relay_capture_apply(r, cur, &b.cap);
	default:
		return -EOPNOTSUPP;
	}
}

int rf_relay_apply(struct rf_relay *r, const struct rf_policy_msg *msg)
{
	int rc = apply(r, msg);

	/* the same table, mirrored into the tc program's maps (ktier.c) */
	if (!rc && r->kt && msg->op != RF_POLICY_OP_KERNEL_COMMIT)
		rf_ktier_sync(r->kt, atomic_load_explicit(&r->cur, memory_order_relaxed), msg);
	return rc;
}

void rf_relay_set_ktier(struct rf_relay *r, struct rf_ktier *kt)
{
	r->kt = kt;
}
