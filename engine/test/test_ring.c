/* SPDX-License-Identifier: MIT */
/*
 * Ring verbs (ring.h): reserve/submit and peek/release on one thread
 * (capacity, partial reserve, empty/full, cached indexes), then a two-thread
 * stress of 10M entries with indexes starting just below 2^32 so they wrap
 * during the run: every entry arrives once, in order, intact.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "reflector/ring.h"
#include "testlib.h"

#define STRESS_N 10000000u

static struct rf_ring *make_ring(uint32_t entries, uint32_t entry_size, uint32_t start)
{
	struct rf_ring *r = aligned_alloc(64, sizeof(*r) + (size_t)entries * entry_size);

	REQUIRE(r, "alloc");
	memset(r, 0, sizeof(*r) + (size_t)entries * entry_size);
	r->entries = entries;
	r->mask = entries - 1;
	r->entry_size = entry_size;
	r->data_off = sizeof(*r);
	r->producer = r->consumer = start;
	return r;
}

static void single_thread(uint32_t start)
{
	struct rf_ring *r = make_ring(16, 8, start);
	struct rf_ring_cursor p, c;
	uint32_t idx, n, i, round;

	rf_cursor_init_prod(&p, r);
	rf_cursor_init_cons(&c, r);
	CHECK(rf_ring_peek(&c, 4, &idx) == 0, "new ring is empty");
	n = rf_ring_reserve(&p, 10, &idx);
	CHECK(n == 10 && idx == start, "reserve 10 of 16 (got %u at %u)", n, idx);
	for (i = 0; i < n; i++)
		*(uint64_t *)rf_ring_entry(&p, idx + i) = 1000 + i;
	CHECK(rf_ring_peek(&c, 16, &idx) == 0, "nothing visible before submit");
	rf_ring_submit(&p);
	CHECK(rf_ring_count(r) == 10, "count 10");
	n = rf_ring_reserve(&p, 10, &idx);
	CHECK(n == 6, "only 6 left (got %u)", n);
	for (i = 0; i < n; i++)
		*(uint64_t *)rf_ring_entry(&p, idx + i) = 1010 + i;
	rf_ring_submit(&p);
	CHECK(rf_ring_reserve(&p, 1, &idx) == 0, "full");
	n = rf_ring_peek(&c, 5, &idx);
	CHECK(n == 5 && idx == start, "peek 5");
	for (i = 0; i < n; i++)
		CHECK(*(uint64_t *)rf_ring_entry(&c, idx + i) == 1000 + i, "entry %u", i);
	CHECK(rf_ring_reserve(&p, 1, &idx) == 0, "still full before release");
	rf_ring_release(&c, n);
	CHECK(rf_ring_reserve(&p, 8, &idx) == 5, "5 free after release");
	for (i = 0; i < 5; i++)
		*(uint64_t *)rf_ring_entry(&p, idx + i) = 1016 + i;
	rf_ring_submit(&p);
	/* drain in uneven steps; values continue in order across the wrap */
	for (round = 0, i = 1005; i < 1021; round++) {
		uint32_t k;

		n = rf_ring_peek(&c, 1 + round % 4, &idx);
		REQUIRE(n > 0, "peek in drain");
		for (k = 0; k < n; k++, i++)
			CHECK(*(uint64_t *)rf_ring_entry(&c, idx + k) == i, "drain value %u", i);
		rf_ring_release(&c, n);
	}
	CHECK(rf_ring_peek(&c, 1, &idx) == 0 && rf_ring_count(r) == 0, "empty at the end");
	/* a cache holding fewer than `want` re-reads the producer: entries
	 * submitted after a partial peek are seen before the cache runs dry */
	n = rf_ring_reserve(&p, 3, &idx);
	CHECK(n == 3, "reserve 3 (got %u)", n);
	rf_ring_submit(&p);
	CHECK(rf_ring_peek(&c, 16, &idx) == 3, "peek 3");
	rf_ring_release(&c, 1);
	n = rf_ring_reserve(&p, 4, &idx);
	CHECK(n == 4, "reserve 4 (got %u)", n);
	rf_ring_submit(&p);
	CHECK(rf_ring_peek(&c, 16, &idx) == 6, "peek sees the 4 submitted after a partial peek");
	rf_ring_release(&c, 6);
	CHECK(r->producer == start + 28 && r->consumer == start + 28, "indexes advanced by 28");
	free(r);
}

struct stress {
	struct rf_ring *r;
	uint32_t bad;
};

static void *producer(void *arg)
{
	struct stress *s = arg;
	struct rf_ring_cursor p;
	uint32_t sent = 0, idx, n, i;

	rf_cursor_init_prod(&p, s->r);
	while (sent < STRESS_N) {
		n = rf_ring_reserve(&p, 1 + sent % 37, &idx);
		if (n > STRESS_N - sent)
			n = STRESS_N - sent; /* reserved but unsubmitted entries are never seen */
		for (i = 0; i < n; i++) {
			uint32_t *e = rf_ring_entry(&p, idx + i);

			e[0] = sent + i;
			e[1] = ~(sent + i);
		}
		if (n) {
			p.local = idx + n;
			rf_ring_submit(&p);
			sent += n;
		}
	}
	return NULL;
}

static void *consumer(void *arg)
{
	struct stress *s = arg;
	struct rf_ring_cursor c;
	uint32_t got = 0, idx, n, i;

	rf_cursor_init_cons(&c, s->r);
	while (got < STRESS_N) {
		n = rf_ring_peek(&c, 64, &idx);
		for (i = 0; i < n; i++) {
			const uint32_t *e = rf_ring_entry(&c, idx + i);

			if (e[0] != got + i || e[1] != ~(got + i))
				s->bad++;
		}
		if (n) {
			rf_ring_release(&c, n);
			got += n;
		}
	}
	return NULL;
}

int main(void)
{
	struct stress s;
	pthread_t a, b;

	single_thread(0);
	single_thread(0xfffffff8u); /* wraps in the middle */

	s.r = make_ring(1024, 8, 0xffffffffu - 5000000u);
	s.bad = 0;
	pthread_create(&b, NULL, consumer, &s);
	pthread_create(&a, NULL, producer, &s);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	CHECK(s.bad == 0, "%u entries corrupted or out of order", s.bad);
	CHECK(s.r->producer == 0xffffffffu - 5000000u + STRESS_N, "producer index wrapped");
	CHECK(rf_ring_count(s.r) == 0, "drained");
	free(s.r);
	return t_result("ring");
}
