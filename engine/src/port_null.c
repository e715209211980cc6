/* SPDX-License-Identifier: MIT */
/* The null port: discards every frame (counting it). Ring and scheduler
 * tests and benches run the whole TX path on it without a NIC. */
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

static uint32_t null_tx_burst(struct rf_port *p, const struct rf_tx_pkt *pkts, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		p->bytes += (uint64_t)pkts[i].hdr_len + pkts[i].payload_len;
	p->queued += n;
	return n;
}

static int null_flush(struct rf_port *p)
{
	int n = (int)p->queued;

	p->frames += p->queued;
	p->queued = 0;
	return n;
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
