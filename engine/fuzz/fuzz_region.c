/* SPDX-License-Identifier: MIT */
/*
 * Region fuzzer: the real engine on the null port runs while a hostile
 * thread, driven by the input, writes into every part of the region a lane
 * can touch, at times the input picks (DPDK's and io_uring's way to test a
 * ring against a peer that lies):
 *
 *   lane 1's submit ring (entries after submit, its producer index forwards
 *   and backwards, its header), its free ring (entries, consumer index), its
 *   destinations (in flight too, the sequence lock included), its slots; the
 *   policy ring (messages, producer index); the event ring's consumer; any
 *   byte of the header page. It also submits plausible traffic of its own,
 *   so that there is something in flight to corrupt.
 *
 * Meanwhile lane 0 plays by the rules (200 packets) and lane 2 stays idle.
 * Under ASan and UBSan: no crash and no report, no hang (every wait is
 * bounded: a hang aborts), the engine stops cleanly, and for the lanes that
 * were not touched: lane 0's 200 packets were taken and sent, each once,
 * none dropped; lane 2 saw nothing; after destroy every slot of both is on
 * its free ring exactly once. Finally a second engine is created on the
 * header as the hostile thread left it: refused, or it runs and stops.
 *
 * Input: 4-byte operations [kind, a, b, c]; see hostile().
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "engine_internal.h"
#include "reflector/dest.h"
#include "reflector/ring.h"

#define GOOD_PACKETS 200u
#define MS 1000000ull

static const struct rf_region_params params = {
	.lanes = 3, .slots_per_lane = 64, .slot_size = 512, .submit_entries = 64,
	.dests_per_lane = 8, .policy_entries = 16, .event_entries = 64,
	.max_streams = 8, .max_outputs = 4,
};

static uint8_t *mem;
static uint32_t size;
static struct rf_region_hdr *h;
static struct rf_region_hdr hs; /* the header before the hostile thread runs */
static uint32_t dest_off;

#define FAIL(...)                                                \
	do {                                                     \
		fprintf(stderr, "fuzz_region: " __VA_ARGS__);    \
		fputc('\n', stderr);                             \
		abort();                                         \
	} while (0)

static void sleep_us(unsigned us)
{
	struct timespec ts = { 0, (long)us * 1000 };

	nanosleep(&ts, NULL);
}

static uint64_t lane_ctr(uint32_t lane, size_t off)
{
	/* where the engine's counters are: never the live header's word */
	return __atomic_load_n((uint64_t *)((uint8_t *)rf_lane_counters(mem, &hs, lane) + off),
			       __ATOMIC_RELAXED);
}
#define LANE(l, f) lane_ctr(l, offsetof(struct rf_lane_counters, f))

static struct rf_engine *engine;

/* Ring the TX doorbell when the header says the thread sleeps (the hostile
 * thread may clear that flag: the engine's bounded sleep covers it). The fd
 * is the engine's own, as the addon rings it: never the header's number. */
static void ring_tx(void)
{
	uint64_t one = 1;

	rf_smp_mb();
	if (rf_load_relaxed(&h->doorbell[RF_THREAD_TX].sleeping))
		(void)!write(rf_engine_doorbell_fd(engine, RF_THREAD_TX), &one, sizeof(one));
}

static void good_dest(uint32_t i)
{
	struct rf_dest d;

	memset(&d, 0, sizeof(d));
	d.family = i % 2 ? 6 : 4;
	d.flags = RF_DEST_F_VALID;
	d.src_port = 0x8813;
	d.dst_port = (uint16_t)(0x7017 + i);
	d.src_addr[0] = 198;
	d.dst_addr[0] = 198;
	d.dst_addr[1] = 19;
	rf_dest_write((struct rf_dest *)(mem + dest_off) + i, &d);
}

/* ------------------------------------------------------------ hostile -- */

struct hostile_ctx {
	const uint8_t *ops;
	size_t n;
	atomic_int done;
};

static uint8_t *at(uint32_t off) { return mem + off; }

static void hostile_submit(struct rf_ring_cursor *sub, struct rf_ring_cursor *fre, uint32_t *seq,
			   uint8_t a, uint8_t b, uint8_t c)
{
	uint32_t n = a % 16, k, fidx, sidx, got;

	got = rf_ring_peek(fre, n, &fidx);
	got = rf_ring_reserve(sub, got, &sidx);
	for (k = 0; k < got; k++) {
		struct rf_desc *d = rf_ring_entry(sub, sidx + k);

		d->slot = *(volatile uint32_t *)rf_ring_entry(fre, fidx + k);
		d->len = (uint16_t)(c * 4u);
		d->flags = 0;
		d->dest = 8 + (b + k) % 8;
		d->stream = b % 8;
		d->seq = (*seq)++;
		d->tx_time = b & 0x80 ? rf_now_ns() + (uint64_t)(b & 3) * MS : 0;
	}
	if (got) {
		rf_ring_release(fre, got);
		rf_ring_submit(sub);
		ring_tx();
	}
}

static void *hostile(void *arg)
{
	struct hostile_ctx *x = arg;
	struct rf_lane ln = h->lanes[1]; /* read before anyone writes the header */
	uint32_t policy_off = h->policy_off, event_off = h->event_off;
	uint32_t pool_off = h->pool_off, seq = 0;
	struct rf_ring *sr = rf_ring_at(mem, ln.submit_off), *fr = rf_ring_at(mem, ln.free_off);
	struct rf_ring *pr = rf_ring_at(mem, policy_off), *er = rf_ring_at(mem, event_off);
	struct rf_ring_cursor sub, fre;
	size_t i;

	rf_cursor_attach_prod(&sub, sr, params.submit_entries, sizeof(struct rf_desc));
	rf_cursor_attach_cons(&fre, fr, params.slots_per_lane, 4);
	for (i = 0; i + 4 <= x->n; i += 4) {
		uint8_t kind = x->ops[i], a = x->ops[i + 1], b = x->ops[i + 2], c = x->ops[i + 3];
		uint32_t off = (uint32_t)a << 8 | b;
		uint32_t sring = (uint32_t)sizeof(struct rf_ring) + params.submit_entries * 32u;
		uint32_t fring = (uint32_t)sizeof(struct rf_ring) + params.slots_per_lane * 4u;

		switch (kind % 12) {
		case 0: /* a byte of lane 1's submit ring, header and entries */
			*(volatile uint8_t *)(at(ln.submit_off) + off % sring) = c;
			break;
		case 1: /* its producer index, forwards or backwards */
			rf_store_release(&sr->producer, rf_load_relaxed(&sr->producer) + (int8_t)a);
			ring_tx();
			break;
		case 2: /* a byte of its free ring */
			*(volatile uint8_t *)(at(ln.free_off) + off % fring) = c;
			break;
		case 3: /* its free ring's consumer index */
			rf_store_release(&fr->consumer, rf_load_relaxed(&fr->consumer) + (int8_t)a);
			break;
		case 4: /* a byte of its destinations (gen included) */
			*(volatile uint8_t *)(at(dest_off) + 8 * 64 + off % (8 * 64)) = c;
			break;
		case 5: /* any byte of the header page */
			*(volatile uint8_t *)(at(0) + off % RF_PAGE) = c;
			break;
		case 6: { /* a policy message of any op and body */
			struct rf_ring_cursor pc;
			uint32_t idx;

			rf_cursor_attach_prod(&pc, pr, params.policy_entries, sizeof(struct rf_policy_msg));
			if (rf_ring_reserve(&pc, 1, &idx)) {
				struct rf_policy_msg *m = rf_ring_entry(&pc, idx);
				uint32_t k;

				m->op = a % 8;
				m->seq = off;
				for (k = 0; k < sizeof(m->body); k++)
					m->body[k] = (uint8_t)(c * (k + 1) ^ b);
				rf_ring_submit(&pc);
			}
			break;
		}
		case 7: /* the policy producer or the event consumer, moved */
			if (a & 1)
				rf_store_release(&pr->producer, rf_load_relaxed(&pr->producer) + (int8_t)b);
			else
				rf_store_release(&er->consumer, rf_load_relaxed(&er->consumer) + (int8_t)b);
			break;
		case 8: /* plausible traffic of lane 1, to have some in flight */
			hostile_submit(&sub, &fre, &seq, a, b, c);
			break;
		case 9: /* a destination of lane 1 rewritten properly, or half way */
			if (a & 1) {
				good_dest(8 + b % 8);
			} else {
				struct rf_dest *d = (struct rf_dest *)at(dest_off) + 8 + b % 8;

				rf_store_release(&d->gen, rf_load_relaxed(&d->gen) | 1u);
				((volatile uint8_t *)d)[c % 20] = a;
			}
			break;
		case 10: /* a byte of one of lane 1's slots */
			*(volatile uint8_t *)(at(pool_off) + 64u * 512u + (uint32_t)(off * 7) % (64u * 512u)) = c;
			break;
		default: /* wait a little: the engine runs meanwhile */
			sleep_us(a % 64 * 5);
			break;
		}
	}
	atomic_store(&x->done, 1);
	return NULL;
}

/* -------------------------------------------------------------- check -- */

/* After destroy, with the lane holding none: every slot once on the ring. */
static void slots_conserved(uint32_t lane, const struct rf_lane *ln)
{
	struct rf_ring *r = rf_ring_at(mem, ln->free_off);
	uint32_t cons = rf_load_acquire(&r->consumer), k;
	uint8_t seen[64];

	if (rf_ring_count(r) != ln->slot_count)
		FAIL("lane %u: %u slots on its free ring, not %u", lane, rf_ring_count(r), ln->slot_count);
	memset(seen, 0, sizeof(seen));
	for (k = 0; k < ln->slot_count; k++) {
		uint32_t s = ((uint32_t *)((uint8_t *)r + sizeof(*r)))[(cons + k) % ln->slot_count] - ln->slot_first;

		if (s >= ln->slot_count || seen[s]++)
			FAIL("lane %u: slot %u on its free ring twice or not its own", lane, s + ln->slot_first);
	}
}

static struct rf_engine *create(void)
{
	struct rf_engine_config cfg;
	struct rf_engine *e = NULL;
	char err[256];

	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = RF_BACKEND_NULL;
	cfg.ifname = "null0";
	cfg.cpu_tx = cfg.cpu_rx = -1;
	if (rf_engine_create(&e, mem, size, &cfg, err, sizeof(err)))
		return NULL;
	return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct rf_region_layout l;
	struct hostile_ctx x = { .ops = data, .n = len };
	struct rf_ring_cursor sub, fre;
	struct rf_lane lanes[3];
	struct rf_engine *e;
	pthread_t th;
	char err[256];
	uint32_t sent = 0, seq = 0, i;
	uint64_t t0;

	if (!mem) {
		if (rf_region_layout(&params, &l, err, sizeof(err)))
			FAIL("%s", err);
		size = l.size;
		mem = aligned_alloc(RF_PAGE, size);
	}
	if (rf_region_init(mem, size, &params, err, sizeof(err)))
		FAIL("%s", err);
	h = rf_hdr(mem);
	hs = *h;
	dest_off = hs.dest_off;
	for (i = 0; i < h->dest_count; i++)
		good_dest(i);
	memcpy(lanes, h->lanes, sizeof(lanes));
	e = engine = create();
	if (!e)
		FAIL("create on a fresh region");
	if (rf_engine_start(e, err, sizeof(err)))
		FAIL("start: %s", err);
	rf_cursor_attach_prod(&sub, rf_ring_at(mem, lanes[0].submit_off), params.submit_entries,
			      sizeof(struct rf_desc));
	rf_cursor_attach_cons(&fre, rf_ring_at(mem, lanes[0].free_off), params.slots_per_lane, 4);
	atomic_store(&x.done, 0);
	if (pthread_create(&th, NULL, hostile, &x))
		FAIL("thread");

	/* lane 0 plays by the rules meanwhile */
	t0 = rf_now_ns();
	while (sent < GOOD_PACKETS) {
		uint32_t fidx, sidx, n = rf_ring_peek(&fre, 16, &fidx), k;

		if (n > GOOD_PACKETS - sent)
			n = GOOD_PACKETS - sent;
		n = rf_ring_reserve(&sub, n, &sidx);
		for (k = 0; k < n; k++) {
			struct rf_desc *d = rf_ring_entry(&sub, sidx + k);

			d->slot = *(uint32_t *)rf_ring_entry(&fre, fidx + k);
			d->len = (uint16_t)(20 + k);
			d->flags = 0;
			d->dest = k % 8;
			d->stream = 0;
			d->seq = seq++;
			d->tx_time = 0;
			d->_rsvd = 0;
		}
		if (n) {
			rf_ring_release(&fre, n);
			rf_ring_submit(&sub);
			ring_tx();
			sent += n;
		}
		if (rf_now_ns() - t0 > 5000 * MS)
			FAIL("lane 0 got no free slot back for 5 s (%u of %u submitted)", sent, GOOD_PACKETS);
		sleep_us(50);
	}
	pthread_join(th, NULL);
	/* lane 0's packets leave, each once; the engine's idle sleep is bounded,
	 * so even a cleared doorbell flag delays them only a little */
	t0 = rf_now_ns();
	while (LANE(0, sent) + LANE(0, dropped) < GOOD_PACKETS) {
		if (rf_now_ns() - t0 > 5000 * MS)
			FAIL("hang: lane 0 sent %llu + dropped %llu of %u in 5 s",
			     (unsigned long long)LANE(0, sent), (unsigned long long)LANE(0, dropped), GOOD_PACKETS);
		sleep_us(200);
	}
	if (LANE(0, taken) != GOOD_PACKETS || LANE(0, sent) != GOOD_PACKETS || LANE(0, dropped) != 0)
		FAIL("lane 0: %u submitted, %llu taken, %llu sent, %llu dropped", GOOD_PACKETS,
		     (unsigned long long)LANE(0, taken), (unsigned long long)LANE(0, sent),
		     (unsigned long long)LANE(0, dropped));
	if (LANE(2, taken) || LANE(2, sent) || LANE(2, dropped))
		FAIL("lane 2 was idle, its counters moved");
	rf_engine_stop(e);
	/* quiescent now (the TX thread counts a burst's `taken` after it) */
	if (LANE(1, taken) < LANE(1, sent) + LANE(1, dropped))
		FAIL("lane 1: %llu taken, %llu sent + %llu dropped (counted twice)",
		     (unsigned long long)LANE(1, taken), (unsigned long long)LANE(1, sent),
		     (unsigned long long)LANE(1, dropped));
	rf_engine_destroy(e);
	slots_conserved(0, &lanes[0]);
	slots_conserved(2, &lanes[2]);

	/* the header as the hostile thread left it: refused, or it runs */
	e = create();
	if (e) {
		if (!rf_engine_start(e, err, sizeof(err))) {
			sleep_us(100);
			rf_engine_stop(e);
		}
		rf_engine_destroy(e);
	}
	return 0;
}
