/* SPDX-License-Identifier: MIT */
/* Group membership of relays that listen on a multicast group (mcast.h). */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "reflector/mcast.h"
#include "netns_socket.h"

void rf_mcast_mac(int family, const uint8_t group[16], uint8_t mac[6])
{
	if (family == 4) {
		mac[0] = 0x01, mac[1] = 0x00, mac[2] = 0x5e;
		mac[3] = group[1] & 0x7f, mac[4] = group[2], mac[5] = group[3];
	} else {
		mac[0] = 0x33, mac[1] = 0x33;
		memcpy(mac + 2, group + 12, 4);
	}
}

static void fill(struct sockaddr_storage *ss, int family, const uint8_t a[16])
{
	memset(ss, 0, sizeof(*ss));
	if (family == 4) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;

		s->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;

		s->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
	}
}

int rf_mcast_join(const char *netns, const char *ifname, int family, const uint8_t group[16],
		  const uint8_t (*sources)[16], uint32_t n_sources, char *err, size_t errlen)
{
	int level = family == 4 ? IPPROTO_IP : IPPROTO_IPV6;
	struct ifreq ifr;
	uint32_t i;
	int fd, e;

	if (family != 4 && family != 6) {
		snprintf(err, errlen, "multicast join: family %d is not 4 or 6", family);
		return -EINVAL;
	}
	if (!ifname || !ifname[0] || strlen(ifname) >= IFNAMSIZ) {
		snprintf(err, errlen, "multicast join: interface name '%s' is not 1..15 characters", ifname ? ifname : "");
		return -EINVAL;
	}
	if (n_sources > RF_MCAST_MAX_SOURCES) {
		snprintf(err, errlen, "multicast join: %u sources, at most %u", n_sources, RF_MCAST_MAX_SOURCES);
		return -EINVAL;
	}
	fd = rf_socket_in_netns(netns, family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0, "multicast join", err, errlen);
	if (fd < 0)
		return fd;
	/* the index in the socket's namespace, not the caller's */
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		e = errno;
		snprintf(err, errlen, "multicast join on %s%s%s: no such interface: %s", ifname,
			 netns && netns[0] ? " in namespace " : "", netns && netns[0] ? netns : "", strerror(e));
		close(fd);
		return -e;
	}
	if (!n_sources) {
		struct group_req gr;

		memset(&gr, 0, sizeof(gr));
		gr.gr_interface = (uint32_t)ifr.ifr_ifindex;
		fill(&gr.gr_group, family, group);
		if (setsockopt(fd, level, MCAST_JOIN_GROUP, &gr, sizeof(gr)) < 0)
			goto refused;
		return fd;
	}
	for (i = 0; i < n_sources; i++) {
		struct group_source_req gsr;

		memset(&gsr, 0, sizeof(gsr));
		gsr.gsr_interface = (uint32_t)ifr.ifr_ifindex;
		fill(&gsr.gsr_group, family, group);
		fill(&gsr.gsr_source, family, sources[i]);
		if (setsockopt(fd, level, MCAST_JOIN_SOURCE_GROUP, &gsr, sizeof(gsr)) < 0)
			goto refused;
	}
	return fd;
refused:
	e = errno;
	snprintf(err, errlen, "multicast join on %s%s%s: the kernel refused %s: %s", ifname,
		 netns && netns[0] ? " in namespace " : "", netns && netns[0] ? netns : "",
		 n_sources ? "MCAST_JOIN_SOURCE_GROUP" : "MCAST_JOIN_GROUP", strerror(e));
	close(fd);
	return -e;
}
