/* SPDX-License-Identifier: MIT */
/*
 * engine/src/libbpf_min.h declares the libbpf 1.1 structs the kernel tier
 * passes to libbpf.so.1 (the engine builds without libbpf's headers). Where
 * libbpf-dev is installed, check every field's offset and every struct's
 * size against the real ones; exits 77 where it is not.
 */
#include <stdio.h>

#if __has_include(<bpf/libbpf.h>)
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stddef.h>

#include "libbpf_min.h"

#define SAME(ours, theirs, f) _Static_assert(offsetof(struct ours, f) == offsetof(struct theirs, f), #ours "." #f)

_Static_assert(sizeof(struct rf_bpf_tc_hook) == sizeof(struct bpf_tc_hook), "bpf_tc_hook size");
SAME(rf_bpf_tc_hook, bpf_tc_hook, sz);
SAME(rf_bpf_tc_hook, bpf_tc_hook, ifindex);
SAME(rf_bpf_tc_hook, bpf_tc_hook, attach_point);
SAME(rf_bpf_tc_hook, bpf_tc_hook, parent);
_Static_assert(sizeof(struct rf_bpf_tc_opts) == sizeof(struct bpf_tc_opts), "bpf_tc_opts size");
SAME(rf_bpf_tc_opts, bpf_tc_opts, sz);
SAME(rf_bpf_tc_opts, bpf_tc_opts, prog_fd);
SAME(rf_bpf_tc_opts, bpf_tc_opts, flags);
SAME(rf_bpf_tc_opts, bpf_tc_opts, prog_id);
SAME(rf_bpf_tc_opts, bpf_tc_opts, handle);
SAME(rf_bpf_tc_opts, bpf_tc_opts, priority);
_Static_assert(sizeof(struct rf_bpf_test_run_opts) == sizeof(struct bpf_test_run_opts), "bpf_test_run_opts size");
SAME(rf_bpf_test_run_opts, bpf_test_run_opts, data_in);
SAME(rf_bpf_test_run_opts, bpf_test_run_opts, data_out);
SAME(rf_bpf_test_run_opts, bpf_test_run_opts, data_size_in);
SAME(rf_bpf_test_run_opts, bpf_test_run_opts, data_size_out);
SAME(rf_bpf_test_run_opts, bpf_test_run_opts, ctx_in);
SAME(rf_bpf_test_run_opts, bpf_test_run_opts, retval);
SAME(rf_bpf_test_run_opts, bpf_test_run_opts, repeat);
SAME(rf_bpf_test_run_opts, bpf_test_run_opts, duration);
SAME(rf_bpf_test_run_opts, bpf_test_run_opts, flags);
SAME(rf_bpf_test_run_opts, bpf_test_run_opts, cpu);
SAME(rf_bpf_test_run_opts, bpf_test_run_opts, batch_size);
_Static_assert((int)RF_BPF_TC_INGRESS == (int)BPF_TC_INGRESS && (int)RF_BPF_TC_EGRESS == (int)BPF_TC_EGRESS, "attach points");
_Static_assert((int)RF_BPF_TC_F_REPLACE == (int)BPF_TC_F_REPLACE, "BPF_TC_F_REPLACE");

int main(void)
{
	printf("libbpf_min.h matches libbpf %d.%d's headers\n", LIBBPF_MAJOR_VERSION, LIBBPF_MINOR_VERSION);
	return 0;
}
#else
int main(void)
{
	printf("skip: no libbpf headers (apt-get install libbpf-dev): nothing to compare libbpf_min.h with\n");
	return 77;
}
#endif
