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

static inline void list_clear(struct rf_wheel_list *l)
{
	l->head = l->tail = RF_WHEEL_NIL;
	l->min = UINT64_MAX;
}

/* Append entry i to an unsorted list, keeping its earliest deadline. */
static inline void list_append(struct rf_wheel *w, struct rf_wheel_list *l, uint32_t i)
{
	uint64_t d = w->e[i].item.deadline;

	w->e[i].next = RF_WHEEL_NIL;
	if (l->head == RF_WHEEL_NIL)
		l->head = i;
	else
		w->e[l->tail].next = i;
	l->tail = i;
	if (d < l->min)
		l->min = d;
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
		list_clear(&w->l0[i]);
		list_clear(&w->l1[i]);
	}
	list_clear(&w->ovf);
	list_clear(&w->due);
	w->cur = tick_of(now);
	return 0;
}

void rf_wheel_free(struct rf_wheel *w)
{
	free(w->e);
	w->e = NULL;
}

/* Link entry i into level-0 list l in deadline order (see wheel.h). */
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

	if (t < w->cur) {
		/* late: due at once, in arrival order */
		list_append(w, &w->due, i);
		w->due_count++;
	} else if (t - w->cur < RF_WHEEL_SIZE) {
		uint32_t b = (uint32_t)(t & RF_WHEEL_MASK);

		list_insert(w, &w->l0[b], i);
		bit_set(w->l0_bits, b);
		w->l0_count++;
	} else if (t1 - c1 < RF_WHEEL_SIZE) {
		uint32_t b = (uint32_t)(t1 & RF_WHEEL_MASK);

		list_append(w, &w->l1[b], i);
		bit_set(w->l1_bits, b);
		w->l1_count++;
	} else {
		list_append(w, &w->ovf, i);
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

	i = l->head;
	list_clear(l);
	bit_clear(w->l1_bits, b);
	for (; i != RF_WHEEL_NIL; i = next) {
		next = w->e[i].next;
		w->l1_count--;
		place(w, i);
	}

	/* the overflow list is unsorted: when its earliest entry fits the
	 * level-1 horizon, walk it once (entries > 17 s ahead: rare) */
	if (w->ovf_count && tick_of(w->ovf.min) >> RF_WHEEL_BITS <
				    (w->cur >> RF_WHEEL_BITS) + RF_WHEEL_SIZE) {
		i = w->ovf.head;
		list_clear(&w->ovf);
		for (; i != RF_WHEEL_NIL; i = next) {
			uint64_t t1 = tick_of(w->e[i].item.deadline) >> RF_WHEEL_BITS;

			next = w->e[i].next;
			/* late entries (t1 below the cursor) fit too; place()
			 * may put an entry back on the overflow list only if
			 * it does not fit, which this test rules out */
			if (t1 < (w->cur >> RF_WHEEL_BITS) + RF_WHEEL_SIZE) {
				w->ovf_count--;
				place(w, i);
			} else {
				list_append(w, &w->ovf, i);
			}
		}
	}
}

uint64_t rf_wheel_next(struct rf_wheel *w)
{
	uint64_t best = UINT64_MAX;
	uint32_t d;

	if (w->due_count)
		return w->due.min;
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
		h = w->l1[(c1 + d) & RF_WHEEL_MASK].min;
		if (h < best)
			best = h;
	}
	if (best == UINT64_MAX && w->ovf_count)
		best = w->ovf.min;
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

		/* late entries first: every one is earlier than the cursor's
		 * bucket (the deadline test matters only for a `now` older
		 * than the cursor, which the TX thread's merge with its "now"
		 * FIFO passes); a cascade below may add some */
		while (w->due_count && n < max && w->e[w->due.head].item.deadline <= now) {
			uint32_t i = w->due.head;

			out[n++] = w->e[i].item;
			w->due.head = w->e[i].next;
			w->e[i].next = w->free_head;
			w->free_head = i;
			w->due_count--;
			w->count--;
		}
		if (!w->due_count)
			list_clear(&w->due);
		if (n == max || w->due_count)
			return n;

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
			if (!w->l0_count && !w->due_count)
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
