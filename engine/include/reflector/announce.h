/* SPDX-License-Identifier: MIT */
/*
 * Announcing an address a host has just taken over from another (a cluster
 * relay's listen address moving to the standby node): IPv4 neighbours learn
 * the new MAC from a gratuitous ARP request, IPv6 neighbours from an
 * unsolicited neighbour advertisement with the override flag (RFC 4861
 * 7.2.6). Both are sent to everyone on the link through an AF_PACKET socket
 * on the interface; nothing here runs on the fast path.
 */
#ifndef REFLECTOR_ANNOUNCE_H
#define REFLECTOR_ANNOUNCE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Room for the longer of the two frames (the neighbour advertisement, 86 bytes). */
#define RF_ANNOUNCE_MAX 96u

/*
 * Build the frame announcing `addr` (family 4: the first 4 bytes; 6: all 16)
 * at `mac` into `out` (RF_ANNOUNCE_MAX bytes). Returns its length, or 0 for
 * a family other than 4 or 6.
 */
size_t rf_announce_frame(int family, const uint8_t mac[6], const uint8_t addr[16], uint8_t *out);

/*
 * Send that frame `count` times on interface `ifname`, inside network
 * namespace `netns` (a name under /run/netns or a path; NULL or "" = the
 * caller's). The MAC is the interface's own. Returns 0, or -errno with a
 * message naming the interface in `err`.
 */
int rf_announce(const char *netns, const char *ifname, int family, const uint8_t addr[16], int count,
		char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
