/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the relay frame parser on arbitrary bytes. The first
 * byte chooses the "kernel stripped a VLAN tag" flag and how many bytes the
 * ring truncated; the rest is the frame. Checks that every pointer the
 * parser returns stays inside the frame. */
#include <stdlib.h>

#include "relay_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rf_pkt_view v;
	const uint8_t *f;
	uint32_t len, wire;

	if (size < 1)
		return 0;
	f = data + 1;
	len = (uint32_t)(size - 1);
	wire = len + ((data[0] & 0x80) ? (data[0] & 0x0f) : 0);
	if (rf_relay_parse(f, len, wire, data[0] & 0x40, &v) == RF_PARSE_UDP) {
		if (v.payload < f || v.payload + v.payload_len > f + len || v.udp < f || v.udp + 8 > f + len)
			abort();
		if (v.src < f || v.dst < f || v.dst + (v.family == 4 ? 4 : 16) > f + len)
			abort();
		if (v.vlan_tags)
			abort(); /* tagged frames are never ours */
	}
	return 0;
}
