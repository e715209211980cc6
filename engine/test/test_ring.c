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
	/* the producer's index is re-read only once the cache is empty: the 4
	 * submitted after a partial peek are seen once the 2 cached ones are
	 * taken, and the producer's line is not read while entries remain */
	n = rf_ring_reserve(&p, 3, &idx);
	CHECK(n == 3, "reserve 3 (got %u)", n);
	rf_ring_submit(&p);
	CHECK(rf_ring_peek(&c, 16, &idx) == 3, "peek 3");
	rf_ring_release(&c, 1);
	n = rf_ring_reserve(&p, 4, &idx);
	CHECK(n == 4, "reserve 4 (got %u)", n);
	rf_ring_submit(&p);
	CHECK(rf_ring_peek(&c, 16, &idx) == 2, "the 2 cached, no re-read while the cache holds some");
	rf_ring_release(&c, 2);
	CHECK(rf_ring_peek(&c, 16, &idx) == 4, "the 4 once the cache ran dry");
	rf_ring_release(&c, 4);
	CHECK(r->producer == start + 28 && r->consumer == start + 28, "indexes advanced by 28");
	CHECK(c.bad_peer == 0 && p.bad_peer == 0, "no bad index seen");
	free(r);
}

/*
 * A peer that writes its index out of range (ring.h: the peer is not
 * trusted): a producer index moved backwards or more than a ring ahead is
 * not followed (nothing is taken, the stale entries are not seen again) and
 * is counted; once it is back in range the ring works on. The same for a
 * consumer index that moves backwards or past what was published: the
 * producer does not overwrite unread entries.
 */
static void bad_peers(uint32_t start)
{
	struct rf_ring *r = make_ring(16, 8, start);
	struct rf_ring_cursor p, c;
	uint32_t idx, n, good;

	rf_cursor_init_prod(&p, r);
	rf_cursor_init_cons(&c, r);
	n = rf_ring_reserve(&p, 10, &idx);
	rf_ring_submit(&p);
	CHECK(rf_ring_peek(&c, 16, &idx) == 10, "10 ready");
	rf_ring_release(&c, 10);
	good = r->producer;
	/* backwards by 5: those 5 were taken already */
	r->producer = good - 5;
	CHECK(rf_ring_peek(&c, 16, &idx) == 0 && c.bad_peer == 1,
	      "a producer index behind the consumer is not followed (bad_peer %u)", c.bad_peer);
	/* more than a ring ahead */
	r->producer = good + 17;
	CHECK(rf_ring_peek(&c, 16, &idx) == 0 && c.bad_peer == 2, "a ring and one ahead: not followed");
	/* exactly a ring ahead is a full ring, not a fault */
	r->producer = good + 16;
	CHECK(rf_ring_peek(&c, 32, &idx) == 16 && c.bad_peer == 2, "a full ring is in range");
	r->producer = good;
	c.cached_peer = good; /* what the consumer had seen before the test wrote */
	CHECK(rf_ring_peek(&c, 16, &idx) == 0, "back in range: nothing to take");
	n = rf_ring_reserve(&p, 3, &idx);
	rf_ring_submit(&p);
	CHECK(n == 3 && rf_ring_peek(&c, 16, &idx) == 3 && idx == good, "and the ring works on");
	rf_ring_release(&c, 3);

	/* the consumer index: the producer has published good + 3 */
	n = rf_ring_reserve(&p, 16, &idx);
	CHECK(n == 16, "16 free (got %u)", n);
	rf_ring_submit(&p);
	CHECK(rf_ring_prod_nb_free(&p, 1) == 0, "full");
	r->consumer = good + 3 + 16 + 1; /* past what was published */
	CHECK(rf_ring_prod_nb_free(&p, 1) == 0 && p.bad_peer == 1,
	      "a consumer past the producer makes no room (bad_peer %u)", p.bad_peer);
	r->consumer = good; /* backwards, behind what it had released */
	CHECK(rf_ring_prod_nb_free(&p, 1) == 0 && p.bad_peer == 2, "a consumer moved back: no room");
	r->consumer = good + 3 + 4; /* released 4 for real */
	CHECK(rf_ring_prod_nb_free(&p, 1) == 4 && p.bad_peer == 2, "4 released: 4 free");
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
	bad_peers(0);
	bad_peers(0xfffffff6u);

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
