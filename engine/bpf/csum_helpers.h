/* SPDX-License-Identifier: MIT */
/*
 * Internet checksum arithmetic of the tc program, the same as the engine's
 * (engine/src/netpkt.h, relay.c) so that both tiers write the same bytes:
 * sums of big-endian 16-bit words kept in host order, folded to 16 bits.
 */
#ifndef REFLECTOR_CSUM_HELPERS_H
#define REFLECTOR_CSUM_HELPERS_H

#include <linux/types.h>

static __always_inline __u16 csum_fold16(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* Sum of the 16-bit big-endian words of a 20-byte IPv4 header. */
static __always_inline __u32 csum_ip20(const __u8 *h)
{
	__u32 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < 20; i += 2)
		sum += (__u32)h[i] << 8 | h[i + 1];
	return sum;
}

#endif
