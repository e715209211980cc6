/* SPDX-License-Identifier: MIT */
#ifndef RF_NETNS_SOCKET_H
#define RF_NETNS_SOCKET_H

#include <stddef.h>

/*
 * socket(domain, type | SOCK_CLOEXEC, protocol) made inside the network
 * namespace `netns` (a path, or a name under /run/netns; NULL or "": this
 * one). Only socket() runs there: the calling thread goes back to its own
 * namespace whatever happened, and the socket stays in `netns` (its binds,
 * joins and ioctls act there). Returns the descriptor, or -errno with the
 * reason in err, prefixed by `what` ("multicast join", "announce").
 */
int rf_socket_in_netns(const char *netns, int domain, int type, int protocol, const char *what,
		       char *err, size_t errlen);

#endif
