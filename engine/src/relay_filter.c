/* SPDX-License-Identifier: MIT */
/*
 * The classic BPF program for the RX socket: copy up only frames that can
 * match a relay, so the RX ring is not flooded with the host's other
 * traffic (the kernel still gets every frame; a socket filter only decides
 * what this socket sees).
 *
 * Accepted: IPv4 with protocol UDP to a relay's address (any port: the C
 * parser checks the port, and fragments to a relay address are counted);
 * IPv6 whose first next header is UDP, hop-by-hop, routing, destination
 * options or fragment, to a relay's address. The kernel has already removed
 * an outer VLAN tag it recognised; frames with a tag left inline are refused
 * here (they are not ours, see relay_parse.c).
 *
 * Jumps in classic BPF are 8-bit forward offsets, so each relay gets a small
 * self-contained block that falls through to the next one; long jumps use
 * BPF_JA (32-bit). If the exact program does not fit in `max`, a shorter
 * "any IPv4/IPv6 UDP" program is returned instead.
 */
#include <linux/filter.h>
#include <string.h>

#include "relay_int.h"

#define ACCEPT 0x40000u /* snap length: whole frame */

struct prog {
	struct sock_filter *ins;
	uint32_t n, max;
	int overflow;
};

static uint32_t emit(struct prog *p, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
	if (p->n >= p->max) {
		p->overflow = 1;
		return p->n;
	}
	p->ins[p->n] = (struct sock_filter){ code, jt, jf, k };
	return p->n++;
}

static uint32_t be32(const uint8_t *a) { return (uint32_t)a[0] << 24 | a[1] << 16 | a[2] << 8 | a[3]; }

/* exact: one block per relay address; otherwise any UDP */
static void build(struct prog *p, const struct rf_relay_table *t, int exact)
{
	uint32_t ja_v4, ja_v6, i;

	emit(p, BPF_LD | BPF_H | BPF_ABS, 0, 0, 12);
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0x0800);
	ja_v4 = emit(p, BPF_JMP | BPF_JA, 0, 0, 0);
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0x86dd);
	ja_v6 = emit(p, BPF_JMP | BPF_JA, 0, 0, 0);
	emit(p, BPF_RET | BPF_K, 0, 0, 0);

	/* IPv4: protocol at 14 + 9, destination at 14 + 16 */
	if (!p->overflow)
		p->ins[ja_v4].k = p->n - ja_v4 - 1;
	emit(p, BPF_LD | BPF_B | BPF_ABS, 0, 0, 23);
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 17);
	emit(p, BPF_RET | BPF_K, 0, 0, 0);
	if (exact) {
		emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, 30);
		for (i = 0; i < t->n_relays; i++) {
			/* a kernel relay's frames are relayed by the tc program */
			if (t->relays[i].family != 4 || t->relays[i].kernel)
				continue;
			emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, be32(t->relays[i].addr));
			emit(p, BPF_RET | BPF_K, 0, 0, ACCEPT);
		}
		emit(p, BPF_RET | BPF_K, 0, 0, 0);
	} else {
		emit(p, BPF_RET | BPF_K, 0, 0, ACCEPT);
	}

	/* IPv6: next header at 14 + 6, destination at 14 + 24 */
	if (!p->overflow)
		p->ins[ja_v6].k = p->n - ja_v6 - 1;
	emit(p, BPF_LD | BPF_B | BPF_ABS, 0, 0, 20);
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, 5, 0, 17);
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, 4, 0, 0);
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, 3, 0, 43);
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, 2, 0, 60);
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 44);
	emit(p, BPF_RET | BPF_K, 0, 0, 0);
	if (exact) {
		for (i = 0; i < t->n_relays; i++) {
			const uint8_t *a = t->relays[i].addr;

			if (t->relays[i].family != 6 || t->relays[i].kernel)
				continue;
			/* 9 instructions: each mismatch skips to the next block */
			emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, 38);
			emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 7, be32(a));
			emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, 42);
			emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 5, be32(a + 4));
			emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, 46);
			emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 3, be32(a + 8));
			emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, 50);
			emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, be32(a + 12));
			emit(p, BPF_RET | BPF_K, 0, 0, ACCEPT);
		}
		emit(p, BPF_RET | BPF_K, 0, 0, 0);
	} else {
		emit(p, BPF_RET | BPF_K, 0, 0, ACCEPT);
	}
}

uint32_t rf_relay_filter(const struct rf_relay *r, struct sock_filter *prog, uint32_t max)
{
	struct rf_relay *rw = (struct rf_relay *)r;
	const struct rf_relay_table *t = atomic_load_explicit(&rw->cur, memory_order_acquire);
	struct prog p = { prog, 0, max, 0 };

	if (t->keys_gen == r->filter_gen)
		return 0;
	build(&p, t, 1);
	if (p.overflow) {
		p = (struct prog){ prog, 0, max, 0 };
		build(&p, t, 0);
		if (p.overflow)
			return 0;
	}
	/* the signature takes a const table; remembering what was handed out is
	 * bookkeeping of the RX thread that owns both */
	rw->filter_gen = t->keys_gen;
	return p.n;
}
