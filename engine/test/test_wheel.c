/* SPDX-License-Identifier: MIT */
/*
 * Timing wheel: entries come out in deadline order, all entries due at the
 * same time come out together, far deadlines (level 1 and the overflow list)
 * come out at their time and not before, late entries come out at once,
 * next() is the earliest deadline, a random workload matches a sorted
 * reference, and interleaved sessions (deadlines not in insert order) come
 * out in order.
 */
#include <string.h>

#include "testlib.h"
#include "wheel.h"

#define US 1000ull
#define MS 1000000ull
#define S  1000000000ull

static uint64_t rs = 88172645463325252ull;
static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

static void ins(struct rf_wheel *w, uint64_t deadline, uint32_t tag)
{
	struct rf_wheel_item it;

	memset(&it, 0, sizeof(it));
	it.deadline = deadline;
	it.desc.seq = tag;
	REQUIRE(rf_wheel_insert(w, &it) == 0, "insert %u", tag);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(void)
{
	static struct rf_wheel w;
	static struct rf_wheel_item out[4096];
	static uint64_t ref[20000];
	uint64_t t0 = 1000 * S + 12345; /* arbitrary start, not tick aligned */
	uint32_t n, i;

	REQUIRE(rf_wheel_init(&w, 20000, t0) == 0, "init");

	/* empty */
	CHECK(rf_wheel_next(&w) == UINT64_MAX, "empty next");
	CHECK(rf_wheel_pop_due(&w, t0 + S, out, 64) == 0, "empty pop");
	t0 += S; /* the cursor moved with the pop */

	/* ordering: inserted out of order within and across buckets */
	ins(&w, t0 + 50 * US, 3);
	ins(&w, t0 + 10 * US, 1);
	ins(&w, t0 + 30 * US, 2);
	ins(&w, t0 + 10 * US + 1, 11);
	ins(&w, t0 + 5 * MS, 4);
	CHECK(rf_wheel_next(&w) == t0 + 10 * US, "next is the earliest");
	CHECK(rf_wheel_pop_due(&w, t0 + 10 * US - 1, out, 64) == 0, "nothing before its time");
	n = rf_wheel_pop_due(&w, t0 + 60 * US, out, 64);
	CHECK(n == 4, "four due at +60us, got %u", n);
	CHECK(n == 4 && out[0].desc.seq == 1 && out[1].desc.seq == 11 && out[2].desc.seq == 2 &&
		      out[3].desc.seq == 3, "in deadline order");
	CHECK(rf_wheel_next(&w) == t0 + 5 * MS, "next is +5ms");
	n = rf_wheel_pop_due(&w, t0 + 5 * MS, out, 64);
	CHECK(n == 1 && out[0].desc.seq == 4, "+5ms entry at its time exactly");
	CHECK(w.count == 0, "empty again");

	/* same deadline: 100 entries due together come out in one pop */
	for (i = 0; i < 100; i++)
		ins(&w, t0 + 7 * MS, 100 + i);
	n = rf_wheel_pop_due(&w, t0 + 7 * MS, out, 256);
	CHECK(n == 100, "all 100 same-deadline entries in one pop, got %u", n);
	for (i = 0; i < n; i++)
		CHECK(out[i].desc.seq == 100 + i, "FIFO among equal deadlines");
	/* max limits a pop, the rest stays due */
	for (i = 0; i < 10; i++)
		ins(&w, t0 + 8 * MS, i);
	CHECK(rf_wheel_pop_due(&w, t0 + 8 * MS, out, 4) == 4, "pop limited to max");
	CHECK(rf_wheel_next(&w) == t0 + 8 * MS, "the rest is still due");
	CHECK(rf_wheel_pop_due(&w, t0 + 9 * MS, out, 64) == 6, "then the rest");

	/* late: a deadline in the past comes out at once, before later ones */
	ins(&w, t0 + 9 * MS + 100 * US, 2);
	ins(&w, t0, 1);
	CHECK(rf_wheel_next(&w) == t0, "late entry is next");
	n = rf_wheel_pop_due(&w, t0 + 9 * MS, out, 64);
	CHECK(n == 1 && out[0].desc.seq == 1, "late entry popped at once");
	n = rf_wheel_pop_due(&w, t0 + 10 * MS, out, 64);
	CHECK(n == 1 && out[0].desc.seq == 2, "then the later one");

	/* far: level 1 (+1 s) and overflow (+30 s, +100 s) */
	ins(&w, t0 + 100 * S, 3);
	ins(&w, t0 + 30 * S, 2);
	ins(&w, t0 + 1 * S, 1);
	ins(&w, t0 + 20 * MS, 0);
	CHECK(rf_wheel_next(&w) == t0 + 20 * MS, "next +20ms");
	CHECK(rf_wheel_pop_due(&w, t0 + 20 * MS, out, 64) == 1, "+20ms");
	CHECK(rf_wheel_next(&w) == t0 + 1 * S, "next +1s");
	CHECK(rf_wheel_pop_due(&w, t0 + S - 1, out, 64) == 0, "+1s not early");
	n = rf_wheel_pop_due(&w, t0 + S, out, 64);
	CHECK(n == 1 && out[0].desc.seq == 1, "+1s on time");
	CHECK(rf_wheel_next(&w) == t0 + 30 * S, "next +30s");
	for (i = 2; i < 30; i++)
		CHECK(rf_wheel_pop_due(&w, t0 + i * S, out, 64) == 0, "+30s not early at +%us", i);
	n = rf_wheel_pop_due(&w, t0 + 30 * S + 5, out, 64);
	CHECK(n == 1 && out[0].desc.seq == 2, "+30s on time");
	n = rf_wheel_pop_due(&w, t0 + 200 * S, out, 64);
	CHECK(n == 1 && out[0].desc.seq == 3, "+100s popped late at +200s");
	t0 += 200 * S;

	/* level 1 entry earlier than a level 0 entry of the next level-1
	 * period (inserted before the cursor moved): next() must see it */
	{
		uint64_t base = (t0 >> 24 << 24) + (1ull << 24); /* a level-1 boundary */

		rf_wheel_pop_due(&w, base - (1ull << 14) * 2, out, 64);
		ins(&w, base + (1ull << 14) * 1030, 1); /* level 1 now */
		rf_wheel_pop_due(&w, base + (1ull << 14) * 10, out, 64);
		ins(&w, base + (1ull << 14) * 1031, 2); /* level 0 now */
		CHECK(rf_wheel_next(&w) == base + (1ull << 14) * 1030, "next sees level 1");
		n = rf_wheel_pop_due(&w, base + (1ull << 14) * 1032, out, 64);
		CHECK(n == 2 && out[0].desc.seq == 1 && out[1].desc.seq == 2, "both in order");
		t0 = base + (1ull << 14) * 1032;
	}

	/* random workload against a sorted reference, time moving in random
	 * steps, deadlines from the past to +40 s */

	for (i = 0; i < 20000; i++) {
		uint64_t r = rnd(), d;

		switch (r % 4) {
		case 0: d = t0 - (rnd() % (5 * MS)); break;
		case 1: d = t0 + rnd() % (20 * MS); break;
		case 2: d = t0 + rnd() % (3 * S); break;
		default: d = t0 + rnd() % (40 * S); break;
		}
		ref[i] = d < t0 ? t0 : d; /* a late entry is due at once */
		ins(&w, d, i);

	}
	qsort(ref, 20000, sizeof(ref[0]), cmp_u64);
	{
		uint64_t now = t0, last = 0;
		uint32_t k = 0, bad = 0, early = 0;

		while (k < 20000 && now < t0 + 60 * S) {
			uint64_t nx = rf_wheel_next(&w);

			n = rf_wheel_pop_due(&w, now, out, 4096);
			for (i = 0; i < n; i++, k++) {
				uint64_t dd = out[i].deadline < t0 ? t0 : out[i].deadline;

				if (dd > now)
					early++;
				if (dd < last)
					bad++;
				if (dd != ref[k])
					bad++;
				last = dd;
			}
			if (n == 0 && nx != UINT64_MAX && nx > now && rnd() % 2)
				now = nx; /* jump to next() like the TX thread */
			else
				now += rnd() % (3 * MS);
		}
		CHECK(k == 20000, "all popped, got %u", k);
		CHECK(bad == 0, "%u popped out of order", bad);
		CHECK(early == 0, "%u popped early", early);
		CHECK(w.count == 0 && rf_wheel_next(&w) == UINT64_MAX, "empty at the end");
	}

	/* sessions: a worker's aggregate holds its sessions one after the
	 * other, so deadlines interleave (1,000 sessions x 16 packets 5.26 ms
	 * apart, starts staggered, 40 ms ahead: level 1 and level 0); they
	 * come out in deadline order, each at its time. Then the same while
	 * the wheel is 50 ms behind: all late, out at once, in arrival order. */
	{
		uint64_t base, now, last = 0;
		uint32_t k = 0, bad = 0, early = 0, s2, p;

		t0 += 100 * S; /* past where the random workload left the cursor */
		CHECK(rf_wheel_pop_due(&w, t0, out, 64) == 0, "sessions: cursor to t0");
		base = t0 + 40 * MS;
		now = t0;
		for (s2 = 0; s2 < 1000; s2++)
			for (p = 0; p < 16; p++)
				ins(&w, base + s2 * 5260 + p * 5260 * US, s2 * 16 + p);
		while (k < 16000 && now < base + 200 * MS) {
			n = rf_wheel_pop_due(&w, now, out, 4096);
			for (i = 0; i < n; i++, k++) {
				if (out[i].deadline > now)
					early++;
				if (out[i].deadline < last)
					bad++;
				last = out[i].deadline;
			}
			now += 7 * US;
		}
		CHECK(k == 16000, "sessions: all popped, got %u", k);
		CHECK(bad == 0 && early == 0, "sessions: %u out of order, %u early", bad, early);
		t0 = now;
		for (s2 = 0; s2 < 1000; s2++)
			for (p = 0; p < 4; p++)
				ins(&w, t0 - 50 * MS + s2 * 5260 + p * 5260 * US, s2 * 4 + p);
		CHECK(rf_wheel_next(&w) <= t0 - 50 * MS, "late: next is in the past");
		n = rf_wheel_pop_due(&w, t0, out, 4096);
		for (i = 0, bad = 0; i < n; i++)
			if (out[i].desc.seq != i)
				bad++;
		CHECK(n == 4000 && bad == 0, "late: %u out at once (4000), %u not in arrival order", n, bad);
		CHECK(w.count == 0, "late: wheel empty");
	}

	/* full: capacity is a hard limit, reported, nothing lost */
	{
		static struct rf_wheel small;

		REQUIRE(rf_wheel_init(&small, 3, 0) == 0, "init small");
		ins(&small, 5, 0);
		ins(&small, 6, 1);
		ins(&small, 7, 2);
		{
			struct rf_wheel_item it = { .deadline = 8 };

			CHECK(rf_wheel_insert(&small, &it) == -1 && rf_wheel_full(&small), "full");
		}
		CHECK(rf_wheel_pop_due(&small, 10, out, 64) == 3, "the three come out");
		rf_wheel_free(&small);
	}
	rf_wheel_free(&w);
	return t_result("wheel");
}
