/* SPDX-License-Identifier: MIT */
/* Shared by the relay benchmark's C programs (relay_origin, mmsg_relay,
 * afpacket_relay): "ADDR:PORT" parsing and RFC 1071 sums. Header-only so
 * each program stays one compiler call. */
#ifndef REFLECTOR_BENCH_RELAY_COMMON_H
#define REFLECTOR_BENCH_RELAY_COMMON_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* "198.18.0.1:5000" into an IPv4 socket address. Returns 0, or -1. */
static inline int parse_ep(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *c = strrchr(s, ':');

	if (!c || (size_t)(c - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(c - s));
	host[c - s] = 0;
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)atoi(c + 1));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

/* One's complement sum of big-endian 16-bit words (RFC 1071), unfolded; an
 * odd trailing byte is padded with zero. */
static inline uint32_t sum16(uint32_t s, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	return s;
}

static inline uint16_t fold(uint32_t s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

#endif
