/* SPDX-License-Identifier: MIT */
/*
 * The kernel tier against the user tier, frame by frame: the tc program
 * (engine/bpf/relay.bpf.o, run with BPF_PROG_TEST_RUN) and the C parser and
 * rewriter (relay_parse.c, relay.c) see the same relay table (the program's
 * maps filled by the mirror, ktier.c, from the same policy messages) and the
 * same frames: the fuzz seed corpus (engine/fuzz/gen_seeds.c), the fuzzers'
 * grown corpora when engine/out/fuzz/ has them, and a generated corpus of
 * valid frames with random header bytes changed. For each frame:
 *   - the C relays it: the program, asked to rewrite for output k, returns
 *     exactly the C output frame (headers from rf_relay_rewrite, then the
 *     payload), byte for byte, for every output; an output without a next
 *     hop is dropped by both;
 *   - the C refuses the source: the program drops it and counts
 *     drop_not_allowed;
 *   - the C does not relay it (not ours, malformed, fragment, no relay): the
 *     program passes it to the stack, and a reason it counts is the C's.
 * Needs root (bpf()) and libbpf.so.1; exits 77 saying which is missing.
 */
#define main gen_seeds_main
#include "../fuzz/gen_seeds.c"
#undef main

#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#include "../bpf/relay_abi.h"
#include "ktier.h"

#define OBJ "bpf/relay.bpf.o"
#define KT_REWRITTEN 100
#define TC_OK 0
#define TC_SHOT 2
#define NOUT 6

static int failures, untestable, frames_seen, relayed_checked, outputs_checked;
static struct rf_relay *R;
static struct rf_ktier *K;
static struct rf_output_counters OC[256];

#define FAIL(...)                                                                   \
	do {                                                                        \
		if (failures++ < 15) {                                              \
			fprintf(stderr, "diff: ");                                  \
			fprintf(stderr, __VA_ARGS__);                               \
			fputc('\n', stderr);                                        \
		}                                                                   \
	} while (0)

static uint16_t be(uint16_t v) { return (uint16_t)(v >> 8 | v << 8); }

static void apply_or_die(uint32_t op, const void *body, size_t len)
{
	struct rf_policy_msg m;

	memset(&m, 0, sizeof(m));
	m.op = op;
	memcpy(m.body, body, len);
	if (rf_relay_apply(R, &m)) {
		fprintf(stderr, "policy op %u refused\n", op);
		exit(1);
	}
}

/* The fuzz targets' table: P4:5000 and [P6]:5000, sources the origin's /16
 * or /32, six outputs each: one plain, one with DSCP and TTL and another
 * source port, one without a next hop, one to the second's address (the
 * program's checksum chain skips the address update), one to the fourth's
 * ports (it skips the port update) and one to the fifth's address and ports
 * with another MAC and DSCP (it skips both, and must still write the
 * header). */
static void build_table(void)
{
	for (int fam = 4; fam <= 6; fam += 2) {
		struct rf_policy_relay_add ra = { .relay_id = (uint32_t)fam, .counter = (uint32_t)fam * 10,
						  .family = (uint8_t)fam, .port = be(5000) };
		struct rf_policy_relay_allow al = { .relay_id = (uint32_t)fam, .family = (uint8_t)fam,
						    .length = fam == 4 ? 16 : 64 };

		memcpy(ra.addr, fam == 4 ? P4 : P6, fam == 4 ? 4 : 16);
		memcpy(ra.name, "diff", 4);
		apply_or_die(RF_POLICY_OP_RELAY_ADD, &ra, sizeof(ra));
		memcpy(al.addr, fam == 4 ? O4 : O6, fam == 4 ? 4 : 16);
		apply_or_die(RF_POLICY_OP_RELAY_ALLOW, &al, sizeof(al));
		for (uint32_t k = 0; k < NOUT; k++) {
			struct rf_policy_output_add o = { .relay_id = (uint32_t)fam, .output_id = (uint32_t)fam * 10 + 1 + k,
							  .family = (uint8_t)fam, .src_port = be(5000),
							  .dst_port = be((uint16_t)(6000 + k)) };

			o.flags = k == 2 ? 0 : RF_OUT_F_MAC_VALID;
			if (k == 1) {
				o.flags |= RF_OUT_F_DSCP | RF_OUT_F_TTL;
				o.dscp = 46;
				o.ttl = 9;
				o.src_port = be(7777);
			}
			memcpy(o.dst_mac, "\x02\x00\x00\x00\x01\x00", 6);
			o.dst_mac[5] = (uint8_t)k;
			memcpy(o.src_addr, fam == 4 ? P4 : P6, fam == 4 ? 4 : 16);
			memcpy(o.dst_addr, fam == 4 ? P4 : P6, fam == 4 ? 4 : 16);
			o.dst_addr[fam == 4 ? 3 : 15] = (uint8_t)(50 + (k == 3 ? 1 : k));
			if (k >= 3) {
				o.src_port = be(7777);
				o.dst_port = be(6003);
			}
			if (k == 5) {
				o.dst_addr[fam == 4 ? 3 : 15] = 54;
				o.flags |= RF_OUT_F_DSCP;
				o.dscp = 10;
			}
			apply_or_die(RF_POLICY_OP_OUTPUT_ADD, &o, sizeof(o));
		}
	}
}

static uint64_t reason(uint32_t idx)
{
	uint64_t r[RF_KT_REASONS];

	if (rf_ktier_reasons(K, r, RF_KT_REASONS))
		return 0;
	return r[idx];
}

static void check_frame(const uint8_t *f, uint32_t len, const char *what)
{
	const struct rf_relay_table *t = rf_relay_read_begin(R);
	struct rf_pkt_view v;
	enum rf_parse_result pr;
	const struct rf_relay_ent *e = NULL;
	static uint8_t out[8192], want[8192];
	uint32_t out_len;
	int ret;

	frames_seen++;
	/* a tc program sees at least an Ethernet header (shorter: the kernel
	 * never runs it; BPF_PROG_TEST_RUN refuses them) */
	if (len < 14 || len > 4096) {
		rf_relay_read_end(R);
		return;
	}
	pr = rf_relay_parse(f, len, len, 0, &v);
	if (pr == RF_PARSE_UDP)
		e = rf_relay_lookup(t, &v);
	if (e && rf_relay_allowed(e, &v)) {
		relayed_checked++;
		for (uint32_t k = 0; k < e->out_count; k++) {
			const struct rf_relay_out *o = &t->outs[e->out_first + k];

			out_len = sizeof(out);
			ret = rf_ktier_test_run(K, k + 1, f, len, out, &out_len);
			if (!(o->flags & RF_OUT_F_MAC_VALID)) {
				if (ret != TC_SHOT)
					FAIL("%s: output %u has no next hop: C drops it, the program returned %d", what, k, ret);
				continue;
			}
			outputs_checked++;
			rf_relay_rewrite(o, &v, want);
			memcpy(want + o->hdr_len, v.payload, v.payload_len);
			if (ret != KT_REWRITTEN) {
				FAIL("%s: output %u: C relays it, the program returned %d", what, k, ret);
				continue;
			}
			if (out_len != (uint32_t)o->hdr_len + v.payload_len ||
			    memcmp(out, want, out_len)) {
				uint32_t i, n = out_len < (uint32_t)o->hdr_len + v.payload_len ? out_len : (uint32_t)o->hdr_len + v.payload_len;

				for (i = 0; i < n && out[i] == want[i]; i++)
					;
				FAIL("%s: output %u: program frame (%u bytes) differs from C's (%u bytes) at byte %u (%02x vs %02x)",
				     what, k, out_len, o->hdr_len + v.payload_len, i, i < n ? out[i] : 0, i < n ? want[i] : 0);
			}
		}
	} else if (e) {
		uint64_t before = reason(RF_KT_C_DROP_NOT_ALLOWED);

		out_len = sizeof(out);
		ret = rf_ktier_test_run(K, 0, f, len, out, &out_len);
		if (ret != TC_SHOT)
			FAIL("%s: source not allowed: C drops it, the program returned %d", what, ret);
		if (reason(RF_KT_C_DROP_NOT_ALLOWED) != before + 1)
			FAIL("%s: source not allowed: drop_not_allowed did not count it", what);
	} else {
		uint64_t m0 = reason(RF_KT_C_DROP_MALFORMED), f0 = reason(RF_KT_C_DROP_FRAGMENT);

		out_len = sizeof(out);
		ret = rf_ktier_test_run(K, 0, f, len, out, &out_len);
		if (ret == -EINVAL && len < 14u + (rf_get16(f + 12) == 0x86dd ? 40u : 20u)) {
			/* BPF_PROG_TEST_RUN refuses an IP frame shorter than its fixed
			 * header (the program's own loads are bounds-checked anyway) */
			untestable++;
		} else if (ret != TC_OK) {
			FAIL("%s: C leaves it (parse %d), the program returned %d (len %u)", what, (int)pr, ret, len);
		}
		if (reason(RF_KT_C_DROP_MALFORMED) != m0 && pr != RF_PARSE_MALFORMED)
			FAIL("%s: the program counted drop_malformed, C's verdict is %d", what, (int)pr);
		if (reason(RF_KT_C_DROP_FRAGMENT) != f0 && pr != RF_PARSE_FRAGMENT)
			FAIL("%s: the program counted drop_fragment, C's verdict is %d", what, (int)pr);
	}
	rf_relay_read_end(R);
}

static void check_dir(const char *dir, int skip_prefix_byte)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	static uint8_t buf[65536];
	char path[1024];

	if (!d)
		return;
	while ((de = readdir(d))) {
		FILE *fp;
		size_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fp = fopen(path, "rb");
		if (!fp)
			continue;
		n = fread(buf, 1, sizeof(buf), fp);
		fclose(fp);
		if (skip_prefix_byte) {
			/* the parse target's control byte: no stripped VLAN, no truncation only */
			if (n < 1 || (buf[0] & 0x81))
				continue;
			check_frame(buf + 1, (uint32_t)n - 1, path);
		} else {
			check_frame(buf, (uint32_t)n, path);
		}
	}
	closedir(d);
}

static uint32_t rng = 0x12345678u;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static void generated(uint32_t count)
{
	static uint8_t f[2048], pay[1400];
	char what[64];

	for (uint32_t i = 0; i < count; i++) {
		int fam = rnd() & 1 ? 4 : 6;
		uint16_t plen = (uint16_t)(rnd() % 3 == 0 ? rnd() % 1400 : rnd() % 80);
		const uint8_t *src = fam == 4 ? O4 : O6;
		uint8_t src2[16] = { 0 };
		uint32_t n, j, flips;

		for (j = 0; j < plen; j++)
			pay[j] = (uint8_t)rnd();
		memcpy(src2, src, fam == 4 ? 4 : 16);
		/* now and then a source outside the allowed prefix */
		if (rnd() % 8 == 0)
			src2[fam == 4 ? 1 : 7] ^= 0x40;
		n = tp_build(f, fam, src2, (uint16_t)(1024 + rnd() % 60000), fam == 4 ? P4 : P6,
			     rnd() % 16 ? 5000 : (uint16_t)(5000 + rnd() % 3), pay, plen, fam == 4 && rnd() % 5 == 0);
		/* TOS / traffic class and DF vary; then up to 3 header bytes change */
		if (fam == 4) {
			f[15] = (uint8_t)rnd();
			f[24] = f[25] = 0;
			rf_put16(f + 24, (uint16_t)~rf_csum_fold16(rf_csum_partial_be(f + 14, 20, 0)));
		}
		flips = rnd() % 4;
		for (j = 0; j < flips; j++) {
			uint32_t at = rnd() % (fam == 4 ? 42 : 62);

			f[at] ^= (uint8_t)(1u << (rnd() % 8));
		}
		/* and some are cut short or carry padding */
		if (rnd() % 10 == 0 && n > 20)
			n -= rnd() % 20;
		else if (rnd() % 10 == 0)
			n += rnd() % 16;
		snprintf(what, sizeof(what), "generated #%u", i);
		check_frame(f, n, what);
	}
}

/* A rate limit holds in the kernel (the program's token buckets); more than
 * RF_KT_MAX_OUTS outputs move a relay to the user tier and back, where the
 * program only consumes (drops, counted "consumed"); the table entry says
 * which tier has it. */
static int kernel_of(uint32_t id)
{
	const struct rf_relay_table *t = rf_relay_read_begin(R);
	int k = -1;

	for (uint32_t i = 0; i < t->n_relays; i++)
		if (t->relays[i].id == id)
			k = t->relays[i].kernel;
	rf_relay_read_end(R);
	return k;
}

static int tier_switches(void)
{
	static uint8_t f[2048], out[2048], pay[100];
	struct rf_policy_relay_limit lim = { .relay_id = 4, .pps = 1000 };
	uint32_t n, out_len, k;
	uint64_t c0;
	int bad = 0, ret;

	n = tp_build(f, 4, O4, 4000, P4, 5000, pay, sizeof(pay), 0);
	if (kernel_of(4) != 1)
		bad++, fprintf(stderr, "relay 4 should start in the kernel tier\n");
	/* a limit keeps the relay in the kernel, through its token buckets:
	 * 10 pps, a bucket of one packet; 50 frames at once take 1 */
	lim.pps = 10;
	apply_or_die(RF_POLICY_OP_RELAY_LIMIT, &lim, sizeof(lim));
	c0 = reason(RF_KT_C_DROP_RATE_LIMIT);
	{
		uint64_t in0 = reason(RF_KT_C_RELAY_IN);
		int passed = 0;

		for (k = 0; k < 50; k++) {
			out_len = sizeof(out);
			ret = rf_ktier_test_run(K, 1, f, n, out, &out_len);
			passed += ret == KT_REWRITTEN;
		}
		if (kernel_of(4) != 1 || passed != 1 || reason(RF_KT_C_DROP_RATE_LIMIT) != c0 + 49 ||
		    reason(RF_KT_C_RELAY_IN) != in0 + 50)
			bad++, fprintf(stderr, "10 pps: 1 of 50 passes, 49 counted drop_rate_limit (kernel=%d passed=%d limited=%llu)\n",
				       kernel_of(4), passed, (unsigned long long)(reason(RF_KT_C_DROP_RATE_LIMIT) - c0));
	}
	lim.pps = 0;
	apply_or_die(RF_POLICY_OP_RELAY_LIMIT, &lim, sizeof(lim));
	out_len = sizeof(out);
	ret = rf_ktier_test_run(K, 1, f, n, out, &out_len);
	if (kernel_of(4) != 1 || ret != KT_REWRITTEN)
		bad++, fprintf(stderr, "limit removed: relayed (kernel=%d ret=%d)\n", kernel_of(4), ret);
	(void)c0;
	/* NOUT outputs so far: up to RF_KT_MAX_OUTS + 1 */
	for (k = NOUT; k <= RF_KT_MAX_OUTS; k++) {
		struct rf_policy_output_add o = { .relay_id = 4, .output_id = 100 + k, .family = 4,
						  .flags = RF_OUT_F_MAC_VALID, .src_port = be(5000),
						  .dst_port = be((uint16_t)(6000 + k)) };

		memcpy(o.src_addr, P4, 4);
		memcpy(o.dst_addr, O4, 4);
		apply_or_die(RF_POLICY_OP_OUTPUT_ADD, &o, sizeof(o));
		if (k + 1 == RF_KT_MAX_OUTS && kernel_of(4) != 1)
			bad++, fprintf(stderr, "%u outputs: still the kernel tier\n", RF_KT_MAX_OUTS);
	}
	c0 = reason(RF_KT_C_CONSUMED);
	out_len = sizeof(out);
	ret = rf_ktier_test_run(K, 0, f, n, out, &out_len);
	if (kernel_of(4) != 0 || ret != TC_SHOT || reason(RF_KT_C_CONSUMED) != c0 + 1)
		bad++, fprintf(stderr, "%u outputs: the user tier, the program only consumes (kernel=%d ret=%d)\n",
			       RF_KT_MAX_OUTS + 1, kernel_of(4), ret);
	{
		struct rf_policy_output_ref rm = { .relay_id = 4, .output_id = 100 + RF_KT_MAX_OUTS };

		apply_or_die(RF_POLICY_OP_OUTPUT_REMOVE, &rm, sizeof(rm));
	}
	out_len = sizeof(out);
	ret = rf_ktier_test_run(K, RF_KT_MAX_OUTS, f, n, out, &out_len);
	if (kernel_of(4) != 1 || ret != KT_REWRITTEN)
		bad++, fprintf(stderr, "back to %u outputs: the kernel tier, the 64th output rewritten (kernel=%d ret=%d)\n",
			       RF_KT_MAX_OUTS, kernel_of(4), ret);
	printf("# kernel token bucket; tier switches at %u/%u outputs: %s\n", RF_KT_MAX_OUTS + 1, RF_KT_MAX_OUTS, bad ? "FAIL" : "ok");
	return bad;
}

int main(void)
{
	struct rf_ktier_config kc = { .bpf_object = OBJ, .ifname = "none", .ifindex = 0, .mtu = 1500,
				      .tier = RF_TIER_KERNEL, .max_counters = 256 };
	char err[256] = "", why[128], dir[] = "/tmp/rf-diff-XXXXXX";
	char *args[] = { (char *)"gen_seeds", dir, NULL };
	int relaying, rc;

	if (geteuid() != 0) {
		printf("skip: BPF_PROG_TEST_RUN needs root (CAP_BPF)\n");
		return 77;
	}
	if (access(OBJ, R_OK)) {
		printf("skip: %s not found (run from engine/)\n", OBJ);
		return 77;
	}
	R = rf_relay_create(OC, 256, (const uint8_t *)"\x02\xaa\xbb\xcc\xdd\xee", 1500);
	rc = rf_ktier_open(&K, &kc, &relaying, why, sizeof(why), err, sizeof(err));
	if (rc == -ENOENT && strstr(err, "libbpf")) {
		printf("skip: %s\n", err);
		return 77;
	}
	if (rc) {
		fprintf(stderr, "kernel tier: %s\n", err);
		return 1;
	}
	rf_relay_set_ktier(R, K);
	build_table();
	if (!mkdtemp(dir) || gen_seeds_main(2, args)) {
		fprintf(stderr, "cannot write the seed corpus\n");
		return 1;
	}
	check_dir(dir, 0);
	check_dir("out/fuzz/rewrite/corpus", 0);
	check_dir("out/fuzz/parse/corpus", 1);
	generated(3000);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd)) {
		}
	}
	failures += tier_switches();
	printf("# %d frames (%d too short for BPF_PROG_TEST_RUN), %d relayed by C, %d output frames compared byte for byte, %d differences\n",
	       frames_seen, untestable, relayed_checked, outputs_checked, failures);
	rf_ktier_close(K);
	rf_relay_destroy(R);
	if (relayed_checked < 100 || outputs_checked < 200) {
		fprintf(stderr, "too few relayed frames to mean anything\n");
		return 1;
	}
	return failures ? 1 : 0;
}
