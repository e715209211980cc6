/* SPDX-License-Identifier: MIT */
/*
 * Placeholder relay (relay.h) so the RX thread links while the real policy
 * table and fast path are written: no relay ever matches, every frame is
 * left to the kernel (RF_C_RX_UNMATCHED), every policy message is refused.
 */
#include <errno.h>
#include <stdlib.h>

#include "reflector/barrier.h"
#include "relay.h"

struct rf_relay {
	void *region;
};

struct rf_relay *rf_relay_create(void *region, const uint8_t if_mac[6], uint32_t mtu)
{
	struct rf_relay *r = calloc(1, sizeof(*r));

	(void)if_mac;
	(void)mtu;
	if (r)
		r->region = region;
	return r;
}

void rf_relay_destroy(struct rf_relay *r)
{
	free(r);
}

int rf_relay_apply(struct rf_relay *r, const struct rf_policy_msg *msg)
{
	(void)r;
	(void)msg;
	return -ENOSYS;
}

void rf_relay_burst(struct rf_relay *r, const struct rf_rx_pkt *pkts, uint32_t n,
		    const struct rf_port_ops *ops, struct rf_port *port, uint64_t *c)
{
	(void)r;
	(void)pkts;
	(void)ops;
	(void)port;
	/* no relay yet: every frame is left to the kernel */
	rf_counter_add(&c[RF_C_RX_UNMATCHED], n);
}

uint32_t rf_relay_filter(const struct rf_relay *r, struct sock_filter *prog, uint32_t max)
{
	(void)r;
	(void)prog;
	(void)max;
	return 0;
}
