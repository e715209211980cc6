/* SPDX-License-Identifier: MIT */
/* Two-level timing wheel for the TX thread (wheel.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reflector/barrier.h"
#include "wheel.h"

static inline uint64_t tick_of(uint64_t deadline) { return deadline >> RF_WHEEL_TICK_SH; }

static inline void bit_set(uint64_t *bits, uint32_t b) { bits[b >> 6] |= 1ull << (b & 63); }
static inline void bit_clear(uint64_t *bits, uint32_t b) { bits[b >> 6] &= ~(1ull << (b & 63)); }

/* First set bit at or after `from`, circularly; returns the distance from
 * `from` (0..SIZE-1) or SIZE when no bit is set. */
static uint32_t bit_scan(const uint64_t *bits, uint32_t from)
{
	uint32_t words = RF_WHEEL_SIZE / 64, i;

	for (i = 0; i <= words; i++) {
		uint32_t wi = ((from >> 6) + i) % words;
		uint64_t v = bits[wi];

		if (i == 0)
			v &= ~0ull << (from & 63);
		else if (i == words)
			v &= (from & 63) ? ~(~0ull << (from & 63)) : 0;
		if (v) {
			uint32_t b = wi * 64 + (uint32_t)__builtin_ctzll(v);

			return (b - from) & RF_WHEEL_MASK;
		}
	}
	return RF_WHEEL_SIZE;
}

int rf_wheel_init(struct rf_wheel *w, uint32_t cap, uint64_t now)
{
	uint32_t i;

	memset(w, 0, sizeof(*w));
	w->e = calloc(cap ? cap : 1, sizeof(*w->e));
	if (!w->e)
		return -ENOMEM;
	w->cap = cap;
	for (i = 0; i < cap; i++)
		w->e[i].next = i + 1 < cap ? i + 1 : RF_WHEEL_NIL;
	w->free_head = cap ? 0 : RF_WHEEL_NIL;
	for (i = 0; i < RF_WHEEL_SIZE; i++) {
		w->l0[i].head = w->l0[i].tail = RF_WHEEL_NIL;
		w->l1[i].head = w->l1[i].tail = RF_WHEEL_NIL;
	}
	w->ovf.head = w->ovf.tail = RF_WHEEL_NIL;
	w->ovf_min = UINT64_MAX;
	w->cur = tick_of(now);
	return 0;
}

void rf_wheel_free(struct rf_wheel *w)
{
	free(w->e);
	w->e = NULL;
}

/* Link entry i into list l in deadline order (see wheel.h). */
static void list_insert(struct rf_wheel *w, struct rf_wheel_list *l, uint32_t i)
{
	uint64_t d = w->e[i].item.deadline;
	uint32_t p, q;

	if (l->head == RF_WHEEL_NIL) {
		w->e[i].next = RF_WHEEL_NIL;
		l->head = l->tail = i;
		return;
	}
	if (rf_likely(d >= w->e[l->tail].item.deadline)) {
		w->e[i].next = RF_WHEEL_NIL;
		w->e[l->tail].next = i;
		l->tail = i;
		return;
	}
	if (d < w->e[l->head].item.deadline) {
		w->e[i].next = l->head;
		l->head = i;
		return;
	}
	/* head <= d < tail: after the last entry not later than d */
	p = l->head;
	for (q = w->e[p].next; w->e[q].item.deadline <= d; q = w->e[q].next)
		p = q;
	w->e[i].next = q;
	w->e[p].next = i;
}

/* Place entry i at the level its deadline calls for. */
static void place(struct rf_wheel *w, uint32_t i)
{
	uint64_t t = tick_of(w->e[i].item.deadline);
	uint64_t c1 = w->cur >> RF_WHEEL_BITS, t1 = t >> RF_WHEEL_BITS;

	if (t < w->cur)
		t = w->cur; /* late: due now, in the cursor's bucket */
	if (t - w->cur < RF_WHEEL_SIZE) {
		uint32_t b = (uint32_t)(t & RF_WHEEL_MASK);

		list_insert(w, &w->l0[b], i);
		bit_set(w->l0_bits, b);
		w->l0_count++;
	} else if (t1 - c1 < RF_WHEEL_SIZE) {
		uint32_t b = (uint32_t)(t1 & RF_WHEEL_MASK);

		list_insert(w, &w->l1[b], i);
		bit_set(w->l1_bits, b);
		w->l1_count++;
	} else {
		list_insert(w, &w->ovf, i);
		if (w->e[i].item.deadline < w->ovf_min)
			w->ovf_min = w->e[i].item.deadline;
		w->ovf_count++;
	}
}

int rf_wheel_insert(struct rf_wheel *w, const struct rf_wheel_item *it)
{
	uint32_t i = w->free_head;

	if (rf_unlikely(i == RF_WHEEL_NIL))
		return -1;
	w->free_head = w->e[i].next;
	w->e[i].item = *it;
	w->count++;
	place(w, i);
	return 0;
}

/* The cursor entered a new level-1 bucket: move its entries to level 0, and
 * the overflow entries that now fit the level-1 horizon to where they go. */
static void cascade(struct rf_wheel *w)
{
	uint32_t b = (uint32_t)((w->cur >> RF_WHEEL_BITS) & RF_WHEEL_MASK);
	struct rf_wheel_list *l = &w->l1[b];
	uint32_t i, next;

	for (i = l->head; i != RF_WHEEL_NIL; i = next) {
		next = w->e[i].next;
		w->l1_count--;
		place(w, i);
	}
	l->head = l->tail = RF_WHEEL_NIL;
	bit_clear(w->l1_bits, b);

	if (w->ovf_count && tick_of(w->ovf_min) >> RF_WHEEL_BITS <
				    (w->cur >> RF_WHEEL_BITS) + RF_WHEEL_SIZE) {
		uint32_t keep = RF_WHEEL_NIL, keep_tail = RF_WHEEL_NIL;

		/* the overflow list is in deadline order: the head part fits */
		w->ovf_min = UINT64_MAX;
		for (i = w->ovf.head; i != RF_WHEEL_NIL; i = next) {
			uint64_t t1 = tick_of(w->e[i].item.deadline) >> RF_WHEEL_BITS;

			next = w->e[i].next;
			/* late entries (t1 below the cursor) fit too */
			if (t1 < (w->cur >> RF_WHEEL_BITS) + RF_WHEEL_SIZE) {
				w->ovf_count--;
				place(w, i);
			} else {
				keep = i;
				keep_tail = w->ovf.tail;
				w->ovf_min = w->e[i].item.deadline;
				break;
			}
		}
		w->ovf.head = keep;
		w->ovf.tail = keep_tail;
	}
}

uint64_t rf_wheel_next(struct rf_wheel *w)
{
	uint64_t best = UINT64_MAX;
	uint32_t d;

	/* level 0 holds the cursor's level-1 period and part of the next one,
	 * level 1 may hold earlier entries of that next period (inserted before
	 * the cursor moved): look at both. Overflow entries are always later
	 * than level 1's (migrated at every level-1 boundary). */
	if (w->l0_count) {
		d = bit_scan(w->l0_bits, (uint32_t)(w->cur & RF_WHEEL_MASK));
		best = w->e[w->l0[(w->cur + d) & RF_WHEEL_MASK].head].item.deadline;
	}
	if (w->l1_count) {
		uint64_t c1 = w->cur >> RF_WHEEL_BITS, h;

		d = bit_scan(w->l1_bits, (uint32_t)(c1 & RF_WHEEL_MASK));
		h = w->e[w->l1[(c1 + d) & RF_WHEEL_MASK].head].item.deadline;
		if (h < best)
			best = h;
	}
	if (best == UINT64_MAX && w->ovf_count)
		best = w->ovf_min;
	return best;
}

uint32_t rf_wheel_pop_due(struct rf_wheel *w, uint64_t now, struct rf_wheel_item *out,
			  uint32_t max)
{
	uint64_t now_tick = tick_of(now);
	uint32_t n = 0;

	for (;;) {
		uint32_t b = (uint32_t)(w->cur & RF_WHEEL_MASK);
		struct rf_wheel_list *l = &w->l0[b];
		uint64_t next_l1, target;
		uint32_t d;

		while (l->head != RF_WHEEL_NIL && n < max &&
		       w->e[l->head].item.deadline <= now) {
			uint32_t i = l->head;

			out[n++] = w->e[i].item;
			l->head = w->e[i].next;
			w->e[i].next = w->free_head;
			w->free_head = i;
			w->l0_count--;
			w->count--;
		}
		if (l->head == RF_WHEEL_NIL) {
			l->tail = RF_WHEEL_NIL;
			bit_clear(w->l0_bits, b);
		}
		/* stop when full, when this bucket still holds later entries (so
		 * the cursor is at now), or when the cursor has reached now */
		if (n == max || l->head != RF_WHEEL_NIL || w->cur >= now_tick)
			return n;
		if (!w->l0_count && !w->l1_count) {
			/* nothing below the overflow horizon: jump, then pull in
			 * what the overflow list has for the new position */
			w->cur = now_tick;
			if (w->ovf_count)
				cascade(w);
			if (!w->l0_count)
				return n;
			continue;
		}
		/* advance to the next non-empty bucket, the next level-1
		 * boundary or now, whichever comes first */
		next_l1 = ((w->cur >> RF_WHEEL_BITS) + 1) << RF_WHEEL_BITS;
		target = next_l1 < now_tick ? next_l1 : now_tick;
		if (w->l0_count) {
			d = bit_scan(w->l0_bits, (uint32_t)((w->cur + 1) & RF_WHEEL_MASK));
			if (d < RF_WHEEL_SIZE && w->cur + 1 + d < target)
				target = w->cur + 1 + d;
		}
		w->cur = target;
		if (w->cur == next_l1)
			cascade(w);
	}
}
