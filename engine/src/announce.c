/* SPDX-License-Identifier: MIT */
/*
 * Gratuitous ARP and unsolicited neighbour advertisement (announce.h).
 *
 * Why these frames: Linux (and most stacks) replace an existing neighbour
 * entry when they see an ARP request whose sender and target address are the
 * same (a gratuitous ARP, arp_process(): is_garp overrides the locktime), or
 * a neighbour advertisement with the override flag. Hosts that had the
 * address cached at the old node's MAC switch at once instead of after their
 * entry goes stale (30 s and more).
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/if_packet.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "reflector/announce.h"
#include "netpkt.h"
#include "netns_socket.h"

#define ETH_P_ARP_BE  0x0806
#define ETH_P_IPV6_BE 0x86dd
#define ARP_FRAME     60u /* 42 bytes padded to the Ethernet minimum */
#define NA_ICMP_LEN   32u /* type, code, csum, flags, target, one option */
#define NA_FRAME      (RF_ETH_HLEN + RF_IPV6_HLEN + NA_ICMP_LEN)

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static size_t arp_frame(const uint8_t mac[6], const uint8_t addr[4], uint8_t *f)
{
	memset(f, 0, ARP_FRAME);
	memset(f, 0xff, 6);                 /* to everyone */
	memcpy(f + 6, mac, 6);
	put16(f + 12, ETH_P_ARP_BE);
	put16(f + 14, 1);                   /* htype Ethernet */
	put16(f + 16, 0x0800);              /* ptype IPv4 */
	f[18] = 6;                          /* hlen */
	f[19] = 4;                          /* plen */
	put16(f + 20, 1);                   /* a request: the form every stack accepts as gratuitous */
	memcpy(f + 22, mac, 6);             /* sender MAC */
	memcpy(f + 28, addr, 4);            /* sender IP = */
	memcpy(f + 38, addr, 4);            /* target IP: gratuitous (target MAC stays zero) */
	return ARP_FRAME;
}

static size_t na_frame(const uint8_t mac[6], const uint8_t addr[16], uint8_t *f)
{
	static const uint8_t all_nodes[16] = { 0xff, 0x02, [15] = 0x01 };
	uint8_t *ip = f + RF_ETH_HLEN, *icmp = ip + RF_IPV6_HLEN;
	uint32_t sum;
	uint8_t ph[8] = { 0 };

	memset(f, 0, NA_FRAME);
	/* 33:33 + the low 32 bits of ff02::1 (RFC 2464 section 7) */
	f[0] = 0x33;
	f[1] = 0x33;
	f[5] = 0x01;
	memcpy(f + 6, mac, 6);
	put16(f + 12, ETH_P_IPV6_BE);
	ip[0] = 0x60;
	put16(ip + 4, NA_ICMP_LEN);
	ip[6] = IPPROTO_ICMPV6;
	ip[7] = 255;                        /* RFC 4861: receivers drop NDP with another hop limit */
	memcpy(ip + 8, addr, 16);           /* from the address itself (it is assigned here now) */
	memcpy(ip + 24, all_nodes, 16);
	icmp[0] = 136;                      /* neighbour advertisement */
	icmp[4] = 0x20;                     /* O (override); not S (unsolicited), not R */
	memcpy(icmp + 8, addr, 16);         /* target */
	icmp[24] = 2;                       /* option: target link-layer address */
	icmp[25] = 1;                       /* 8 bytes */
	memcpy(icmp + 26, mac, 6);
	/* checksum over the pseudo header (addresses, length, next header) and the message */
	put16(ph + 2, NA_ICMP_LEN);
	ph[7] = IPPROTO_ICMPV6;
	sum = rf_csum_partial(ip + 8, 32, 0);
	sum = rf_csum_partial(ph, sizeof(ph), sum);
	sum = rf_csum_partial(icmp, NA_ICMP_LEN, sum);
	{
		uint16_t c = rf_csum_fold(sum);

		memcpy(icmp + 2, &c, 2);   /* as it sits in memory (netpkt.h) */
	}
	return NA_FRAME;
}

size_t rf_announce_frame(int family, const uint8_t mac[6], const uint8_t addr[16], uint8_t *out)
{
	if (family == 4)
		return arp_frame(mac, addr, out);
	if (family == 6)
		return na_frame(mac, addr, out);
	return 0;
}

int rf_announce(const char *netns, const char *ifname, int family, const uint8_t addr[16], int count,
		char *err, size_t errlen)
{
	uint8_t frame[RF_ANNOUNCE_MAX];
	struct sockaddr_ll to;
	struct ifreq ifr;
	size_t len;
	int fd, e, i;

	if (family != 4 && family != 6) {
		snprintf(err, errlen, "announce: family %d is not 4 or 6", family);
		return -EINVAL;
	}
	if (!ifname || strlen(ifname) >= IFNAMSIZ) {
		snprintf(err, errlen, "announce: interface name '%s' is not 1..15 characters", ifname ? ifname : "");
		return -EINVAL;
	}
	fd = rf_socket_in_netns(netns, AF_PACKET, SOCK_RAW, 0, "announce", err, errlen);
	if (fd < 0)
		return fd;
	/* ioctls on a socket act in the socket's namespace */
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		goto fail;
	len = rf_announce_frame(family, (const uint8_t *)ifr.ifr_hwaddr.sa_data, addr, frame);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0)
		goto fail;
	memset(&to, 0, sizeof(to));
	to.sll_family = AF_PACKET;
	to.sll_ifindex = ifr.ifr_ifindex;
	to.sll_halen = 6;
	memcpy(to.sll_addr, frame, 6);
	for (i = 0; i < count; i++) {
		if (sendto(fd, frame, len, 0, (struct sockaddr *)&to, sizeof(to)) != (ssize_t)len)
			goto fail;
	}
	close(fd);
	return 0;
fail:
	e = errno;
	close(fd);
	snprintf(err, errlen, "announce on %s%s%s: %s", ifname, netns && netns[0] ? " in namespace " : "",
		 netns && netns[0] ? netns : "", strerror(e));
	return -e;
}
