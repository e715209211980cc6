/* SPDX-License-Identifier: MIT */
/*
 * Ring verbs on an rf_ring (region.h), named as in libxdp's xsk.h and in
 * src/region/ring.ts: the producer reserves entries, fills them and submits;
 * the consumer peeks, reads and releases. Each side keeps a private cursor
 * with a cached copy of the peer's index and re-reads the peer's index only
 * when the cache says full (producer) or empty (consumer).
 *
 * The peer is not trusted (the engine's peers are TypeScript threads): a
 * cursor takes its sizes from the caller's checked copy, never again from
 * the shared header, and every peer index it reads is checked against what
 * the ring can hold (the kernel clamps io_uring's SQ tail the same way).
 * An index out of range is not followed: the cursor keeps its last good
 * view and counts the fault in `bad_peer` for its owner to report.
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
	uint32_t bad_peer;     /* peer indexes read out of range (not followed) */
};

/*
 * Attach to ring `r` with `entries` (a power of two) entries of `entry_size`
 * bytes right after its header: sizes the caller checked, not re-read from
 * the ring. Our own index is taken from the ring once, here; a peer index
 * already out of range is counted and replaced by an empty (consumer) or
 * full (producer) view.
 */
static inline void rf_cursor_attach_prod(struct rf_ring_cursor *c, struct rf_ring *r,
					 uint32_t entries, uint32_t entry_size)
{
	uint32_t cons;

	c->ring = r;
	c->data = (uint8_t *)r + sizeof(*r);
	c->mask = entries - 1;
	c->entries = entries;
	c->entry_size = entry_size;
	c->bad_peer = 0;
	c->local = rf_load_relaxed(&r->producer);
	/* pairs with the consumer's release of `consumer` */
	cons = rf_load_acquire(&r->consumer);
	if (rf_unlikely(c->local - cons > entries)) {
		c->bad_peer++;
		cons = c->local - entries;
	}
	c->cached_peer = cons + entries;
}

static inline void rf_cursor_attach_cons(struct rf_ring_cursor *c, struct rf_ring *r,
					 uint32_t entries, uint32_t entry_size)
{
	uint32_t prod;

	c->ring = r;
	c->data = (uint8_t *)r + sizeof(*r);
	c->mask = entries - 1;
	c->entries = entries;
	c->entry_size = entry_size;
	c->bad_peer = 0;
	c->local = rf_load_relaxed(&r->consumer);
	/* pairs with the producer's release of `producer` */
	prod = rf_load_acquire(&r->producer);
	if (rf_unlikely(prod - c->local > entries)) {
		c->bad_peer++;
		prod = c->local;
	}
	c->cached_peer = prod;
}

/* For a side that trusts the ring's header (tests, tools, TypeScript's
 * mirror): the sizes come from the ring itself. */
static inline void rf_cursor_init_prod(struct rf_ring_cursor *c, struct rf_ring *r)
{
	rf_cursor_attach_prod(c, r, r->entries, r->entry_size);
	c->data = (uint8_t *)r + r->data_off;
}

static inline void rf_cursor_init_cons(struct rf_ring_cursor *c, struct rf_ring *r)
{
	rf_cursor_attach_cons(c, r, r->entries, r->entry_size);
	c->data = (uint8_t *)r + r->data_off;
}

static inline void *rf_ring_entry(const struct rf_ring_cursor *c, uint32_t idx)
{
	return c->data + (size_t)(idx & c->mask) * c->entry_size;
}

/* Producer: how many entries are free (re-reading the consumer only when
 * the cache has fewer than `want`). */
static inline uint32_t rf_ring_prod_nb_free(struct rf_ring_cursor *c, uint32_t want)
{
	uint32_t free_entries = c->cached_peer - c->local, seen, cons;

	if (free_entries >= want)
		return free_entries;
	/* ensure the consumer is done reading entries before we overwrite them:
	 * pairs with rf_ring_release()'s release store */
	cons = rf_load_acquire(&c->ring->consumer);
	seen = c->cached_peer - c->entries;
	/* it can only release what we published, and never un-release: any
	 * other value would let us overwrite entries it has not read; keep the
	 * last good view */
	if (rf_unlikely(cons - seen > c->local - seen)) {
		c->bad_peer++;
		return free_entries;
	}
	c->cached_peer = cons + c->entries;
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

/*
 * Consumer: how many entries are ready, up to `want`; *idx = first. The
 * producer's index is re-read only once the cached view is empty (libxdp's
 * xsk_cons_nb_avail): while it still holds entries the producer's cache line
 * stays where the producer writes it. A caller that needs the exact count
 * (TypeScript's Lane.freeSlots) re-reads on its side (ring.ts).
 */
static inline uint32_t rf_ring_peek(struct rf_ring_cursor *c, uint32_t want, uint32_t *idx)
{
	uint32_t avail = c->cached_peer - c->local;

	if (avail == 0) {
		/* see the entries the producer wrote before publishing `producer`:
		 * pairs with rf_ring_submit()'s release store */
		uint32_t prod = rf_load_acquire(&c->ring->producer);

		avail = prod - c->local;
		/* behind us (it moved backwards) or more than a ring ahead: not an
		 * index this ring can have; take nothing and count it */
		if (rf_unlikely(avail > c->entries)) {
			c->bad_peer++;
			avail = 0;
		} else {
			c->cached_peer = prod;
		}
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
