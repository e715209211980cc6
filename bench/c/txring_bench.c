/* SPDX-License-Identifier: MIT */
/*
 * Baseline sender for the TX benchmark (bench/tx.ts, issue #2): the bare
 * AF_PACKET PACKET_TX_RING loop the engine is built on, with
 * PACKET_QDISC_BYPASS and ONE send() per `--batch` frames, no scheduling, no
 * rings shared with anyone: the ceiling for the engine's TX path.
 *
 *   txring_bench --ifname DEV --dst IPV4 --dst-mac aa:bb:cc:dd:ee:ff
 *                [--src IPV4] [--src-mac MAC] [--port 9] [--size 64]
 *                [--batch 64] [--count N] [--warmup-ms 200] [--duration-ms 1000]
 *                [--vnet 0|1]
 *
 * One Ethernet/IPv4/UDP frame (checksums computed once) is copied into each
 * ring frame, as the engine copies each packet. Prints one JSON line like
 * sendmmsg_bench (syscalls = send() calls in the window). Run it inside the
 * sender's namespace (ip netns exec); needs CAP_NET_RAW. Exit 2 on bad usage,
 * 1 on a system error.
 *
 * --vnet 1 ("txring-vnet"): each frame behind a virtio_net_hdr whose hdr_len
 * is the whole frame (PACKET_VNET_HDR), the kernel path the engine's
 * afpacket port uses (engine/src/port_afpacket.c): the kernel copies the
 * frame into the skb head instead of attaching the ring page as a zero-copy
 * fragment that a veth copies again. The bare loop on the engine's own
 * kernel path, next to the plain one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"

#define USAGE "--ifname DEV --dst IPV4 --dst-mac MAC [--src IPV4] [--src-mac MAC] [--port 9] [--size 64] [--batch 64] [--count N] [--warmup-ms 200] [--duration-ms 1000] [--vnet 0|1]"
#define FRAME_SIZE 2048u
#define FRAMES     1024u
#define VNET_LEN   10u /* sizeof(struct virtio_net_hdr) */

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct tpacket_req req = { .tp_block_size = FRAME_SIZE * 4, .tp_frame_size = FRAME_SIZE,
				   .tp_block_nr = FRAMES / 4, .tp_frame_nr = FRAMES };
	struct sockaddr_ll sll = { .sll_family = AF_PACKET };
	uint8_t frame[1600], *ring;
	uint32_t head = 0, data_off = TPACKET_ALIGN(sizeof(struct tpacket2_hdr)), flen;
	uint64_t queued = 0, calls = 0;
	struct bench_window w;
	int fd, v = TPACKET_V2, one = 1;
	struct ifreq ifr;

	bench_parse(argc, argv, &o, USAGE);
	flen = o.ifname ? bench_udp_frame(frame, &o) : 0;
	if (!flen)
		bench_usage(argv[0], USAGE);

	fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) {
		perror("txring_bench: socket(AF_PACKET) (needs CAP_NET_RAW)");
		return 1;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", o.ifname);
	if (ioctl(fd, SIOCGIFINDEX, &ifr)) {
		fprintf(stderr, "txring_bench: interface %s: %s\n", o.ifname, strerror(errno));
		return 1;
	}
	sll.sll_ifindex = ifr.ifr_ifindex;
	if (!o.src_mac && !ioctl(fd, SIOCGIFHWADDR, &ifr))
		memcpy(frame + 6, ifr.ifr_hwaddr.sa_data, 6);
	/* before the ring: the kernel refuses PACKET_VNET_HDR once it exists */
	if (o.vnet && setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one))) {
		perror("txring_bench: setsockopt(PACKET_VNET_HDR)");
		return 1;
	}
	if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof(req))) {
		perror("txring_bench: setsockopt");
		return 1;
	}
	ring = mmap(NULL, (size_t)FRAMES * FRAME_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ring == MAP_FAILED || bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		perror("txring_bench: mmap/bind");
		return 1;
	}

	bench_window_arm(&w, &o);
	for (;;) {
		unsigned k;

		for (k = 0; k < o.batch; k++) {
			struct tpacket2_hdr *h = (struct tpacket2_hdr *)(ring + (size_t)head * FRAME_SIZE);

			if (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE)
				break; /* ring full: send what we have */
			if (o.vnet) {
				/* virtio_net_hdr: no offload, hdr_len = the whole frame
				 * (native byte order, as port_afpacket.c writes it) */
				uint8_t *vh = (uint8_t *)h + data_off;
				uint16_t hl = (uint16_t)flen;

				memset(vh, 0, VNET_LEN);
				memcpy(vh + 2, &hl, 2);
				memcpy(vh + VNET_LEN, frame, flen);
				h->tp_len = flen + VNET_LEN;
			} else {
				memcpy((uint8_t *)h + data_off, frame, flen);
				h->tp_len = flen;
			}
			__atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
			head = (head + 1) % FRAMES;
		}
		queued += k;
		/* one system call per batch */
		if (send(fd, NULL, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS &&
		    errno != EINTR) {
			perror("txring_bench: send");
			return 1;
		}
		calls++;
		if (bench_window_tick(&w, &o, queued, calls))
			break;
	}
	bench_window_end(&w, o.vnet ? "txring-vnet" : "txring", &o, queued, calls, queued);
	munmap(ring, (size_t)FRAMES * FRAME_SIZE);
	close(fd);
	return 0;
}
