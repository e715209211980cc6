/* SPDX-License-Identifier: MIT */
/*
 * The relay's capture (issue #14): arming by policy message, and the
 * producer side of the RX thread's capture ring (region.h, rf_capture_ring).
 *
 * Cost: with no capture armed the fast path compares r->cap_relay with the
 * matched relay's id once per frame (one load from a line the burst already
 * reads) and does nothing else. Armed, each captured frame costs one
 * clock_gettime and one copy of at most RF_CAPTURE_SNAP bytes. The producer
 * never waits for TypeScript: a frame that does not fit is dropped and
 * counted in the ring's `dropped` (reflector_capture_dropped_total); the
 * relay's own packets are never held back by a capture.
 *
 * Trust: the ring lives in the region, where TypeScript may write anything.
 * The producer position is our own copy (cap_prod); the ring's constants are
 * ours (RF_CAPTURE_DATA, RF_CAPTURE_HDR), never read back; the consumer
 * position is read once per frame and only decides whether a frame fits: a
 * bogus one (more used than the ring holds) drops, it never moves a write
 * outside the data area.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "reflector/barrier.h"
#include "relay_int.h"

void rf_relay_set_capture(struct rf_relay *r, struct rf_capture_ring *ring)
{
	r->cap_ring = ring;
	r->cap_prod = 0;
}

int rf_relay_capture_apply(struct rf_relay *r, const struct rf_relay_table *cur,
			   const struct rf_policy_capture *b)
{
	uint32_t i, k;

	if (b->relay_id == RF_RELAY_NONE) {
		r->cap_relay = RF_RELAY_NONE;
		return 0;
	}
	if (!r->cap_ring)
		return -ENODEV;
	if (b->ingress > 1)
		return -EINVAL;
	for (i = 0; i < cur->n_relays; i++) {
		const struct rf_relay_ent *e = &cur->relays[i];

		if (e->id != b->relay_id)
			continue;
		if (b->output_id != RF_RELAY_NONE) {
			for (k = 0; k < e->out_count; k++)
				if (cur->outs[e->out_first + k].id == b->output_id)
					break;
			if (k == e->out_count)
				return -ENOENT;
		}
		r->cap_output = b->output_id;
		r->cap_ingress = b->ingress;
		/* last: the fast path tests this one; the RX thread applies the
		 * message between bursts, so no burst sees half of it */
		r->cap_relay = b->relay_id;
		return 0;
	}
	return -ENOENT;
}

void rf_relay_capture_put(struct rf_relay *r, uint16_t kind, uint32_t id, const uint8_t *a, uint32_t alen,
			  const uint8_t *b, uint32_t blen, uint32_t wire_len)
{
	struct rf_capture_ring *c = r->cap_ring;
	uint8_t *data = (uint8_t *)c + RF_CAPTURE_HDR;
	uint32_t caplen = alen + blen > RF_CAPTURE_SNAP ? RF_CAPTURE_SNAP : alen + blen;
	uint32_t need = (uint32_t)(sizeof(struct rf_capture_rec) + caplen + 7) & ~7u;
	uint32_t p = r->cap_prod, off, tail, skip, used;
	struct rf_capture_rec rec;
	struct timespec ts;

	/* the consumer's frees happen before we overwrite the space it freed:
	 * pairs with the release store of `consumer` in src/capture/ring.ts */
	used = p - rf_load_acquire(&c->consumer);
	off = p & (RF_CAPTURE_DATA - 1);
	tail = RF_CAPTURE_DATA - off;
	/* a record never wraps: the rest of the area is skipped (a PAD record
	 * when a header fits there, else the reader skips it by rule) */
	skip = tail < need ? tail : 0;
	if (rf_unlikely(used > RF_CAPTURE_DATA || RF_CAPTURE_DATA - used < skip + need)) {
		/* counter: rf_capture_ring.dropped (reflector_capture_dropped_total) */
		rf_counter_add(&c->dropped, 1);
		return;
	}
	if (skip) {
		if (skip >= sizeof(rec)) {
			memset(&rec, 0, sizeof(rec));
			rec.len = skip;
			rec.kind = RF_CAP_PAD;
			memcpy(data + off, &rec, sizeof(rec));
		}
		p += skip;
		off = 0;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	memset(&rec, 0, sizeof(rec));
	rec.len = need;
	rec.caplen = caplen;
	rec.wire_len = wire_len;
	rec.kind = kind;
	rec.id = id;
	rec.ts_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	memcpy(data + off, &rec, sizeof(rec));
	if (alen > caplen)
		alen = caplen;
	memcpy(data + off + sizeof(rec), a, alen);
	if (caplen > alen)
		memcpy(data + off + sizeof(rec) + alen, b, caplen - alen);
	p += need;
	r->cap_prod = p;
	rf_counter_add(&c->captured, 1);
	/* the record's bytes are visible before the position that publishes
	 * them: pairs with the Atomics.load of `producer` in src/capture/ring.ts */
	rf_store_release(&c->producer, p);
}
