/* SPDX-License-Identifier: MIT */
/*
 * Multicast group membership for relays that listen on a group: the engine
 * reads frames with AF_PACKET (or XDP), which sees whatever reaches the
 * interface but never asks for a group. A kernel UDP socket opened in the
 * engine's namespace holds the membership: the kernel sends the IGMPv3 or
 * MLDv2 reports (and answers the querier), and programs the NIC's multicast
 * filter. The socket is never bound, so it receives nothing; closing it
 * leaves the group (the kernel sends the leave/state-change report), which
 * also happens when the process dies. Nothing here runs on the fast path.
 */
#ifndef REFLECTOR_MCAST_H
#define REFLECTOR_MCAST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RF_MCAST_MAX_SOURCES 16u /* as many as a relay has allowed prefixes */

/*
 * Join `group` (family 4: the first 4 bytes; 6: all 16) on interface
 * `ifname` inside network namespace `netns` (a name under /run/netns or a
 * path; NULL or "" = the caller's). n_sources == 0: any-source
 * (MCAST_JOIN_GROUP); otherwise source-specific, one MCAST_JOIN_SOURCE_GROUP
 * per source (sources[i], same family). Returns the socket that holds the
 * membership (close it to leave), or -errno with a message naming the
 * interface, the group and what the kernel refused in `err`.
 */
int rf_mcast_join(const char *netns, const char *ifname, int family, const uint8_t group[16],
		  const uint8_t (*sources)[16], uint32_t n_sources, char *err, size_t errlen);

/* The Ethernet address of an IPv4 (01:00:5e + low 23 bits) or IPv6
 * (33:33 + low 32 bits) group, RFC 1112 6.4 / RFC 2464 7. */
void rf_mcast_mac(int family, const uint8_t group[16], uint8_t mac[6]);

#ifdef __cplusplus
}
#endif

#endif
