/* SPDX-License-Identifier: MIT */
/*
 * The kernel tier (docs/kernel-tier.md): the engine's tc ingress program
 * (engine/bpf/relay.bpf.c) and the mirror of the relay table into its maps.
 * Opened with the engine's port, closed with it; the RX thread mirrors each
 * policy message it applied (rf_ktier_sync), so both tiers read the same
 * policy table.
 */
#ifndef REFLECTOR_KTIER_H
#define REFLECTOR_KTIER_H

#include <stddef.h>
#include <stdint.h>

#include "reflector/region.h"

struct rf_ktier;
struct rf_relay;
struct rf_relay_table;
struct rf_policy_msg;

enum rf_relay_tier {
	RF_TIER_DEFAULT = 0, /* kernel where the kernel allows it */
	RF_TIER_USER = 1,    /* relay in the RX thread; the program only consumes */
	RF_TIER_KERNEL = 2,
};

struct rf_ktier_config {
	const char *bpf_object; /* path of relay.bpf.o */
	const char *ifname;
	const char *netns;      /* path or name under /run/netns, or NULL */
	int ifindex;            /* <= 0: load only, attach nowhere (tests) */
	uint32_t mtu;
	uint32_t tier;          /* enum rf_relay_tier */
	uint32_t orphan_s;      /* watchdog: 0 = default 30 s */
	uint32_t max_counters;  /* output counter slots of the region */
};

/*
 * Load the program and attach it to the interface's tc ingress. Returns 0,
 * or -errno with the reason in err (the caller logs it and goes on without:
 * the user tier relays, nothing consumes). *relaying says whether relays
 * run in the kernel (0: consume only, `why` says why).
 */
int rf_ktier_open(struct rf_ktier **out, const struct rf_ktier_config *cfg, int *relaying,
		  char *why, size_t whylen, char *err, size_t errlen);
/* Detach and remove everything it made. */
void rf_ktier_close(struct rf_ktier *k);

/* Mirror the relay a just-applied message touched (RX thread, between
 * bursts): `t` is the table now current. May set the entry's `kernel` flag
 * and bump t->keys_gen (the RX socket's filter leaves kernel relays out). */
void rf_ktier_sync(struct rf_ktier *k, struct rf_relay_table *t, const struct rf_policy_msg *msg);

/* Adoption (hitless restart): open found a previous server's program on
 * the interface and loaded over its maps, which keep relaying its policy;
 * rf_ktier_sync only marks the table until rf_ktier_commit writes the
 * complete table, relay by relay, each in one flip (RX thread). */
void rf_ktier_commit(struct rf_ktier *k, struct rf_relay_table *t);
int rf_ktier_adopting(const struct rf_ktier *k);

/* Sums over CPUs of the program's counters: reasons[RF_KT_REASONS] by
 * engine counter index; one output counter slot. 0 or -errno. */
int rf_ktier_reasons(struct rf_ktier *k, uint64_t *reasons, uint32_t n);
int rf_ktier_output(struct rf_ktier *k, uint32_t slot, struct rf_output_counters *out);

/* BPF_PROG_TEST_RUN of the program on `frame` (the tests' differential
 * check): test_out = 0 runs it as on the wire; k > 0 rewrites for output
 * k-1 and returns the frame in out. Returns the program's return value or
 * -errno. */
int rf_ktier_test_run(struct rf_ktier *k, uint32_t test_out, const uint8_t *frame, uint32_t len,
		      uint8_t *out, uint32_t *out_len);

#endif
