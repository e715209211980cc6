/* SPDX-License-Identifier: MIT */
/*
 * The sequence lock of a destination entry (region.h rf_dest.gen), the way
 * the Linux seqcount works: a writer makes `gen` odd, writes the other
 * fields, then makes it even again; a reader copies the entry and keeps the
 * copy only when `gen` was the same even number before and after. The
 * TypeScript writer is Lane.writeDest (src/region/lane.ts); this C writer is
 * for tests, tools and benches.
 */
#ifndef REFLECTOR_DEST_H
#define REFLECTOR_DEST_H

#include <stdint.h>
#include <string.h>

#include "barrier.h"
#include "region.h"

/* Write `v` (its gen is ignored) into the shared entry `d`. One writer per
 * entry: the lane that owns it. */
static inline void rf_dest_write(struct rf_dest *d, const struct rf_dest *v)
{
	uint32_t odd = rf_load_relaxed(&d->gen) | 1u;

	rf_store_relaxed(&d->gen, odd);
	/* ensure the odd gen is visible before any field changes: pairs with
	 * the reader's acquire fence before its second read of gen */
	rf_fence_release();
	memcpy(d, v, offsetof(struct rf_dest, gen));
	memcpy(&d->src_addr, &v->src_addr, sizeof(*d) - offsetof(struct rf_dest, src_addr));
	/* ensure the fields are visible before the even gen: pairs with the
	 * reader's acquire load of gen */
	rf_store_release(&d->gen, odd + 1);
}

/* The entry's gen now (odd: being written). */
static inline uint32_t rf_dest_gen(const struct rf_dest *d)
{
	/* pairs with rf_dest_write()'s release store of the even gen */
	return rf_load_acquire(&d->gen);
}

/*
 * Copy the shared entry `d` into `out` if no write was under way: returns 0
 * and out->gen = the (even) gen the copy belongs to, or -1 when a writer was
 * in the middle of it (try again, or use an older copy).
 */
static inline int rf_dest_read(const struct rf_dest *d, struct rf_dest *out)
{
	uint32_t g1 = rf_dest_gen(d), g2;

	if (g1 & 1u)
		return -1;
	memcpy(out, d, sizeof(*out));
	/* the copy's loads are done before gen is read again: pairs with the
	 * writer's release fence after it made gen odd */
	rf_fence_acquire();
	g2 = rf_load_relaxed(&d->gen);
	if (g1 != g2)
		return -1;
	out->gen = g1;
	return 0;
}

#endif
