/* SPDX-License-Identifier: MIT */
/*
 * The producer side of a capture ring (capture.h). Trust: the ring lives in
 * the region, where TypeScript may write anything. The producer position is
 * the caller's own copy; the ring's constants are ours (RF_CAPTURE_DATA,
 * RF_CAPTURE_HDR), never read back; the consumer position is read once per
 * frame and only decides whether a frame fits: a bogus one (more used than
 * the ring holds) drops, it never moves a write outside the data area.
 */
#include <string.h>
#include <time.h>

#include "capture.h"
#include "netpkt.h"
#include "reflector/barrier.h"

void rf_capture_write(struct rf_capture_ring *c, uint32_t *prod, uint16_t kind, uint32_t id,
		      const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen,
		      uint32_t wire_len, uint16_t csum_off)
{
	uint8_t *data = (uint8_t *)c + RF_CAPTURE_HDR;
	uint32_t caplen = alen + blen > RF_CAPTURE_SNAP ? RF_CAPTURE_SNAP : alen + blen;
	uint32_t need = (uint32_t)(sizeof(struct rf_capture_rec) + caplen + 7) & ~7u;
	uint32_t p = *prod, off, tail, skip, used;
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
	/* a whole frame whose UDP checksum the port completes: complete it here too */
	if (csum_off && caplen == alen + blen && csum_off + 2u <= alen)
		rf_csum_complete(data + off + sizeof(rec) + csum_off, rf_csum_partial(data + off + sizeof(rec) + alen, blen, 0));
	p += need;
	*prod = p;
	rf_counter_add(&c->captured, 1);
	/* the record's bytes are visible before the position that publishes
	 * them: pairs with the Atomics.load of `producer` in src/capture/ring.ts */
	rf_store_release(&c->producer, p);
}
