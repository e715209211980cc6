/* SPDX-License-Identifier: MIT */
/*
 * Baseline relay for the relay benchmark (bench/relay.ts, issue #4): the
 * best a user-level relay does with the kernel's UDP stack. One socket bound
 * to P; recvmmsg() up to 64 datagrams, then one sendmmsg() batch that sends
 * each datagram to every subscriber (the iovec points at the received
 * buffer: no copy in user space, the kernel copies once per send).
 *
 *   mmsg_relay --listen IPV4:PORT --to IPV4:PORT[,IPV4:PORT...] [--seconds N]
 *
 * Runs until SIGTERM or N seconds, then prints {"received":R,"sent":S}.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relay_common.h"

#define BATCH 64
#define MAX_SUBS 64

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	static uint8_t bufs[BATCH][2048];
	static struct mmsghdr in[BATCH], out[BATCH * MAX_SUBS];
	static struct iovec iin[BATCH];
	static struct sockaddr_in subs[MAX_SUBS];
	struct sockaddr_in listen_at;
	const char *listen_s = NULL, *to_s = NULL;
	unsigned nsubs = 0, seconds = 0, i, k;
	unsigned long long received = 0, sent = 0;
	struct timespec t0, now;
	struct timeval tv = { 0, 100000 };
	int fd, rcvbuf = 8 << 20;
	char *list, *tok;

	for (i = 1; i + 1 < (unsigned)argc; i += 2) {
		if (!strcmp(argv[i], "--listen"))
			listen_s = argv[i + 1];
		else if (!strcmp(argv[i], "--to"))
			to_s = argv[i + 1];
		else if (!strcmp(argv[i], "--seconds"))
			seconds = (unsigned)atoi(argv[i + 1]);
	}
	if (!listen_s || !to_s || parse_ep(listen_s, &listen_at)) {
		fprintf(stderr, "usage: %s --listen IPV4:PORT --to IPV4:PORT[,...] [--seconds N]\n", argv[0]);
		return 2;
	}
	list = strdup(to_s);
	for (tok = strtok(list, ","); tok && nsubs < MAX_SUBS; tok = strtok(NULL, ","))
		if (parse_ep(tok, &subs[nsubs++])) {
			fprintf(stderr, "mmsg_relay: bad subscriber %s\n", tok);
			return 2;
		}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&listen_at, sizeof(listen_at))) {
		perror("mmsg_relay: socket/bind");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &rcvbuf, sizeof(rcvbuf));
	/* wake up now and then to see SIGTERM and the deadline */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (i = 0; i < BATCH; i++) {
		iin[i].iov_base = bufs[i];
		iin[i].iov_len = sizeof(bufs[i]);
		in[i].msg_hdr.msg_iov = &iin[i];
		in[i].msg_hdr.msg_iovlen = 1;
	}
	printf("{\"ready\":true}\n");
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!stop) {
		int n = recvmmsg(fd, in, BATCH, MSG_WAITFORONE, NULL);
		unsigned m = 0, off = 0;

		if (seconds) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if ((unsigned)(now.tv_sec - t0.tv_sec) >= seconds)
				break;
		}
		if (n <= 0)
			continue;
		received += (unsigned)n;
		/* every datagram to every subscriber; the iovec is the receive buffer */
		for (i = 0; i < (unsigned)n; i++) {
			iin[i].iov_len = in[i].msg_len;
			for (k = 0; k < nsubs; k++, m++) {
				memset(&out[m].msg_hdr, 0, sizeof(out[m].msg_hdr));
				out[m].msg_hdr.msg_name = &subs[k];
				out[m].msg_hdr.msg_namelen = sizeof(subs[k]);
				out[m].msg_hdr.msg_iov = &iin[i];
				out[m].msg_hdr.msg_iovlen = 1;
			}
		}
		while (off < m) {
			int s = sendmmsg(fd, out + off, m - off, 0);

			if (s <= 0) {
				if (errno == EINTR)
					continue;
				break; /* send buffer full (ENOBUFS): the rest is dropped */
			}
			off += (unsigned)s;
		}
		sent += off;
		for (i = 0; i < (unsigned)n; i++)
			iin[i].iov_len = sizeof(bufs[i]);
	}
	printf("{\"received\":%llu,\"sent\":%llu}\n", received, sent);
	return 0;
}
