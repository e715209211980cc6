/* SPDX-License-Identifier: MIT */
/*
 * The part of the libbpf 1.1 API the kernel tier uses, declared here so the
 * engine builds without libbpf's headers and loads libbpf.so.1 (the libbpf1
 * runtime package, present on a fresh machine) with dlopen() at run time:
 * a machine without it falls back to the user tier with one log line.
 * Layouts copied from libbpf 1.1.2's libbpf.h and bpf.h (ABI-stable: the
 * `sz` field versions each struct); engine/test/test_libbpf_abi.c checks
 * them against the real headers where libbpf-dev is installed.
 */
#ifndef REFLECTOR_LIBBPF_MIN_H
#define REFLECTOR_LIBBPF_MIN_H

#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>

struct bpf_object;
struct bpf_program;
struct bpf_map;

enum rf_bpf_tc_attach_point {
	RF_BPF_TC_INGRESS = 1 << 0,
	RF_BPF_TC_EGRESS = 1 << 1,
	RF_BPF_TC_CUSTOM = 1 << 2,
};
#define RF_BPF_TC_F_REPLACE (1u << 0)

struct rf_bpf_tc_hook {
	size_t sz;
	int ifindex;
	int attach_point;       /* enum bpf_tc_attach_point */
	uint32_t parent;
	size_t : 0;
};

struct rf_bpf_tc_opts {
	size_t sz;
	int prog_fd;
	uint32_t flags;
	uint32_t prog_id;
	uint32_t handle;
	uint32_t priority;
	size_t : 0;
};

struct rf_bpf_test_run_opts {
	size_t sz;
	const void *data_in;
	void *data_out;
	uint32_t data_size_in;
	uint32_t data_size_out;
	const void *ctx_in;
	void *ctx_out;
	uint32_t ctx_size_in;
	uint32_t ctx_size_out;
	uint32_t retval;
	int repeat;
	uint32_t duration;
	uint32_t flags;
	uint32_t cpu;
	uint32_t batch_size;
};

enum rf_libbpf_print_level { RF_LIBBPF_WARN, RF_LIBBPF_INFO, RF_LIBBPF_DEBUG };
typedef int (*rf_libbpf_print_fn)(int level, const char *fmt, va_list ap);

/* The functions, resolved by name from libbpf.so.1 (ktier_lib.c). */
struct rf_libbpf {
	void *handle;
	struct bpf_object *(*bpf_object__open_mem)(const void *buf, size_t sz, const void *opts);
	int (*bpf_object__load)(struct bpf_object *obj);
	void (*bpf_object__close)(struct bpf_object *obj);
	struct bpf_program *(*bpf_object__find_program_by_name)(const struct bpf_object *obj, const char *name);
	struct bpf_map *(*bpf_object__find_map_by_name)(const struct bpf_object *obj, const char *name);
	int (*bpf_program__fd)(const struct bpf_program *prog);
	int (*bpf_map__fd)(const struct bpf_map *map);
	int (*bpf_map__reuse_fd)(struct bpf_map *map, int fd);
	int (*bpf_tc_hook_create)(struct rf_bpf_tc_hook *hook);
	int (*bpf_tc_hook_destroy)(struct rf_bpf_tc_hook *hook);
	int (*bpf_tc_attach)(const struct rf_bpf_tc_hook *hook, struct rf_bpf_tc_opts *opts);
	int (*bpf_tc_detach)(const struct rf_bpf_tc_hook *hook, const struct rf_bpf_tc_opts *opts);
	int (*bpf_tc_query)(const struct rf_bpf_tc_hook *hook, struct rf_bpf_tc_opts *opts);
	int (*bpf_map_update_elem)(int fd, const void *key, const void *value, uint64_t flags);
	int (*bpf_map_lookup_elem)(int fd, const void *key, void *value);
	int (*bpf_map_delete_elem)(int fd, const void *key);
	int (*bpf_obj_pin)(int fd, const char *path);
	int (*bpf_obj_get)(const char *path);
	int (*bpf_prog_test_run_opts)(int prog_fd, struct rf_bpf_test_run_opts *opts);
	int (*libbpf_num_possible_cpus)(void);
	int (*bpf_map_get_next_key)(int fd, const void *key, void *next_key);
	int (*bpf_prog_get_fd_by_id)(uint32_t id);
	int (*bpf_map_get_fd_by_id)(uint32_t id);
	int (*bpf_obj_get_info_by_fd)(int fd, void *info, uint32_t *info_len);
	rf_libbpf_print_fn (*libbpf_set_print)(rf_libbpf_print_fn fn);
};

/* Open libbpf.so.1 and resolve every function above. 0, or -1 with the
 * reason (dlerror's) in err. */
int rf_libbpf_open(struct rf_libbpf *lb, char *err, size_t errlen);
void rf_libbpf_close(struct rf_libbpf *lb);

#endif
