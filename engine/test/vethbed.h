/* SPDX-License-Identifier: MIT */
/*
 * What the port tests on a veth share (test_afpacket.c, test_afxdp.c): a
 * temporary veth pair between two temporary namespaces, removed at exit and
 * on a signal; sockets opened inside a namespace; UDP receivers that check
 * each payload; a one-lane region to drive a whole engine on a backend.
 * Each test sets ns1/ns2/va/vb and setup_done, then calls these.
 */
#ifndef REFLECTOR_TEST_VETHBED_H
#define REFLECTOR_TEST_VETHBED_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "engine_internal.h"
#include "netpkt.h"
#include "reflector/ring.h"
#include "testlib.h"

static char ns1[32], ns2[32], va[16], vb[16];
static int setup_done;

static inline int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static inline void cleanup(void)
{
	if (!setup_done)
		return;
	/* deleting the namespaces deletes the veth pair with them */
	sh("ip netns del %s 2>/dev/null", ns1);
	sh("ip netns del %s 2>/dev/null", ns2);
	setup_done = 0;
}

static inline void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Name the namespaces and veth ends after `tag` (ns "rfc-<tag>1-PID",
 * "rfc-<tag>2-PID"; veth "<vtag>a<pid>", "<vtag>b<pid>": unique per test and
 * process), arm the cleanup (exit, SIGINT/SIGTERM, a 60 s alarm), create
 * them and bring them up: vb in ns1 with the addresses addr_b (a space
 * separated list of "ADDR/LEN"), va in ns2 with addr_a. Skips (77) when
 * that fails.
 */
static inline void vethbed_up(const char *tag, const char *vtag, const char *addr_b, const char *addr_a)
{
	char adds[2][256];
	const char *addrs[2] = { addr_b, addr_a };
	int k;

	snprintf(ns1, sizeof(ns1), "rfc-%s1-%d", tag, (int)getpid());
	snprintf(ns2, sizeof(ns2), "rfc-%s2-%d", tag, (int)getpid());
	snprintf(va, sizeof(va), "%sa%d", vtag, (int)getpid() % 1000000);
	snprintf(vb, sizeof(vb), "%sb%d", vtag, (int)getpid() % 1000000);
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGALRM, on_signal);
	alarm(60); /* bounded, whatever happens */
	setup_done = 1;
	/* "ip -n NS addr add A dev IF && ..." for each address */
	for (k = 0; k < 2; k++) {
		const char *ns = k ? ns2 : ns1, *dev = k ? va : vb, *a = addrs[k];
		size_t n = 0;

		adds[k][0] = 0;
		while (*a) {
			size_t len = strcspn(a, " ");

			/* IPv6 without duplicate address detection: usable at once */
			n += (size_t)snprintf(adds[k] + n, sizeof(adds[k]) - n,
					      "ip -n %s addr add %.*s dev %s%s && ", ns, (int)len, a, dev,
					      memchr(a, ':', len) ? " nodad" : "");
			REQUIRE(n < sizeof(adds[k]), "vethbed_up: addresses too long");
			a += len;
			a += strspn(a, " ");
		}
	}
	if (sh("ip netns add %s && ip netns add %s", ns1, ns2) ||
	    sh("ip link add %s netns %s type veth peer name %s netns %s", vb, ns1, va, ns2) ||
	    sh("%sip -n %s link set %s up && ip -n %s link set lo up", adds[0], ns1, vb, ns1) ||
	    sh("%sip -n %s link set %s up && ip -n %s link set lo up", adds[1], ns2, va, ns2))
		SKIP("cannot build namespaces and a veth pair (ip netns/link failed)");
}

/* A socket created inside namespace `ns` (it stays there). */
static inline int socket_in_proto(const char *ns, int domain, int type, int proto)
{
	char path[128];
	int nsfd, self, fd;

	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	REQUIRE(nsfd >= 0 && self >= 0, "open namespaces");
	REQUIRE(setns(nsfd, CLONE_NEWNET) == 0, "setns %s: %s", ns, strerror(errno));
	fd = socket(domain, type | SOCK_CLOEXEC, proto);
	REQUIRE(setns(self, CLONE_NEWNET) == 0, "setns back");
	close(nsfd);
	close(self);
	REQUIRE(fd >= 0, "socket");
	return fd;
}

static inline int socket_in(const char *ns, int domain, int type)
{
	return socket_in_proto(ns, domain, type, 0);
}

static inline int udp_receiver(const char *ns, int family, const char *addr, uint16_t port)
{
	int fd = socket_in(ns, family, SOCK_DGRAM), one = 1 << 22;
	struct timeval tv = { 0, 300000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (family == AF_INET) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };

		inet_pton(AF_INET, addr, &sa.sin_addr);
		REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %s:%u: %s", addr,
			port, strerror(errno));
	} else {
		struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

		inet_pton(AF_INET6, addr, &sa.sin6_addr);
		REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind [%s]:%u: %s", addr,
			port, strerror(errno));
	}
	return fd;
}

static inline void read_mac(const char *ns, const char *ifname, uint8_t mac[6])
{
	char cmd[256], buf[64] = "";
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ip netns exec %s cat /sys/class/net/%s/address", ns, ifname);
	f = popen(cmd, "r");
	REQUIRE(f && fgets(buf, sizeof(buf), f), "read MAC of %s", ifname);
	pclose(f);
	REQUIRE(sscanf(buf, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3],
		       &mac[4], &mac[5]) == 6, "parse MAC '%s'", buf);
}

/* ------------------------------------------------------ region helpers -- */

static const struct rf_region_params params = {
	.lanes = 1, .slots_per_lane = 512, .slot_size = 2048, .submit_entries = 512,
	.dests_per_lane = 4, .policy_entries = 16, .event_entries = 64,
	.max_streams = 4, .max_outputs = 4,
};

struct rgn {
	uint8_t *mem;
	struct rf_region_hdr *h;
	struct rf_ring_cursor sub, fre;
	uint32_t seq;
};

static inline void rgn_init(struct rgn *r)
{
	struct rf_region_layout l;
	char err[256];

	REQUIRE(rf_region_layout(&params, &l, err, sizeof(err)) == 0, "%s", err);
	r->mem = aligned_alloc(RF_PAGE, l.size);
	REQUIRE(r->mem && rf_region_init(r->mem, l.size, &params, err, sizeof(err)) == 0, "init");
	r->h = rf_hdr(r->mem);
	rf_cursor_init_prod(&r->sub, rf_ring_at(r->mem, r->h->lanes[0].submit_off));
	rf_cursor_init_cons(&r->fre, rf_ring_at(r->mem, r->h->lanes[0].free_off));
	r->seq = 0;
}

static inline void rgn_send(struct rgn *r, uint32_t dest, const uint8_t *payload, uint16_t len,
		     uint64_t tx_time)
{
	uint32_t idx, slot;
	struct rf_desc *d;

	REQUIRE(rf_ring_peek(&r->fre, 1, &idx) == 1, "free slot");
	slot = *(uint32_t *)rf_ring_entry(&r->fre, idx);
	rf_ring_release(&r->fre, 1);
	memcpy(rf_slot_data(r->mem, r->h, slot), payload, len);
	REQUIRE(rf_ring_reserve(&r->sub, 1, &idx) == 1, "submit room");
	d = rf_ring_entry(&r->sub, idx);
	memset(d, 0, sizeof(*d));
	d->slot = slot;
	d->len = len;
	d->dest = dest;
	d->tx_time = tx_time;
	d->seq = r->seq++;
}

static inline void rgn_publish(struct rgn *r)
{
	uint64_t one = 1;
	int fd;

	rf_ring_submit(&r->sub);
	/* like the addon's ring(): pairs with the engine's fence */
	rf_smp_mb();
	fd = (int)rf_load_acquire((uint32_t *)&r->h->doorbell[RF_THREAD_TX].fd);
	if (rf_load_relaxed(&r->h->doorbell[RF_THREAD_TX].sleeping) && fd >= 0)
		(void)!write(fd, &one, sizeof(one));
}

static inline uint64_t ctr(struct rgn *r, enum rf_thread_id t, int c)
{
	/* atomic: the engine's threads write the counters meanwhile */
	return __atomic_load_n(&rf_counters(r->mem, r->h, t)[c], __ATOMIC_RELAXED);
}

/* Lane `lane`'s counters (lane_count: the control channel's). */
static inline uint64_t lane_ctr(struct rgn *r, uint32_t lane, size_t field_off)
{
	return __atomic_load_n((uint64_t *)((uint8_t *)rf_lane_counters(r->mem, r->h, lane) + field_off),
			       __ATOMIC_RELAXED);
}

static inline void fill_payload(uint8_t *p, uint16_t len, uint32_t i)
{
	uint16_t k;

	for (k = 0; k < len; k++)
		p[k] = (uint8_t)(i * 31 + k);
}

static inline struct rf_engine *engine_on(struct rgn *r, const char *ifname, const char *ns,
					   enum rf_backend backend)
{
	struct rf_engine_config cfg;
	struct rf_engine *e = NULL;
	char err[256] = "";

	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = backend;
	cfg.ifname = ifname;
	cfg.netns = ns;
	cfg.cpu_tx = cfg.cpu_rx = -1;
	REQUIRE(rf_engine_create(&e, r->mem, r->h->region_size, &cfg, err, sizeof(err)) == 0,
		"create on %s in %s: %s", ifname, ns, err);
	REQUIRE(rf_engine_start(e, err, sizeof(err)) == 0, "start: %s", err);
	return e;
}

/* Receive until `want` datagrams or a timeout; checks each payload. */
static inline uint32_t receive(int fd, uint32_t want, uint32_t *bad)
{
	static uint8_t buf[2048], ref[2048];
	uint32_t got = 0;

	while (got < want) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		uint32_t i;

		if (n < 0)
			break;
		/* the first 4 bytes say which packet it is */
		memcpy(&i, buf, 4);
		fill_payload(ref, (uint16_t)n, i);
		memcpy(ref, &i, 4);
		if (memcmp(ref, buf, (size_t)n) != 0)
			(*bad)++;
		got++;
	}
	return got;
}

static inline uint16_t len_of(uint32_t i) { return (uint16_t)(4 + (i * 37) % 1400); }

#endif
