/* SPDX-License-Identifier: MIT */
/* libbpf.so.1 at run time (libbpf_min.h says why). */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libbpf_min.h"

/* libbpf's warnings go nowhere: the engine reports one line of its own */
static int quiet(int level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

int rf_libbpf_open(struct rf_libbpf *lb, char *err, size_t errlen)
{
	/* REFLECTOR_LIBBPF: another file name (the tests name a missing one to
	 * check the fallback) */
	const char *name = getenv("REFLECTOR_LIBBPF");

	memset(lb, 0, sizeof(*lb));
	if (!name || !name[0])
		name = "libbpf.so.1";
	lb->handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!lb->handle) {
		snprintf(err, errlen, "cannot load %s (install the libbpf1 package): %s", name, dlerror());
		return -1;
	}
#define SYM(name)                                                                            \
	do {                                                                                 \
		*(void **)&lb->name = dlsym(lb->handle, #name);                              \
		if (!lb->name) {                                                             \
			snprintf(err, errlen, "libbpf.so.1 has no %s (need libbpf 1.0 or later)", #name); \
			dlclose(lb->handle);                                                 \
			lb->handle = NULL;                                                   \
			return -1;                                                           \
		}                                                                            \
	} while (0)
	SYM(bpf_object__open_mem);
	SYM(bpf_object__load);
	SYM(bpf_object__close);
	SYM(bpf_object__find_program_by_name);
	SYM(bpf_object__find_map_by_name);
	SYM(bpf_program__fd);
	SYM(bpf_map__fd);
	SYM(bpf_map__reuse_fd);
	SYM(bpf_tc_hook_create);
	SYM(bpf_tc_hook_destroy);
	SYM(bpf_tc_attach);
	SYM(bpf_tc_detach);
	SYM(bpf_tc_query);
	SYM(bpf_map_update_elem);
	SYM(bpf_map_lookup_elem);
	SYM(bpf_map_delete_elem);
	SYM(bpf_obj_pin);
	SYM(bpf_obj_get);
	SYM(bpf_prog_test_run_opts);
	SYM(libbpf_num_possible_cpus);
	SYM(bpf_map_get_next_key);
	SYM(bpf_prog_get_fd_by_id);
	SYM(bpf_map_get_fd_by_id);
	SYM(bpf_obj_get_info_by_fd);
	SYM(libbpf_set_print);
#undef SYM
	lb->libbpf_set_print(quiet);
	return 0;
}

void rf_libbpf_close(struct rf_libbpf *lb)
{
	if (lb->handle)
		dlclose(lb->handle);
	memset(lb, 0, sizeof(*lb));
}
