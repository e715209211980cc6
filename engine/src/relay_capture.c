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
 * Trust: see capture.c.
 */
#include <errno.h>

#include "capture.h"
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
	rf_capture_write(r->cap_ring, &r->cap_prod, kind, id, a, alen, b, blen, wire_len, 0);
}
