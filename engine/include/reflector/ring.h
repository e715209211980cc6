/* SPDX-License-Identifier: MIT */
/*
 * Ring verbs on an rf_ring (region.h), named as in libxdp's xsk.h and in
 * src/region/ring.ts: the producer reserves entries, fills them and submits;
 * the consumer peeks, reads and releases. Each side keeps a private cursor
 * with a cached copy of the peer's index and re-reads the peer's index only
 * when the cache says full (producer) or empty (consumer).
 */
#ifndef REFLECTOR_RING_H
#define REFLECTOR_RING_H

#include <stdint.h>

#include "barrier.h"
#include "region.h"

struct rf_ring_cursor {
	struct rf_ring *ring;
	uint8_t *data;
	uint32_t mask;
	uint32_t entries;
	uint32_t entry_size;
	uint32_t local;        /* producer: next index to reserve; consumer: next to peek */
	uint32_t cached_peer;  /* producer: consumer index + entries; consumer: producer index */
};

static inline void rf_cursor_init_prod(struct rf_ring_cursor *c, struct rf_ring *r)
{
	c->ring = r;
	c->data = (uint8_t *)r + r->data_off;
	c->mask = r->mask;
	c->entries = r->entries;
	c->entry_size = r->entry_size;
	c->local = rf_load_relaxed(&r->producer);
	/* pairs with the consumer's release of `consumer` */
	c->cached_peer = rf_load_acquire(&r->consumer) + r->entries;
}

static inline void rf_cursor_init_cons(struct rf_ring_cursor *c, struct rf_ring *r)
{
	c->ring = r;
	c->data = (uint8_t *)r + r->data_off;
	c->mask = r->mask;
	c->entries = r->entries;
	c->entry_size = r->entry_size;
	c->local = rf_load_relaxed(&r->consumer);
	/* pairs with the producer's release of `producer` */
	c->cached_peer = rf_load_acquire(&r->producer);
}

static inline void *rf_ring_entry(const struct rf_ring_cursor *c, uint32_t idx)
{
	return c->data + (size_t)(idx & c->mask) * c->entry_size;
}

/* Producer: how many of `want` entries are free (at most want). */
static inline uint32_t rf_ring_prod_nb_free(struct rf_ring_cursor *c, uint32_t want)
{
	uint32_t free_entries = c->cached_peer - c->local;

	if (free_entries >= want)
		return free_entries;
	/* ensure the consumer is done reading entries before we overwrite them:
	 * pairs with rf_ring_release()'s release store */
	c->cached_peer = rf_load_acquire(&c->ring->consumer) + c->entries;
	return c->cached_peer - c->local;
}

/* Producer: reserve up to `want` entries; returns how many, *idx = first. */
static inline uint32_t rf_ring_reserve(struct rf_ring_cursor *c, uint32_t want, uint32_t *idx)
{
	uint32_t n = rf_ring_prod_nb_free(c, want);

	if (n > want)
		n = want;
	*idx = c->local;
	c->local += n;
	return n;
}

/* Producer: publish every reserved entry. */
static inline void rf_ring_submit(struct rf_ring_cursor *c)
{
	/* ensure the entries are visible before the index that covers them:
	 * pairs with the consumer's acquire load of `producer` */
	rf_store_release(&c->ring->producer, c->local);
}

/* Consumer: how many entries are ready, up to `want`; *idx = first. */
static inline uint32_t rf_ring_peek(struct rf_ring_cursor *c, uint32_t want, uint32_t *idx)
{
	uint32_t avail = c->cached_peer - c->local;

	/* re-read the producer when the cache has fewer than `want`, as
	 * rf_ring_prod_nb_free() does with the consumer: a cache re-read only
	 * once empty would under-report what is ready until the consumer has
	 * taken every entry it last saw */
	if (avail < want) {
		/* see the entries the producer wrote before publishing `producer`:
		 * pairs with rf_ring_submit()'s release store */
		c->cached_peer = rf_load_acquire(&c->ring->producer);
		avail = c->cached_peer - c->local;
	}
	if (avail > want)
		avail = want;
	*idx = c->local;
	return avail;
}

/* Consumer: give back `n` entries read since the last release. */
static inline void rf_ring_release(struct rf_ring_cursor *c, uint32_t n)
{
	c->local += n;
	/* ensure our reads of the entries finished before the producer may reuse
	 * them: pairs with the producer's acquire load of `consumer` */
	rf_store_release(&c->ring->consumer, c->local);
}

/* Entries published and not yet released, as the peer would see them. */
static inline uint32_t rf_ring_count(const struct rf_ring *r)
{
	return rf_load_acquire(&r->producer) - rf_load_acquire(&r->consumer);
}

#endif
