/* SPDX-License-Identifier: MIT */
/*
 * announce: the gratuitous ARP and the unsolicited neighbour advertisement,
 * byte by byte, the ICMPv6 checksum against a byte-at-a-time RFC 1071 sum
 * over the pseudo header, and the refusals (family, interface name).
 */
#include <errno.h>
#include <string.h>

#include "reflector/announce.h"
#include "testlib.h"

static const uint8_t MAC[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };

static uint32_t ref_sum(const uint8_t *p, size_t len, uint32_t s)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	return s;
}

static void test_arp(void)
{
	uint8_t addr[16] = { 198, 18, 0, 100 };
	uint8_t f[RF_ANNOUNCE_MAX];
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t zero[6] = { 0 };
	size_t len = rf_announce_frame(4, MAC, addr, f);

	CHECK(len == 60, "ARP frame padded to 60 bytes, got %zu", len);
	CHECK(!memcmp(f, bcast, 6), "to the broadcast address");
	CHECK(!memcmp(f + 6, MAC, 6), "from the interface's MAC");
	CHECK(f[12] == 0x08 && f[13] == 0x06, "ethertype ARP");
	CHECK(f[14] == 0 && f[15] == 1 && f[16] == 0x08 && f[17] == 0 && f[18] == 6 && f[19] == 4, "Ethernet/IPv4, 6/4");
	CHECK(f[20] == 0 && f[21] == 1, "a request");
	CHECK(!memcmp(f + 22, MAC, 6) && !memcmp(f + 28, addr, 4), "sender: MAC and the address");
	CHECK(!memcmp(f + 32, zero, 6) && !memcmp(f + 38, addr, 4), "target: no MAC, the same address (gratuitous)");
}

static void test_na(void)
{
	uint8_t addr[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64 };
	static const uint8_t all_nodes[16] = { 0xff, 0x02, [15] = 0x01 };
	uint8_t f[RF_ANNOUNCE_MAX];
	const uint8_t *ip = f + 14, *icmp = f + 54;
	uint32_t s;
	size_t len = rf_announce_frame(6, MAC, addr, f);

	REQUIRE(len == 86, "NA frame is 86 bytes, got %zu", len);
	CHECK(f[0] == 0x33 && f[1] == 0x33 && f[2] == 0 && f[3] == 0 && f[4] == 0 && f[5] == 1, "to 33:33:00:00:00:01");
	CHECK(f[12] == 0x86 && f[13] == 0xdd, "ethertype IPv6");
	CHECK(ip[0] == 0x60 && ip[4] == 0 && ip[5] == 32 && ip[6] == 58 && ip[7] == 255, "version 6, 32 bytes of ICMPv6, hop limit 255");
	CHECK(!memcmp(ip + 8, addr, 16) && !memcmp(ip + 24, all_nodes, 16), "from the address to ff02::1");
	CHECK(icmp[0] == 136 && icmp[1] == 0, "neighbour advertisement");
	CHECK(icmp[4] == 0x20 && icmp[5] == 0 && icmp[6] == 0 && icmp[7] == 0, "override only");
	CHECK(!memcmp(icmp + 8, addr, 16), "target: the address");
	CHECK(icmp[24] == 2 && icmp[25] == 1 && !memcmp(icmp + 26, MAC, 6), "target link-layer address option");
	/* pseudo header + message sums to 0xffff when the checksum is right */
	s = ref_sum(ip + 8, 32, 0);
	s += 32 + 58;
	s = ref_sum(icmp, 32, s);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	CHECK(s == 0xffff, "ICMPv6 checksum verifies (sum %#x)", s);
}

static void test_refusals(void)
{
	uint8_t addr[16] = { 0 };
	char err[256];
	uint8_t f[RF_ANNOUNCE_MAX];

	CHECK(rf_announce_frame(5, MAC, addr, f) == 0, "family 5 builds nothing");
	CHECK(rf_announce(NULL, "eth0", 5, addr, 1, err, sizeof(err)) == -EINVAL, "family 5 refused");
	CHECK(strstr(err, "family 5 is not 4 or 6") != NULL, "message: %s", err);
	CHECK(rf_announce(NULL, "a-name-longer-than-15", 4, addr, 1, err, sizeof(err)) == -EINVAL, "long name refused");
	CHECK(rf_announce("/nonexistent/netns", "veth0", 4, addr, 1, err, sizeof(err)) == -ENOENT, "missing namespace");
	CHECK(strstr(err, "cannot open network namespace /nonexistent/netns") != NULL, "message: %s", err);
}

int main(void)
{
	test_arp();
	test_na();
	test_refusals();
	return t_failures ? T_FAIL : T_PASS;
}
