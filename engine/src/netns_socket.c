/* SPDX-License-Identifier: MIT */
/* A socket made in another network namespace (netns_socket.h). */
#include "netns_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int rf_socket_in_netns(const char *netns, int domain, int type, int protocol, const char *what,
		       char *err, size_t errlen)
{
	char path[300];
	int ns_fd, orig_fd, fd, e;

	if (!netns || !netns[0]) {
		fd = socket(domain, type | SOCK_CLOEXEC, protocol);
		if (fd < 0) {
			e = errno;
			snprintf(err, errlen, "%s: socket() failed: %s", what, strerror(e));
			return -e;
		}
		return fd;
	}
	snprintf(path, sizeof(path), strchr(netns, '/') ? "%s" : "/run/netns/%s", netns);
	ns_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (ns_fd < 0) {
		e = errno;
		snprintf(err, errlen, "%s: cannot open network namespace %s: %s", what, path, strerror(e));
		return -e;
	}
	orig_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (orig_fd < 0 || setns(ns_fd, CLONE_NEWNET)) {
		e = errno;
		if (orig_fd >= 0)
			close(orig_fd);
		close(ns_fd);
		snprintf(err, errlen, "%s: cannot enter network namespace %s: %s", what, path, strerror(e));
		return -e;
	}
	fd = socket(domain, type | SOCK_CLOEXEC, protocol);
	e = fd < 0 ? errno : 0;
	/* back to where this thread came from, whatever socket() did */
	if (setns(orig_fd, CLONE_NEWNET) && fd >= 0) {
		e = errno;
		close(fd);
		fd = -1;
	}
	close(orig_fd);
	close(ns_fd);
	if (fd < 0) {
		snprintf(err, errlen, "%s: socket() in %s failed: %s", what, path, strerror(e));
		return -e;
	}
	return fd;
}
