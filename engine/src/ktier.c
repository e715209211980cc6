/* SPDX-License-Identifier: MIT */
/*
 * The kernel tier's loader and table mirror (ktier.h). libbpf.so.1 is
 * opened at run time (libbpf_min.h); the object is read from the path the
 * caller gives (the committed engine/bpf/relay.bpf.o). The program is
 * attached with tc (clsact ingress, handle RF_KT_HANDLE, priority
 * RF_KT_PRIO) inside the engine's namespace; the maps live as long as the
 * program holds them.
 *
 * Mirror: each relay owns one of RF_KT_MAX_RELAYS slots, and each slot
 * RF_KT_BUFS buffers in rf_relays. An update writes the relay's next buffer
 * and then points rf_keys at it with one map update (relay_abi.h), so a
 * packet meets one version of the relay: an output present in both sees
 * every packet exactly once. The RX thread is the only writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../bpf/relay_abi.h"
#include "ktier.h"
#include "libbpf_min.h"
#include "relay_int.h"

#define RF_KT_HANDLE 0x52460001u /* "RF" */
#define RF_KT_PRIO   1u
#define RF_KT_DEFAULT_ORPHAN_S 30u

/* the program's counter indexes are the engine's */
_Static_assert(RF_KT_C_RX_PACKETS == RF_C_RX_PACKETS, "RX_PACKETS");
_Static_assert(RF_KT_C_RX_BYTES == RF_C_RX_BYTES, "RX_BYTES");
_Static_assert(RF_KT_C_DROP_BAD_LEN == RF_C_DROP_BAD_LEN, "DROP_BAD_LEN");
_Static_assert(RF_KT_C_DROP_TX_ERROR == RF_C_DROP_TX_ERROR, "DROP_TX_ERROR");
_Static_assert(RF_KT_C_RELAY_IN == RF_C_RELAY_IN, "RELAY_IN");
_Static_assert(RF_KT_C_RELAY_OUT == RF_C_RELAY_OUT, "RELAY_OUT");
_Static_assert(RF_KT_C_DROP_NOT_ALLOWED == RF_C_DROP_NOT_ALLOWED, "DROP_NOT_ALLOWED");
_Static_assert(RF_KT_C_DROP_MALFORMED == RF_C_DROP_MALFORMED, "DROP_MALFORMED");
_Static_assert(RF_KT_C_DROP_FRAGMENT == RF_C_DROP_FRAGMENT, "DROP_FRAGMENT");
_Static_assert(RF_KT_C_DROP_NO_NEIGHBOUR == RF_C_DROP_NO_NEIGHBOUR, "DROP_NO_NEIGHBOUR");
_Static_assert(RF_KT_C_RX_UNMATCHED == RF_C_RX_UNMATCHED, "RX_UNMATCHED");
_Static_assert(RF_KT_C_DROP_RATE_LIMIT == RF_C_DROP_RATE_LIMIT, "DROP_RATE_LIMIT");
_Static_assert(RF_C_COUNT_USED <= RF_KT_C_ORPHAN_PASS, "kernel-only reasons after the engine's");
_Static_assert(RF_KT_MAX_RELAYS == RF_RELAY_MAX_RELAYS, "relays");
_Static_assert(RF_KT_MAX_PREFIXES == RF_RELAY_MAX_PREFIXES, "prefixes");
_Static_assert(RF_KT_HDR_MAX == RF_RELAY_HDR_MAX, "header template");

struct kt_slot {
	uint8_t used;
	uint8_t cur;            /* buffer rf_keys points at */
	uint32_t relay_id;
	struct rf_kt_key key;
};

/* A relay the previous server left in the maps (adoption). */
struct kt_adopted {
	struct rf_kt_key key;
	uint32_t buf;
};

struct rf_ktier {
	struct rf_libbpf lb;
	/* adoption (hitless restart): the maps of the program found at our tc
	 * handle; relays keep running from them until rf_ktier_commit() */
	int adopting;
	uint32_t n_adopted;
	struct kt_adopted adopted[RF_KT_MAX_RELAYS];
	struct bpf_object *obj;
	int prog_fd, keys_fd, addrs_fd, relays_fd, ocnt_fd, reason_fd, conf_fd, limits_fd;
	int ifindex;
	int created_qdisc;
	int relaying;           /* kernel relays allowed */
	/* the relay a capture is armed on (RF_RELAY_NONE: none): it relays in
	 * the user tier while captured, where the RX thread copies its frames */
	uint32_t captured;
	int ncpu;
	uint32_t max_counters;
	char netns[256];
	struct rf_kt_conf conf;
	struct kt_slot slots[RF_KT_MAX_RELAYS];
	struct rf_kt_relay scratch;
	void *pcpu;             /* ncpu values of the largest per-CPU map */
	/* watchdog heartbeat */
	pthread_t hb;
	int hb_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int hb_stop;
	uint64_t hb_period_ns;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Run in the engine's namespace: setns there and back on this thread (the
 * netlink socket libbpf opens for tc is bound to the namespace it is made in). */
static int ns_enter(const char *netns, int *orig, char *err, size_t errlen)
{
	char path[300];
	int fd;

	*orig = -1;
	if (!netns || !netns[0])
		return 0;
	snprintf(path, sizeof(path), strchr(netns, '/') ? "%s" : "/run/netns/%s", netns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	*orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || *orig < 0 || setns(fd, CLONE_NEWNET)) {
		int e = errno;

		snprintf(err, errlen, "cannot enter network namespace %s: %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		if (*orig >= 0)
			close(*orig);
		*orig = -1;
		return -e;
	}
	close(fd);
	return 0;
}

static void ns_leave(int orig)
{
	if (orig < 0)
		return;
	/* back to where we came from, whatever happened */
	if (setns(orig, CLONE_NEWNET))
		perror("reflector: kernel tier: setns back");
	close(orig);
}

static void *heartbeat_main(void *arg)
{
	struct rf_ktier *k = arg;
	uint32_t zero = 0;

	pthread_mutex_lock(&k->mu);
	while (!k->hb_stop) {
		struct timespec ts;
		uint64_t until;

		k->conf.heartbeat_ns = mono_ns();
		k->lb.bpf_map_update_elem(k->conf_fd, &zero, &k->conf, 0);
		clock_gettime(CLOCK_REALTIME, &ts);
		until = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + k->hb_period_ns;
		ts.tv_sec = (time_t)(until / 1000000000ull);
		ts.tv_nsec = (long)(until % 1000000000ull);
		pthread_cond_timedwait(&k->cv, &k->mu, &ts);
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

static int write_conf(struct rf_ktier *k)
{
	uint32_t zero = 0;
	int rc;

	pthread_mutex_lock(&k->mu);
	k->conf.heartbeat_ns = mono_ns();
	rc = k->lb.bpf_map_update_elem(k->conf_fd, &zero, &k->conf, 0);
	pthread_mutex_unlock(&k->mu);
	return rc;
}

static int read_file(const char *path, void **buf, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), e;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || st.st_size <= 0 || st.st_size > (64 << 20)) {
		e = errno ? errno : EINVAL;
		close(fd);
		return -e;
	}
	*buf = malloc((size_t)st.st_size);
	if (!*buf) {
		close(fd);
		return -ENOMEM;
	}
	n = read(fd, *buf, (size_t)st.st_size);
	e = errno;
	close(fd);
	if (n != st.st_size) {
		free(*buf);
		*buf = NULL;
		return n < 0 ? -e : -EIO;
	}
	*len = (size_t)n;
	return 0;
}

static int map_fd(struct rf_ktier *k, const char *name)
{
	struct bpf_map *m = k->lb.bpf_object__find_map_by_name(k->obj, name);

	return m ? k->lb.bpf_map__fd(m) : -1;
}

static void detach(struct rf_ktier *k)
{
	struct rf_bpf_tc_hook hook = { .sz = sizeof(hook), .ifindex = k->ifindex,
				       .attach_point = RF_BPF_TC_INGRESS };
	struct rf_bpf_tc_opts opts = { .sz = sizeof(opts), .handle = RF_KT_HANDLE,
				       .priority = RF_KT_PRIO };
	char err[160];
	int orig;

	if (ns_enter(k->netns, &orig, err, sizeof(err)))
		return;
	k->lb.bpf_tc_detach(&hook, &opts);
	if (k->created_qdisc) {
		/* clsact was ours: remove it (ingress and egress go together) */
		hook.attach_point = RF_BPF_TC_INGRESS | RF_BPF_TC_EGRESS;
		k->lb.bpf_tc_hook_destroy(&hook);
	}
	ns_leave(orig);
}

/* Our maps: name, key size, value size, entries (relay_abi.h). */
static const struct {
	const char *name;
	uint32_t key, value, entries;
} MAPS[] = {
	{ RF_KT_MAP_KEYS, sizeof(struct rf_kt_key), sizeof(struct rf_kt_ref), RF_KT_MAX_RELAYS },
	{ RF_KT_MAP_ADDRS, sizeof(struct rf_kt_key), 4, RF_KT_MAX_RELAYS },
	{ RF_KT_MAP_RELAYS, 4, sizeof(struct rf_kt_relay), RF_KT_MAX_RELAYS * RF_KT_BUFS },
	{ RF_KT_MAP_OCNT, 4, sizeof(struct rf_kt_ocnt), RF_KT_MAX_COUNTERS },
	{ RF_KT_MAP_REASON, 4, 8, RF_KT_REASONS },
	{ RF_KT_MAP_CONF, 4, sizeof(struct rf_kt_conf), 1 },
	{ RF_KT_MAP_LIMITS, 4, sizeof(struct rf_kt_limit), RF_KT_MAX_RELAYS },
};
#define N_MAPS (sizeof(MAPS) / sizeof(MAPS[0]))
/* MAPS[] index of the conf map (heartbeat, owner) */
#define RF_KT_CONF_INDEX 5
/* a heartbeat younger than this is a live engine's (its period is at most 1 s) */
#define RF_KT_LIVE_NS 3000000000ull

/*
 * The state a previous (crashed or upgraded) server left on this
 * interface: the program at our tc handle, and through its map ids its
 * maps. The new object is loaded over the same maps (bpf_map__reuse_fd),
 * so relaying never stops; a program of another layout is not adopted
 * (replaced, with fresh maps). Found through the filter, not a bpffs pin:
 * `ip netns exec` gives each caller a fresh /sys, so a pin under
 * /sys/fs/bpf is not shared between a server and its successor; the
 * filter lives in the namespace itself. 1: adopted, 0: nothing to adopt.
 */
/* killed but not yet reaped by its parent: as dead as it gets */
static int pid_is_zombie(pid_t pid)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* "pid (comm) S ...": the state follows the last ')' */
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/*
 * A live engine still owns the program at our handle: its process exists
 * and its heartbeat is fresh (the heartbeat thread dies with the process,
 * so a crashed server's is at most one period old and its pid is gone).
 * Two engines on one interface would relay each other's policy: the second
 * one is refused instead of adopting.
 */
static int live_owner(struct rf_ktier *k, int conf_fd, char *err, size_t errlen)
{
	struct rf_kt_conf c;
	uint32_t zero = 0;
	uint64_t now = mono_ns(), age;

	if (conf_fd < 0 || k->lb.bpf_map_lookup_elem(conf_fd, &zero, &c) || !c.owner_pid ||
	    c.owner_pid == (uint32_t)getpid())
		return 0;
	if (kill((pid_t)c.owner_pid, 0) && errno == ESRCH)
		return 0;
	if (pid_is_zombie((pid_t)c.owner_pid))
		return 0;
	age = now > c.heartbeat_ns ? now - c.heartbeat_ns : 0;
	if (age > RF_KT_LIVE_NS)
		return 0;
	snprintf(err, errlen, "another Reflector engine (pid %u, heartbeat %llu ms ago) serves this "
		 "interface's tc ingress; one engine per interface", c.owner_pid,
		 (unsigned long long)(age / 1000000ull));
	return -EBUSY;
}

static int adopt(struct rf_ktier *k, int ifindex, char *err, size_t errlen)
{
	struct rf_bpf_tc_hook hook = { .sz = sizeof(hook), .ifindex = ifindex, .attach_point = RF_BPF_TC_INGRESS };
	struct rf_bpf_tc_opts q = { .sz = sizeof(q), .handle = RF_KT_HANDLE, .priority = RF_KT_PRIO };
	struct bpf_prog_info pi;
	uint32_t ids[16], len = sizeof(pi), i, m;
	int fds[N_MAPS], pfd, orig, found = 0, ok = 1;
	char nserr[160];

	if (ns_enter(k->netns, &orig, nserr, sizeof(nserr)))
		return 0;
	if (k->lb.bpf_tc_query(&hook, &q))
		q.prog_id = 0;
	ns_leave(orig);
	if (!q.prog_id)
		return 0;
	pfd = k->lb.bpf_prog_get_fd_by_id(q.prog_id);
	if (pfd < 0)
		return 0;
	memset(&pi, 0, sizeof(pi));
	pi.nr_map_ids = 16;
	pi.map_ids = (uint64_t)(uintptr_t)ids;
	if (k->lb.bpf_obj_get_info_by_fd(pfd, &pi, &len) || strcmp(pi.name, RF_KT_PROG) || pi.nr_map_ids > 16) {
		close(pfd);
		return 0;
	}
	close(pfd);
	for (m = 0; m < N_MAPS; m++)
		fds[m] = -1;
	for (i = 0; i < pi.nr_map_ids; i++) {
		struct bpf_map_info mi;
		uint32_t ml = sizeof(mi);
		int fd = k->lb.bpf_map_get_fd_by_id(ids[i]);

		if (fd < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		if (k->lb.bpf_obj_get_info_by_fd(fd, &mi, &ml)) {
			close(fd);
			continue;
		}
		for (m = 0; m < N_MAPS; m++) {
			if (strcmp(mi.name, MAPS[m].name) || fds[m] >= 0)
				continue;
			if (mi.key_size != MAPS[m].key || mi.value_size != MAPS[m].value ||
			    mi.max_entries != MAPS[m].entries)
				ok = 0;
			fds[m] = fd;
			fd = -1;
			found++;
		}
		if (fd >= 0)
			close(fd);
	}
	if (ok && found == (int)N_MAPS) {
		int busy = live_owner(k, fds[RF_KT_CONF_INDEX], err, errlen);

		if (busy) {
			for (m = 0; m < N_MAPS; m++)
				if (fds[m] >= 0)
					close(fds[m]);
			return busy;
		}
		for (m = 0; m < N_MAPS && ok; m++) {
			struct bpf_map *bm = k->lb.bpf_object__find_map_by_name(k->obj, MAPS[m].name);

			ok = bm && !k->lb.bpf_map__reuse_fd(bm, fds[m]);
		}
	} else {
		ok = 0;
	}
	if (ok) {
		struct rf_kt_key key, next;
		const void *prev = NULL;

		/* the relays it was running: kept until the new table is complete */
		while (k->n_adopted < RF_KT_MAX_RELAYS && !k->lb.bpf_map_get_next_key(fds[0], prev, &next)) {
			struct rf_kt_ref ref;

			key = next;
			prev = &key;
			if (k->lb.bpf_map_lookup_elem(fds[0], &key, &ref) || ref.buf >= RF_KT_MAX_RELAYS * RF_KT_BUFS)
				continue;
			k->adopted[k->n_adopted].key = key;
			k->adopted[k->n_adopted].buf = ref.buf;
			k->n_adopted++;
		}
		k->adopting = 1;
	}
	/* reuse_fd dup()s: ours are closed either way */
	for (m = 0; m < N_MAPS; m++)
		if (fds[m] >= 0)
			close(fds[m]);
	return ok;
}

int rf_ktier_open(struct rf_ktier **out, const struct rf_ktier_config *cfg, int *relaying,
		  char *why, size_t whylen, char *err, size_t errlen)
{
	struct rf_ktier *k;
	struct bpf_program *prog;
	struct rf_bpf_tc_hook hook = { .sz = sizeof(hook), .attach_point = RF_BPF_TC_INGRESS };
	struct rf_bpf_tc_opts opts = { .sz = sizeof(opts), .handle = RF_KT_HANDLE,
				       .priority = RF_KT_PRIO, .flags = RF_BPF_TC_F_REPLACE };
	void *obj = NULL;
	size_t obj_len = 0;
	int rc, orig;

	*out = NULL;
	*relaying = 0;
	if (why && whylen)
		why[0] = 0;
	if (!cfg->bpf_object || !cfg->bpf_object[0]) {
		snprintf(err, errlen, "no BPF object given");
		return -EINVAL;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	k->ifindex = cfg->ifindex;
	k->captured = RF_RELAY_NONE;
	k->max_counters = cfg->max_counters < RF_KT_MAX_COUNTERS ? cfg->max_counters : RF_KT_MAX_COUNTERS;
	if (cfg->netns)
		snprintf(k->netns, sizeof(k->netns), "%s", cfg->netns);
	if (rf_libbpf_open(&k->lb, err, errlen)) {
		rc = -ENOENT;
		goto fail;
	}
	rc = read_file(cfg->bpf_object, &obj, &obj_len);
	if (rc) {
		snprintf(err, errlen, "cannot read %s: %s", cfg->bpf_object, strerror(-rc));
		goto fail;
	}
	k->obj = k->lb.bpf_object__open_mem(obj, obj_len, NULL);
	free(obj);
	if (!k->obj) {
		rc = errno ? -errno : -EINVAL;
		snprintf(err, errlen, "%s is not a BPF object libbpf can open: %s", cfg->bpf_object, strerror(-rc));
		k->obj = NULL;
		goto fail;
	}
	if (cfg->ifindex > 0) {
		rc = adopt(k, cfg->ifindex, err, errlen);
		if (rc < 0)
			goto fail;
	}
	rc = k->lb.bpf_object__load(k->obj);
	if (rc) {
		snprintf(err, errlen, "the kernel refused the tc program (%s): %s%s", cfg->bpf_object,
			 strerror(-rc), rc == -EPERM ? " (needs CAP_BPF and CAP_NET_ADMIN)" : "");
		goto fail;
	}
	prog = k->lb.bpf_object__find_program_by_name(k->obj, RF_KT_PROG);
	k->prog_fd = prog ? k->lb.bpf_program__fd(prog) : -1;
	k->keys_fd = map_fd(k, RF_KT_MAP_KEYS);
	k->addrs_fd = map_fd(k, RF_KT_MAP_ADDRS);
	k->relays_fd = map_fd(k, RF_KT_MAP_RELAYS);
	k->ocnt_fd = map_fd(k, RF_KT_MAP_OCNT);
	k->reason_fd = map_fd(k, RF_KT_MAP_REASON);
	k->conf_fd = map_fd(k, RF_KT_MAP_CONF);
	k->limits_fd = map_fd(k, RF_KT_MAP_LIMITS);
	if (k->prog_fd < 0 || k->keys_fd < 0 || k->addrs_fd < 0 || k->relays_fd < 0 || k->ocnt_fd < 0 ||
	    k->reason_fd < 0 || k->conf_fd < 0 || k->limits_fd < 0) {
		snprintf(err, errlen, "%s lacks the program or a map of relay_abi.h (another version?)",
			 cfg->bpf_object);
		rc = -EINVAL;
		goto fail;
	}
	k->ncpu = k->lb.libbpf_num_possible_cpus();
	if (k->ncpu <= 0) {
		rc = k->ncpu ? k->ncpu : -EINVAL;
		snprintf(err, errlen, "cannot count the possible CPUs: %s", strerror(-rc));
		goto fail;
	}
	k->pcpu = calloc((size_t)k->ncpu, sizeof(struct rf_kt_ocnt));
	if (!k->pcpu) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	k->conf.ifindex = (uint32_t)cfg->ifindex;
	k->conf.owner_pid = (uint32_t)getpid();
	k->conf.mtu = cfg->mtu ? cfg->mtu : 1500;
	k->conf.orphan_ns = (uint64_t)(cfg->orphan_s ? cfg->orphan_s : RF_KT_DEFAULT_ORPHAN_S) * 1000000000ull;
	rc = write_conf(k);
	if (rc) {
		snprintf(err, errlen, "cannot write the program's configuration: %s", strerror(-rc));
		goto fail;
	}

	/* no interface: loaded but not attached (BPF_PROG_TEST_RUN only) */
	if (cfg->ifindex <= 0)
		goto attached;
	rc = ns_enter(k->netns, &orig, err, errlen);
	if (rc)
		goto fail;
	hook.ifindex = cfg->ifindex;
	rc = k->lb.bpf_tc_hook_create(&hook);
	if (rc == 0)
		k->created_qdisc = 1;
	else if (rc == -EEXIST)
		rc = 0;
	if (!rc) {
		opts.prog_fd = k->prog_fd;
		/* REPLACE: a crashed server's program at our handle is replaced in one step */
		rc = k->lb.bpf_tc_attach(&hook, &opts);
	}
	ns_leave(orig);
	if (rc) {
		snprintf(err, errlen, "cannot attach the tc ingress program to %s%s%s: %s", cfg->ifname,
			 k->netns[0] ? " in namespace " : "", k->netns, strerror(-rc));
		if (k->created_qdisc) {
			hook.attach_point = RF_BPF_TC_INGRESS | RF_BPF_TC_EGRESS;
			if (!ns_enter(k->netns, &orig, err + strlen(err), 0)) {
				k->lb.bpf_tc_hook_destroy(&hook);
				ns_leave(orig);
			}
		}
		goto fail;
	}

attached:
	k->hb_period_ns = k->conf.orphan_ns / 4;
	if (k->hb_period_ns > 1000000000ull)
		k->hb_period_ns = 1000000000ull;
	if (pthread_create(&k->hb, NULL, heartbeat_main, k) == 0)
		k->hb_started = 1;
	else
		k->conf.orphan_ns = 0; /* no heartbeat thread: no watchdog rather than a false orphan */

	if (cfg->tier == RF_TIER_USER) {
		snprintf(why, whylen, "engine.relay_tier is user");
	} else {
		k->relaying = 1;
	}
	*relaying = k->relaying;
	*out = k;
	return 0;
fail:
	rf_ktier_close(k);
	return rc < 0 ? rc : -EINVAL;
}

void rf_ktier_close(struct rf_ktier *k)
{
	if (!k)
		return;
	if (k->hb_started) {
		pthread_mutex_lock(&k->mu);
		k->hb_stop = 1;
		pthread_cond_signal(&k->cv);
		pthread_mutex_unlock(&k->mu);
		pthread_join(k->hb, NULL);
	}
	if (k->obj) {
		if (k->prog_fd > 0 && k->ifindex > 0)
			detach(k);
		k->lb.bpf_object__close(k->obj);
	}
	rf_libbpf_close(&k->lb);
	free(k->pcpu);
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
	free(k);
}

/* ------------------------------------------------------------ mirror -- */

static struct kt_slot *slot_of(struct rf_ktier *k, uint32_t relay_id)
{
	uint32_t i;

	for (i = 0; i < RF_KT_MAX_RELAYS; i++)
		if (k->slots[i].used && k->slots[i].relay_id == relay_id)
			return &k->slots[i];
	return NULL;
}

static struct kt_slot *slot_take(struct rf_ktier *k, uint32_t relay_id)
{
	uint32_t i;

	for (i = 0; i < RF_KT_MAX_RELAYS; i++) {
		if (!k->slots[i].used) {
			memset(&k->slots[i], 0, sizeof(k->slots[i]));
			k->slots[i].used = 1;
			k->slots[i].relay_id = relay_id;
			return &k->slots[i];
		}
	}
	return NULL;
}

static void zero_slot(struct rf_ktier *k, uint32_t slot)
{
	if (slot >= k->max_counters)
		return;
	memset(k->pcpu, 0, (size_t)k->ncpu * sizeof(struct rf_kt_ocnt));
	k->lb.bpf_map_update_elem(k->ocnt_fd, &slot, k->pcpu, 0);
}

static uint32_t be_mask(int bits)
{
	uint32_t m;

	if (bits <= 0)
		return 0;
	m = bits >= 32 ? 0xffffffffu : ~(0xffffffffu >> bits);
	return __builtin_bswap32(m);
}

static void build(struct rf_ktier *k, const struct rf_relay_table *t, const struct rf_relay_ent *e,
		  uint8_t mode)
{
	struct rf_kt_relay *v = &k->scratch;
	uint32_t i, w, n;

	memset(v, 0, sizeof(*v));
	v->id = e->id;
	v->counter = e->counter;
	v->family = e->family;
	v->mode = mode;
	v->n_prefix = e->n_prefix;
	v->last = 0xff;
	for (i = 0; i < e->n_prefix && i < RF_KT_MAX_PREFIXES; i++) {
		const struct rf_relay_prefix *p = &e->prefix[i];

		for (w = 0; w < 4; w++) {
			uint32_t a;

			v->prefix[i].mask[w] = be_mask((int)p->length - 32 * (int)w);
			memcpy(&a, p->addr + 4 * w, 4);
			v->prefix[i].addr[w] = a & v->prefix[i].mask[w];
		}
	}
	n = e->out_count < RF_KT_MAX_OUTS ? e->out_count : RF_KT_MAX_OUTS;
	v->n_out = mode != RF_KT_CONSUME ? n : 0;
	for (i = 0; i < v->n_out; i++) {
		const struct rf_relay_out *o = &t->outs[e->out_first + i];
		struct rf_kt_out *d = &v->out[i];

		d->id = o->id;
		d->flags = o->flags;
		d->dscp = o->dscp;
		d->hdr_len = o->hdr_len;
		d->ip_sum = o->ip_sum;
		memcpy(d->hdr, o->hdr, RF_KT_HDR_MAX);
		if (o->flags & RF_OUT_F_MAC_VALID)
			v->last = (uint8_t)i;
	}
}

static int write_relay(struct rf_ktier *k, struct kt_slot *s)
{
	uint32_t buf = (uint32_t)(s - k->slots) * RF_KT_BUFS + (uint32_t)(s->cur + 1) % RF_KT_BUFS;
	struct rf_kt_ref ref = { .buf = buf };
	int rc;

	/* the next buffer first, then the one word that makes it current */
	rc = k->lb.bpf_map_update_elem(k->relays_fd, &buf, &k->scratch, 0);
	if (!rc)
		rc = k->lb.bpf_map_update_elem(k->keys_fd, &s->key, &ref, 0);
	if (!rc)
		s->cur = (uint8_t)(buf % RF_KT_BUFS);
	return rc;
}

/* The tier of relay `e`: the kernel's unless it has more outputs than the
 * program walks (or the tier is user). */
static uint8_t mode_of(const struct rf_ktier *k, const struct rf_relay_ent *e)
{
	if (!k->relaying || e->out_count > RF_KT_MAX_OUTS || e->id == k->captured)
		return RF_KT_CONSUME;
	return e->lim.on ? RF_KT_RELAY_LIMITED : RF_KT_RELAY;
}

/* Start relay slot `s`'s buckets from its table entry's limit (full, as
 * rf_relay_lim_set leaves them). */
static void write_limit(struct rf_ktier *k, const struct kt_slot *s, const struct rf_relay_ent *e)
{
	struct rf_kt_limit l;
	uint32_t slot = (uint32_t)(s - k->slots);

	memset(&l, 0, sizeof(l));
	l.cost_pkt = e->lim.cost_pkt;
	l.cost_byte = e->lim.cost_byte;
	l.cap_pkt = e->lim.cap_pkt;
	l.cap_byte = e->lim.cap_byte;
	l.credit_pkt = e->lim.cap_pkt;
	l.credit_byte = e->lim.cap_byte;
	l.max_gap_ns = e->lim.max_gap_ns;
	l.last_ns = mono_ns();
	k->lb.bpf_map_update_elem(k->limits_fd, &slot, &l, 0);
}

/* rf_addrs holds an address while a kernel relay listens on it. */
static void addr_refresh(struct rf_ktier *k, const struct rf_relay_table *t, const struct rf_kt_key *key)
{
	struct rf_kt_key a = *key;
	uint32_t i, one = 1;

	a.port = 0;
	for (i = 0; i < t->n_relays; i++) {
		const struct rf_relay_ent *e = &t->relays[i];

		if (e->kernel && e->family == a.family && !memcmp(e->addr, a.addr, e->family == 4 ? 4 : 16)) {
			k->lb.bpf_map_update_elem(k->addrs_fd, &a, &one, 0);
			return;
		}
	}
	k->lb.bpf_map_delete_elem(k->addrs_fd, &a);
}

static void mirror(struct rf_ktier *k, struct rf_relay_table *t, uint32_t relay_id, uint8_t op,
		   const struct rf_policy_msg *msg);

void rf_ktier_sync(struct rf_ktier *k, struct rf_relay_table *t, const struct rf_policy_msg *msg)
{
	struct kt_slot *s;
	uint32_t relay_id;

	if (!k)
		return;
	memcpy(&relay_id, msg->body, 4);
	if (msg->op == RF_POLICY_OP_CAPTURE) {
		uint32_t prev = k->captured;

		/* arming moves the relay to the user tier, disarming (relay_id
		 * NONE) brings the one captured until now back */
		k->captured = relay_id;
		if (prev != RF_RELAY_NONE && prev != relay_id)
			mirror(k, t, prev, msg->op, msg);
		if (relay_id != RF_RELAY_NONE)
			mirror(k, t, relay_id, msg->op, msg);
		return;
	}
	s = slot_of(k, relay_id);
	if (msg->op == RF_POLICY_OP_RELAY_REMOVE) {
		if (k->captured == relay_id)
			k->captured = RF_RELAY_NONE;
		if (s) {
			k->lb.bpf_map_delete_elem(k->keys_fd, &s->key);
			s->used = 0;
			addr_refresh(k, t, &s->key);
		}
		return;
	}
	mirror(k, t, relay_id, msg->op, msg);
}

/* Write relay `relay_id` of table `t` into the maps after message `op`. */
static void mirror(struct rf_ktier *k, struct rf_relay_table *t, uint32_t relay_id, uint8_t op,
		   const struct rf_policy_msg *msg)
{
	struct rf_relay_ent *e = NULL;
	struct kt_slot *s = slot_of(k, relay_id);
	uint32_t i;
	uint8_t mode;

	for (i = 0; i < t->n_relays; i++)
		if (t->relays[i].id == relay_id)
			e = &t->relays[i];
	if (!e)
		return;
	if (k->adopting) {
		uint8_t m = mode_of(k, e);

		/* the adopted maps keep relaying the previous server's policy
		 * until the table is complete: rf_ktier_commit() writes it */
		if (e->kernel != (m != RF_KT_CONSUME)) {
			e->kernel = m != RF_KT_CONSUME;
			t->keys_gen++;
		}
		return;
	}
	if (!s) {
		s = slot_take(k, relay_id);
		if (!s)
			return;
		s->key.family = e->family;
		s->key.port = e->port;
		memcpy(s->key.addr, e->addr, e->family == 4 ? 4 : 16);
		s->cur = RF_KT_BUFS - 1;
		if (e->counter != RF_RELAY_NONE)
			zero_slot(k, e->counter);
	}
	if (op == RF_POLICY_OP_OUTPUT_ADD) {
		uint32_t out_id;

		memcpy(&out_id, msg->body + 4, 4);
		zero_slot(k, out_id);
	}
	/* a relay with more outputs than one program walks stays in the
	 * user tier; a limit (or a changed one) starts with full buckets,
	 * before the relay that uses them is current */
	mode = mode_of(k, e);
	if (op == RF_POLICY_OP_RELAY_LIMIT || op == RF_POLICY_OP_RELAY_ADD)
		write_limit(k, s, e);
	build(k, t, e, mode);
	if (write_relay(k, s)) {
		/* the map refused: keep relaying in the user tier */
		mode = RF_KT_CONSUME;
		build(k, t, e, mode);
		write_relay(k, s);
	}
	if (e->kernel != (mode != RF_KT_CONSUME)) {
		e->kernel = mode != RF_KT_CONSUME;
		/* the RX socket's filter leaves kernel relays out: rebuild it */
		t->keys_gen++;
		addr_refresh(k, t, &s->key);
	}
}

/*
 * The table is complete (the server applied its configuration): write
 * every relay, each in one flip of its rf_keys word, into the slot the
 * previous server's version of it holds, so that an output present in both
 * versions sees every packet exactly once; remove the adopted relays the
 * table no longer has.
 */
void rf_ktier_commit(struct rf_ktier *k, struct rf_relay_table *t)
{
	uint32_t i, j;

	if (!k || !k->adopting)
		return;
	k->adopting = 0;
	for (i = 0; i < k->n_adopted; i++) {
		const struct kt_adopted *a = &k->adopted[i];
		const struct rf_relay_ent *e = NULL;

		for (j = 0; j < t->n_relays && !e; j++)
			if (t->relays[j].family == a->key.family && t->relays[j].port == a->key.port &&
			    !memcmp(t->relays[j].addr, a->key.addr, 16 * (a->key.family == 6) + 4 * (a->key.family == 4)))
				e = &t->relays[j];
		if (!e) {
			k->lb.bpf_map_delete_elem(k->keys_fd, &a->key);
			addr_refresh(k, t, &a->key);
			continue;
		}
		k->slots[a->buf / RF_KT_BUFS].used = 1;
		k->slots[a->buf / RF_KT_BUFS].relay_id = e->id;
		k->slots[a->buf / RF_KT_BUFS].key = a->key;
		k->slots[a->buf / RF_KT_BUFS].cur = (uint8_t)(a->buf % RF_KT_BUFS);
	}
	for (i = 0; i < t->n_relays; i++) {
		struct rf_relay_ent *e = &t->relays[i];
		struct kt_slot *s = slot_of(k, e->id);
		uint8_t mode = mode_of(k, e);

		if (!s) {
			s = slot_take(k, e->id);
			if (!s)
				continue;
			s->key.family = e->family;
			s->key.port = e->port;
			memcpy(s->key.addr, e->addr, e->family == 4 ? 4 : 16);
			s->cur = RF_KT_BUFS - 1;
		}
		/* this server's counter slots start at zero, as its region's */
		if (e->counter != RF_RELAY_NONE)
			zero_slot(k, e->counter);
		for (j = 0; j < e->out_count; j++)
			zero_slot(k, t->outs[e->out_first + j].id);
		write_limit(k, s, e);
		build(k, t, e, mode);
		if (write_relay(k, s) && mode != RF_KT_CONSUME) {
			build(k, t, e, RF_KT_CONSUME);
			write_relay(k, s);
			e->kernel = 0;
			t->keys_gen++;
		}
		addr_refresh(k, t, &s->key);
	}
}

int rf_ktier_adopting(const struct rf_ktier *k)
{
	return k && k->adopting;
}

/* ---------------------------------------------------------- counters -- */

int rf_ktier_reasons(struct rf_ktier *k, uint64_t *reasons, uint32_t n)
{
	uint32_t i;
	int c;

	for (i = 0; i < n && i < RF_KT_REASONS; i++) {
		const uint64_t *v = k->pcpu;

		reasons[i] = 0;
		if (k->lb.bpf_map_lookup_elem(k->reason_fd, &i, k->pcpu))
			return -errno;
		for (c = 0; c < k->ncpu; c++)
			reasons[i] += v[c];
	}
	return 0;
}

int rf_ktier_output(struct rf_ktier *k, uint32_t slot, struct rf_output_counters *out)
{
	const struct rf_kt_ocnt *v = k->pcpu;
	int c;

	memset(out, 0, sizeof(*out));
	if (slot >= k->max_counters)
		return -ERANGE;
	if (k->lb.bpf_map_lookup_elem(k->ocnt_fd, &slot, k->pcpu))
		return -errno;
	for (c = 0; c < k->ncpu; c++) {
		out->packets += v[c].packets;
		out->bytes += v[c].bytes;
		out->drops += v[c].drops;
		out->limited += v[c].limited;
	}
	return 0;
}

int rf_ktier_test_run(struct rf_ktier *k, uint32_t test_out, const uint8_t *frame, uint32_t len,
		      uint8_t *out, uint32_t *out_len)
{
	struct rf_bpf_test_run_opts o = { .sz = sizeof(o) };
	int rc;

	/* conf is the heartbeat thread's too: changed under its lock */
	pthread_mutex_lock(&k->mu);
	k->conf.test_out = test_out;
	pthread_mutex_unlock(&k->mu);
	rc = write_conf(k);
	if (rc)
		return rc;
	o.data_in = frame;
	o.data_size_in = len;
	o.data_out = out;
	o.data_size_out = out_len ? *out_len : 0;
	o.repeat = 1;
	rc = k->lb.bpf_prog_test_run_opts(k->prog_fd, &o);
	pthread_mutex_lock(&k->mu);
	k->conf.test_out = 0;
	pthread_mutex_unlock(&k->mu);
	write_conf(k);
	if (rc)
		return rc;
	if (out_len)
		*out_len = o.data_size_out;
	return (int)o.retval;
}
