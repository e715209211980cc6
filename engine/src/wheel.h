/* SPDX-License-Identifier: MIT */
/*
 * The TX thread's timing wheel: one wheel across all lanes, ns deadlines.
 *
 * Two levels of 1024 buckets: level 0 buckets are 16.384 us wide (a 16.7 ms
 * horizon), level 1 buckets are one level-0 turn wide (a 17.2 s horizon);
 * later deadlines wait on an overflow list. When the level-0 cursor enters a
 * new level-1 bucket, that bucket cascades into level 0. Entries live in one
 * array allocated at init and are linked by index: no malloc after init.
 *
 * Every insert is O(1) but for a walk within one level-0 bucket, whatever
 * order the deadlines come in (a worker's aggregate holds its sessions one
 * after the other, so its deadlines interleave; 1,000 sessions put ~3,000
 * entries in one level-1 bucket):
 * - a level-0 bucket's list is kept in deadline order, so packets leave in
 *   time order; insert appends at the tail when the deadline is not before
 *   the tail's (the usual case), prepends before the head, and walks the
 *   bucket (16 us of traffic: a few entries) otherwise;
 * - level-1 buckets and the overflow list are unsorted, appended to, with
 *   their earliest deadline kept beside them; they are sorted into level 0
 *   when they cascade;
 * - deadlines before the cursor's bucket are due: they go to the `due` FIFO,
 *   which pop_due empties first, in arrival order (all of them are late).
 */
#ifndef REFLECTOR_WHEEL_H
#define REFLECTOR_WHEEL_H

#include <stdint.h>

#include "reflector/region.h"

#define RF_WHEEL_BITS     10u
#define RF_WHEEL_SIZE     (1u << RF_WHEEL_BITS)
#define RF_WHEEL_MASK     (RF_WHEEL_SIZE - 1)
#define RF_WHEEL_TICK_SH  14u /* level-0 bucket = 2^14 ns = 16.384 us */
#define RF_WHEEL_NIL      UINT32_MAX

/* What the wheel carries: a validated descriptor and its lane. */
struct rf_wheel_item {
	uint64_t deadline;
	struct rf_desc desc;
	uint32_t lane;
};

struct rf_wheel_entry {
	struct rf_wheel_item item;
	uint32_t next;
};

struct rf_wheel_list {
	uint32_t head;
	uint32_t tail;
	uint64_t min; /* earliest deadline of an unsorted list (level 1, overflow, due) */
};

struct rf_wheel {
	struct rf_wheel_entry *e;
	uint32_t cap;
	uint32_t free_head;
	uint32_t count;        /* entries in the wheel, all levels */
	uint32_t l0_count;
	uint32_t l1_count;
	uint32_t ovf_count;
	uint32_t due_count;
	uint64_t cur;          /* level-0 tick of the cursor (deadline >> TICK_SH) */
	struct rf_wheel_list l0[RF_WHEEL_SIZE]; /* sorted */
	struct rf_wheel_list l1[RF_WHEEL_SIZE]; /* unsorted, with min */
	struct rf_wheel_list ovf;               /* unsorted, with min */
	struct rf_wheel_list due;               /* FIFO of late entries, with min */
	uint64_t l0_bits[RF_WHEEL_SIZE / 64]; /* non-empty level-0 buckets */
	uint64_t l1_bits[RF_WHEEL_SIZE / 64];
};

/* Allocate room for `cap` entries; the cursor starts at `now`. 0 or -ENOMEM. */
int rf_wheel_init(struct rf_wheel *w, uint32_t cap, uint64_t now);
void rf_wheel_free(struct rf_wheel *w);

static inline int rf_wheel_full(const struct rf_wheel *w) { return w->free_head == RF_WHEEL_NIL; }

/* O(1) but for the walk of one level-0 bucket (see above). Returns 0, or -1 when full. */
int rf_wheel_insert(struct rf_wheel *w, const struct rf_wheel_item *it);

/* Earliest deadline held, UINT64_MAX when empty. */
uint64_t rf_wheel_next(struct rf_wheel *w);

/* Move up to `max` entries due at `now` (deadline <= now) to out[], earliest
 * first (late entries, those before the cursor's bucket, first and in arrival
 * order). Returns how many. */
uint32_t rf_wheel_pop_due(struct rf_wheel *w, uint64_t now, struct rf_wheel_item *out,
			  uint32_t max);

#endif
