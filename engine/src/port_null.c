/* SPDX-License-Identifier: MIT */
/* The null port: discards every frame (counting it). Ring and scheduler
 * tests and benches run the whole TX path on it without a NIC; tests can
 * make it refuse frames and take only part of a flush (rf_port_null_faults)
 * to play a device that pushes back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

struct rf_port {
	struct rf_port_stats stats; /* first: see engine_internal.h */
	uint32_t mtu;
	uint32_t queued;
	uint64_t frames;
	uint64_t bytes;
	uint32_t flush_max, ring, max_frame; /* rf_port_null_faults */
};

_Static_assert(offsetof(struct rf_port, stats) == 0, "port stats first");

static int null_open(struct rf_port **out, const struct rf_engine_config *cfg, int roles,
		     char *err, size_t errlen)
{
	struct rf_port *p = calloc(1, sizeof(*p));

	(void)roles;
	if (!p) {
		snprintf(err, errlen, "null port: out of memory");
		return -ENOMEM;
	}
	p->mtu = cfg->mtu ? cfg->mtu : 1500;
	p->flush_max = UINT32_MAX;
	*out = p;
	return 0;
}

static uint32_t null_rx_burst(struct rf_port *p, struct rf_rx_pkt *pkts, uint32_t n)
{
	(void)p;
	(void)pkts;
	(void)n;
	return 0;
}

static void null_rx_release(struct rf_port *p) { (void)p; }

static uint32_t null_tx_burst(struct rf_port *p, struct rf_tx_pkt *pkts, uint32_t n)
{
	uint32_t i;

	uint32_t ring = __atomic_load_n(&p->ring, __ATOMIC_RELAXED);
	uint32_t max_frame = __atomic_load_n(&p->max_frame, __ATOMIC_RELAXED);

	if (ring && n > ring - p->queued)
		n = ring > p->queued ? ring - p->queued : 0;
	for (i = 0; i < n; i++) {
		uint32_t len = (uint32_t)pkts[i].hdr_len + pkts[i].payload_len;

		if (rf_unlikely(max_frame && len > max_frame)) {
			/* drop: refused, the caller counts it (RF_C_DROP_TX_ERROR) */
			pkts[i].refused = 1;
			continue;
		}
		p->bytes += len;
		p->queued++;
	}
	return n;
}

static int null_flush(struct rf_port *p)
{
	uint32_t n = p->queued, max = __atomic_load_n(&p->flush_max, __ATOMIC_RELAXED);

	if (n > max)
		n = max;
	/* read by tests while the engine runs (rf_port_null_flushed) */
	__atomic_store_n(&p->frames, p->frames + n, __ATOMIC_RELAXED);
	p->queued -= n;
	p->stats.tx_backlog = p->queued != 0;
	return (int)n;
}

/* Read by the port's thread at each call: a test may change them while the
 * engine runs. */
void rf_port_null_faults(struct rf_port *p, uint32_t flush_max, uint32_t ring, uint32_t max_frame)
{
	__atomic_store_n(&p->flush_max, flush_max, __ATOMIC_RELAXED);
	__atomic_store_n(&p->ring, ring, __ATOMIC_RELAXED);
	__atomic_store_n(&p->max_frame, max_frame, __ATOMIC_RELAXED);
}

uint64_t rf_port_null_flushed(const struct rf_port *p)
{
	return __atomic_load_n(&p->frames, __ATOMIC_RELAXED);
}

static int null_rx_fd(struct rf_port *p)
{
	(void)p;
	return -1;
}

static void null_info(struct rf_port *p, uint8_t mac[6], uint32_t *mtu, int *ifindex)
{
	memset(mac, 0, 6);
	*mtu = p->mtu;
	*ifindex = 0;
}

static void null_close(struct rf_port *p) { free(p); }

const struct rf_port_ops rf_port_null = {
	.name = "null",
	.open = null_open,
	.rx_burst = null_rx_burst,
	.rx_release = null_rx_release,
	.tx_burst = null_tx_burst,
	.flush = null_flush,
	.rx_fd = null_rx_fd,
	.info = null_info,
	.close = null_close,
};
