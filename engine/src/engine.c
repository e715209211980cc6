/* SPDX-License-Identifier: MIT */
/*
 * Engine lifecycle (engine.h): two threads, TX (lanes -> timing wheel ->
 * port) and RX (port -> relay -> port, policy ring -> relay table), each with
 * its own port queue and its own doorbell eventfd published in the region
 * header. One stop flag (force_quit), a doorbell write to wake each thread,
 * then a join.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "clock.h"
#include "engine_internal.h"

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

/* A ring header in the region: where it is, its sizes. */
static int check_ring(const struct rf_engine *e, uint32_t off, uint32_t entry_size,
		      const char *what, uint32_t lane, char *err, size_t errlen)
{
	const struct rf_ring *r = rf_ring_at(e->region, off);

	if (off % RF_CACHELINE || (uint64_t)off + sizeof(*r) > e->hs.region_size)
		return fail(err, errlen, -EINVAL,
			    "engine: region %s ring (lane %u) at offset %u is outside the region",
			    what, lane, off);
	if (!is_pow2(r->entries) || r->mask != r->entries - 1 || r->entry_size != entry_size ||
	    r->data_off != sizeof(*r) ||
	    (uint64_t)off + r->data_off + (uint64_t)r->entries * entry_size > e->hs.region_size)
		return fail(err, errlen, -EINVAL,
			    "engine: region %s ring (lane %u) has a bad header (entries %u, "
			    "entry_size %u, data_off %u)", what, lane, r->entries, r->entry_size,
			    r->data_off);
	return 0;
}

static int check_rings(const struct rf_engine *e, char *err, size_t errlen)
{
	uint32_t i;
	int rc;

	for (i = 0; i < e->hs.lane_count; i++) {
		if ((rc = check_ring(e, e->hs.lanes[i].submit_off, sizeof(struct rf_desc), "submit", i,
				     err, errlen)) ||
		    (rc = check_ring(e, e->hs.lanes[i].free_off, 4, "free", i, err, errlen)))
			return rc;
	}
	if ((rc = check_ring(e, e->hs.policy_off, sizeof(struct rf_policy_msg), "policy", 0, err,
			     errlen)) ||
	    (rc = check_ring(e, e->hs.event_off, sizeof(struct rf_event), "event", 0, err, errlen)))
		return rc;
	return 0;
}

/* Everything the engine indexes with must stay inside the region. */
static int check_header(const struct rf_engine *e, char *err, size_t errlen)
{
	const struct rf_region_hdr *h = &e->hs;
	uint64_t len = h->region_size;
	uint32_t i;

#define BAD(...) return fail(err, errlen, -EINVAL, "engine: region header: " __VA_ARGS__)
	if (h->lane_count < 1 || h->lane_count > RF_MAX_LANES)
		BAD("lane_count %u is outside 1..%u", h->lane_count, RF_MAX_LANES);
	if (!is_pow2(h->slot_size) || h->slot_size < 512 || h->slot_size > 16384)
		BAD("slot_size %u is not a power of two in 512..16384", h->slot_size);
	if (h->pool_off + (uint64_t)h->slot_count * h->slot_size > len)
		BAD("the pool (%u slots) ends outside the region", h->slot_count);
	if (h->dest_off + (uint64_t)h->dest_count * sizeof(struct rf_dest) > len)
		BAD("the destination table (%u entries) ends outside the region", h->dest_count);
	if (h->max_streams < 1 ||
	    h->stream_counters_off + (uint64_t)h->max_streams * sizeof(struct rf_stream_counters) > len)
		BAD("the stream counters (%u) end outside the region", h->max_streams);
	if (h->counters_off + (uint64_t)RF_MAX_THREADS * RF_COUNTERS_PER_BLOCK * 8 > len ||
	    h->counters_off % 8)
		BAD("the counter blocks end outside the region");
	for (i = 0; i < h->lane_count; i++) {
		const struct rf_lane *l = &h->lanes[i];

		if ((uint64_t)l->slot_first + l->slot_count > h->slot_count)
			BAD("lane %u slots %u..%u are outside the pool", i, l->slot_first,
			    l->slot_first + l->slot_count);
		if ((uint64_t)l->dest_first + l->dest_count > h->dest_count)
			BAD("lane %u destinations %u..%u are outside the table", i, l->dest_first,
			    l->dest_first + l->dest_count);
	}
#undef BAD
	return check_rings(e, err, errlen);
}

void rf_engine_config_defaults(struct rf_engine_config *cfg)
{
	if (!cfg->tx_frames)
		cfg->tx_frames = 512;
	/* Many small blocks: a TPACKET_V3 block is handed over when full or
	 * after the 1 ms retire timeout, so at a few 10 kpps each block carries
	 * ~1 ms of traffic and the ring holds rx_blocks ms. 256 x 64 KiB keeps
	 * ~250 ms (the relay's RX thread descheduled on a busy host) where
	 * 16 x 256 KiB kept 16 ms and dropped (bench/relay.ts). */
	if (!cfg->rx_block_size)
		cfg->rx_block_size = 1u << 16;
	if (!cfg->rx_blocks)
		cfg->rx_blocks = 256;
	/* 64 frames per send(): the batch of the bare TX ring loop the TX
	 * path is measured against (bench/tx.ts); 32 made it 1/32 system
	 * calls per packet */
	if (!cfg->burst)
		cfg->burst = 64;
	if (!cfg->spin_ns)
		cfg->spin_ns = 50000;
	/* mtu 0 = the interface's, late_drop_ns 0 = never: both stay 0 */
}

int rf_engine_create(struct rf_engine **out, void *region, size_t region_len,
		     const struct rf_engine_config *cfg_in, char *err, size_t errlen)
{
	struct rf_engine *e;
	struct rf_engine_config cfg = *cfg_in;
	uint32_t i;
	int rc;

	*out = NULL;
	if (!region)
		return fail(err, errlen, -EINVAL, "engine: region is NULL");
	if (rf_region_check(region, region_len, err, errlen))
		return -EINVAL;
	rf_engine_config_defaults(&cfg);
	if (cfg.burst > RF_BURST_MAX)
		return fail(err, errlen, -EINVAL, "engine: burst = %u is invalid (accepted: 1..%u)",
			    cfg.burst, RF_BURST_MAX);
	if (cfg.ifname && strlen(cfg.ifname) >= sizeof(e->ifname))
		return fail(err, errlen, -EINVAL, "engine: interface name '%s' is too long",
			    cfg.ifname);
	if (cfg.netns && strlen(cfg.netns) >= sizeof(e->netns))
		return fail(err, errlen, -EINVAL, "engine: namespace path '%s' is too long", cfg.netns);

	e = calloc(1, sizeof(*e));
	if (!e)
		return fail(err, errlen, -ENOMEM, "engine: out of memory");
	e->region = region;
	e->region_len = region_len;
	e->h = rf_hdr(region);
	memcpy(&e->hs, region, sizeof(e->hs));
	if (e->hs.region_size > region_len)
		e->hs.region_size = (uint32_t)region_len;
	rc = check_header(e, err, errlen);
	if (rc) {
		free(e);
		return rc;
	}
	if (cfg.ifname)
		snprintf(e->ifname, sizeof(e->ifname), "%s", cfg.ifname);
	if (cfg.netns)
		snprintf(e->netns, sizeof(e->netns), "%s", cfg.netns);
	cfg.ifname = e->ifname;
	cfg.netns = cfg.netns ? e->netns : NULL;
	e->cfg = cfg;
	for (i = 0; i < 2; i++) {
		e->th[i].e = e;
		e->th[i].id = (enum rf_thread_id)i;
		e->th[i].efd = -1;
		e->th[i].c = rf_counters(region, &e->hs, (enum rf_thread_id)i);
	}
	e->ops = rf_port_ops_for(cfg.backend);
	if (!e->ops) {
		rc = fail(err, errlen, -EINVAL,
			  "engine: backend %d is invalid (accepted: %d afpacket, %d null, %d afxdp)",
			  (int)cfg.backend, RF_BACKEND_AFPACKET, RF_BACKEND_NULL, RF_BACKEND_AFXDP);
		goto out;
	}
	rc = e->ops->open(&e->th[RF_THREAD_TX].port, &e->cfg, RF_PORT_TX, err, errlen);
	if (rc)
		goto out;
	rc = e->ops->open(&e->th[RF_THREAD_RX].port, &e->cfg, RF_PORT_RX | RF_PORT_TX, err, errlen);
	if (rc)
		goto out;
	e->ops->info(e->th[RF_THREAD_TX].port, e->if_mac, &e->mtu, &e->ifindex);

	rc = rf_wheel_init(&e->wheel, e->hs.slot_count, rf_now_ns());
	if (rc) {
		fail(err, errlen, rc, "engine: out of memory for the timing wheel (%u entries)",
		     e->hs.slot_count);
		goto out;
	}
	e->relay = rf_relay_create(region, e->if_mac, e->mtu);
	if (!e->relay) {
		rc = fail(err, errlen, -ENOMEM, "engine: cannot create the relay table");
		goto out;
	}
	for (i = 0; i < e->hs.lane_count; i++) {
		const struct rf_lane *l = &e->hs.lanes[i];

		e->lanes[i].slot_first = l->slot_first;
		e->lanes[i].slot_count = l->slot_count;
		e->lanes[i].dest_first = l->dest_first;
		e->lanes[i].dest_count = l->dest_count;
		/* TypeScript numbers descriptors by submit ring index, so the next
		 * seq is the ring's consumer index, also for an engine created on
		 * a region an earlier engine used */
		e->lanes[i].next_seq = rf_load_acquire(&rf_ring_at(region, l->submit_off)->consumer);
	}
	*out = e;
	return 0;
out:
	rf_engine_destroy(e);
	return rc;
}

static void thread_ring(struct rf_thread *t)
{
	uint64_t one = 1;

	if (t->efd >= 0 && write(t->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, the thread wakes anyway */
	}
}

int rf_engine_start(struct rf_engine *e, char *err, size_t errlen)
{
	pthread_attr_t attr;
	uint32_t i;
	int rc = 0;

	if (e->running)
		return 0;
	/* the ring headers are shared memory too: check them again before the
	 * cursors copy their sizes */
	rc = check_rings(e, err, errlen);
	if (rc)
		return rc;
	for (i = 0; i < e->hs.lane_count; i++) {
		struct rf_tx_lane *ln = &e->lanes[i];

		rf_cursor_init_cons(&ln->submit, rf_ring_at(e->region, e->hs.lanes[i].submit_off));
		rf_cursor_init_prod(&ln->free, rf_ring_at(e->region, e->hs.lanes[i].free_off));
		ln->free_pending = 0;
	}
	rf_cursor_init_cons(&e->policy, rf_ring_at(e->region, e->hs.policy_off));
	rf_cursor_init_prod(&e->events, rf_ring_at(e->region, e->hs.event_off));
	atomic_store(&e->force_quit, 0);

	for (i = 0; i < 2; i++) {
		struct rf_thread *t = &e->th[i];
		int cpu = i == RF_THREAD_TX ? e->cfg.cpu_tx : e->cfg.cpu_rx;

		t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (t->efd < 0) {
			rc = fail(err, errlen, -errno, "engine: eventfd for the %s thread: %s",
				  i == RF_THREAD_TX ? "TX" : "RX", strerror(errno));
			break;
		}
		rf_store_relaxed(&e->h->doorbell[i].sleeping, 0);
		/* publish the doorbell before the thread runs: pairs with the
		 * addon's Atomics.load of doorbell.fd in ring() */
		rf_store_release((uint32_t *)&e->h->doorbell[i].fd, (uint32_t)t->efd);
		pthread_attr_init(&attr);
		if (cpu >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(cpu, &set);
			pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
		}
		if (i == RF_THREAD_TX && e->cfg.tx_priority > 0) {
			/* a real-time TX thread preempts every ordinary task at
			 * once when its deadline comes (an ordinary thread waits
			 * for the running one's slice: 100s of us); it spins only
			 * spin_ns before a deadline, and the kernel's RT
			 * throttling keeps 5 % of its CPU for the rest */
			struct sched_param sp = { .sched_priority = e->cfg.tx_priority };

			pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
			pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
			pthread_attr_setschedparam(&attr, &sp);
		}
		rc = -pthread_create(&t->tid, &attr, i == RF_THREAD_TX ? rf_tx_main : rf_rx_main, t);
		pthread_attr_destroy(&attr);
		if (rc) {
			fail(err, errlen, rc, "engine: cannot start the %s thread%s%s: %s",
			     i == RF_THREAD_TX ? "TX" : "RX", cpu >= 0 ? " (check cpu_tx/cpu_rx)" : "",
			     i == RF_THREAD_TX && e->cfg.tx_priority > 0
				     ? " with SCHED_FIFO priority (needs CAP_SYS_NICE or an RLIMIT_RTPRIO)"
				     : "",
			     strerror(-rc));
			break;
		}
		t->started = 1;
	}
	e->running = 1;
	if (rc) {
		rf_engine_stop(e);
		return rc;
	}
	/* ensure the doorbells are published before the state says running:
	 * pairs with the Atomics.load of engine_state in TypeScript */
	rf_store_release(&e->h->engine_state, RF_STATE_RUNNING);
	return 0;
}

void rf_engine_stop(struct rf_engine *e)
{
	uint32_t i;

	if (!e || !e->running)
		return;
	/* the single stop flag; the doorbell writes below make sure a sleeping
	 * thread sees it (seq_cst store, read by each loop iteration) */
	atomic_store(&e->force_quit, 1);
	for (i = 0; i < 2; i++)
		thread_ring(&e->th[i]);
	for (i = 0; i < 2; i++) {
		struct rf_thread *t = &e->th[i];

		if (t->started)
			pthread_join(t->tid, NULL);
		t->started = 0;
	}
	for (i = 0; i < 2; i++) {
		struct rf_thread *t = &e->th[i];

		/* unpublish before closing, so TypeScript stops ringing a
		 * descriptor that may be reused */
		rf_store_release((uint32_t *)&e->h->doorbell[i].fd, (uint32_t)-1);
		rf_store_relaxed(&e->h->doorbell[i].sleeping, 0);
		if (t->efd >= 0)
			close(t->efd);
		t->efd = -1;
	}
	rf_store_release(&e->h->engine_state, RF_STATE_STOPPED);
	e->running = 0;
}

/* Give every slot still in the wheel back to its lane: the region outlives
 * the engine and its lanes must not lose slots. */
static void return_wheel_slots(struct rf_engine *e)
{
	struct rf_wheel_item it;

	if (!e->wheel.e)
		return;
	while (e->wheel.count && rf_wheel_pop_due(&e->wheel, UINT64_MAX - 1, &it, 1)) {
		struct rf_ring_cursor c;
		uint32_t idx;

		rf_cursor_init_prod(&c, rf_ring_at(e->region, e->hs.lanes[it.lane].free_off));
		if (rf_ring_reserve(&c, 1, &idx)) {
			*(uint32_t *)rf_ring_entry(&c, idx) = it.desc.slot;
			rf_ring_submit(&c);
		}
	}
}

void rf_engine_destroy(struct rf_engine *e)
{
	uint32_t i;

	if (!e)
		return;
	rf_engine_stop(e);
	return_wheel_slots(e);
	rf_wheel_free(&e->wheel);
	if (e->relay)
		rf_relay_destroy(e->relay);
	for (i = 0; i < 2; i++)
		if (e->th[i].port)
			e->ops->close(e->th[i].port);
	free(e);
}

int rf_engine_running(const struct rf_engine *e)
{
	return e && e->running;
}

int rf_doorbell_sleep(struct rf_thread *t, uint64_t timeout_ns, int extra_fd,
		      int (*has_work)(struct rf_thread *t))
{
	struct rf_doorbell *db = &t->e->h->doorbell[t->id];
	struct pollfd fds[2] = { { .fd = t->efd, .events = POLLIN },
				 { .fd = extra_fd, .events = POLLIN } };
	struct timespec ts;
	uint64_t v;
	int rung = 0;

	rf_store_relaxed(&db->sleeping, 1);
	/* Dekker with the producer: our `sleeping` store is visible before we
	 * re-read its ring index; pairs with the producer's fence between its
	 * index store and its read of `sleeping` */
	rf_smp_mb();
	if (has_work(t) || atomic_load(&t->e->force_quit)) {
		rf_store_relaxed(&db->sleeping, 0);
		return 0;
	}
	rf_counter_add(&t->c[RF_C_SLEEPS], 1);
	if (timeout_ns != UINT64_MAX)
		ts = rf_ns_to_timespec(timeout_ns);
	(void)ppoll(fds, extra_fd >= 0 ? 2 : 1, timeout_ns == UINT64_MAX ? NULL : &ts, NULL);
	rf_store_relaxed(&db->sleeping, 0);
	if (fds[0].revents & POLLIN) {
		/* reset the eventfd counter so the next sleep can block */
		if (read(t->efd, &v, sizeof(v)) == sizeof(v))
			rung = 1;
		rf_counter_add(&t->c[RF_C_WAKEUPS], 1);
	}
	return rung;
}
