/* SPDX-License-Identifier: MIT */
/*
 * Baseline relay for the relay benchmark (bench/relay.ts, issue #4): the
 * bare C AF_PACKET relay that the engine must at least match. Same kernel
 * interface as the engine, none of its machinery (no shared region, no
 * policy table, no counters per output):
 *   RX  one TPACKET_V3 ring (256 blocks of 64 KiB, as the engine), frames
 *       we sent ourselves ignored (PACKET_IGNORE_OUTGOING)
 *   TX  one TPACKET_V2 PACKET_TX_RING with PACKET_QDISC_BYPASS
 * Per retired RX block (the burst): each UDP datagram to --listen is
 * written once per subscriber into a TX frame, behind a header built from a
 * per-subscriber template (addresses, ports, MACs), with the IPv4 and UDP
 * checksums adjusted incrementally (RFC 1624); then ONE send() for the
 * whole burst. A frame from a local sender with checksum offload
 * (TP_STATUS_CSUMNOTREADY: the UDP field holds only the pseudo-header sum)
 * has its payload summed once, reused for every subscriber.
 *
 *   afpacket_relay --ifname DEV --listen IPV4:PORT --to IPV4:PORT[,...]
 *                  --dst-mac aa:bb:cc:dd:ee:ff [--seconds N]
 *
 * IPv4 only, no VLAN, no fragments, one next hop for every subscriber: a
 * baseline, not a product. The kernel stack also sees the datagrams: the
 * bench drops them at the netdev ingress hook, after the packet taps (as
 * src/relay/nft.ts does for the engine). Runs until SIGTERM or N seconds,
 * then prints {"received":R,"sent":S,"dropped":D,"sends":C}.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relay_common.h"

#define MAX_SUBS   64
#define RX_BLOCK   (1u << 16)
#define RX_BLOCKS  256u
#define RX_FRAME   2048u
#define TX_FRAME   2048u
#define TX_FRAMES  8192u /* 1:64 x one block of 64 B datagrams still fits */
#define HDR_LEN    42u   /* Ethernet + IPv4 + UDP */

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

struct sub {
	uint8_t hdr[HDR_LEN]; /* template: lengths, id, tos, DF and checksums zero */
	uint32_t ip_sum;      /* host-order word sum of the template's IPv4 header */
	uint32_t udp_sum;     /* folded sum of the new addresses and ports */
};

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static int parse_ep_bytes(const char *s, uint8_t addr[4], uint16_t *port)
{
	struct sockaddr_in a;

	if (parse_ep(s, &a))
		return -1;
	memcpy(addr, &a.sin_addr, 4);
	*port = ntohs(a.sin_port);
	return *port ? 0 : -1;
}

static int parse_mac(const char *s, uint8_t m[6])
{
	unsigned v[6], i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -1;
	for (i = 0; i < 6; i++)
		m[i] = (uint8_t)v[i];
	return 0;
}

int main(int argc, char **argv)
{
	static struct sub subs[MAX_SUBS];
	const char *ifname = NULL, *listen_s = NULL, *to_s = NULL, *mac_s = NULL;
	uint8_t laddr[4], dst_mac[6], if_mac[6];
	uint16_t lport;
	unsigned nsubs = 0, seconds = 0, i, k, rx_cur = 0, tx_head = 0;
	unsigned long long received = 0, sent = 0, dropped = 0, sends = 0;
	int dirty = 0; /* frames may still be requested after a short send() */
	struct tpacket_req3 rq = { 0 };
	struct tpacket_req tq = { 0 };
	struct sockaddr_ll sll = { 0 };
	struct ifreq ifr = { 0 };
	struct timespec t0, now;
	uint8_t *rx_map, *tx_map;
	int rx_fd, tx_fd, v3 = TPACKET_V3, v2 = TPACKET_V2, one = 1, sndbuf = 64 << 20;
	char *list, *tok;

	for (i = 1; i + 1 < (unsigned)argc; i += 2) {
		if (!strcmp(argv[i], "--ifname"))
			ifname = argv[i + 1];
		else if (!strcmp(argv[i], "--listen"))
			listen_s = argv[i + 1];
		else if (!strcmp(argv[i], "--to"))
			to_s = argv[i + 1];
		else if (!strcmp(argv[i], "--dst-mac"))
			mac_s = argv[i + 1];
		else if (!strcmp(argv[i], "--seconds"))
			seconds = (unsigned)atoi(argv[i + 1]);
	}
	if (!ifname || !listen_s || !to_s || !mac_s || parse_ep_bytes(listen_s, laddr, &lport) ||
	    parse_mac(mac_s, dst_mac)) {
		fprintf(stderr, "usage: %s --ifname DEV --listen IPV4:PORT --to IPV4:PORT[,...] "
			"--dst-mac aa:bb:cc:dd:ee:ff [--seconds N]\n", argv[0]);
		return 2;
	}

	rx_fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	tx_fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (rx_fd < 0 || tx_fd < 0) {
		perror("afpacket_relay: socket");
		return 1;
	}
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(rx_fd, SIOCGIFINDEX, &ifr)) {
		perror("afpacket_relay: SIOCGIFINDEX");
		return 1;
	}
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = ifr.ifr_ifindex;
	if (ioctl(rx_fd, SIOCGIFHWADDR, &ifr)) {
		perror("afpacket_relay: SIOCGIFHWADDR");
		return 1;
	}
	memcpy(if_mac, ifr.ifr_hwaddr.sa_data, 6);

	/* subscriber templates: everything but the per-packet words */
	list = strdup(to_s);
	for (tok = strtok(list, ","); tok && nsubs < MAX_SUBS; tok = strtok(NULL, ",")) {
		struct sub *s = &subs[nsubs++];
		uint8_t *h = s->hdr, *ip = h + 14, *udp = ip + 20, daddr[4];
		uint16_t dport;

		if (parse_ep_bytes(tok, daddr, &dport)) {
			fprintf(stderr, "afpacket_relay: bad subscriber %s\n", tok);
			return 2;
		}
		memcpy(h, dst_mac, 6);
		memcpy(h + 6, if_mac, 6);
		put16(h + 12, ETH_P_IP);
		ip[0] = 0x45;
		ip[8] = 64;
		ip[9] = 17;
		memcpy(ip + 12, laddr, 4);
		memcpy(ip + 16, daddr, 4);
		put16(udp, lport);
		put16(udp + 2, dport);
		s->ip_sum = sum16(0, ip, 20);
		s->udp_sum = fold(sum16(sum16(sum16(0, laddr, 4), daddr, 4), udp, 4));
	}

	/* RX: TPACKET_V3, blocks retired after 1 ms at the latest */
	rq.tp_block_size = RX_BLOCK;
	rq.tp_block_nr = RX_BLOCKS;
	rq.tp_frame_size = RX_FRAME;
	rq.tp_frame_nr = RX_BLOCK / RX_FRAME * RX_BLOCKS;
	rq.tp_retire_blk_tov = 1;
	if (setsockopt(rx_fd, SOL_PACKET, PACKET_VERSION, &v3, sizeof(v3)) ||
	    setsockopt(rx_fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) ||
	    setsockopt(rx_fd, SOL_PACKET, PACKET_RX_RING, &rq, sizeof(rq))) {
		perror("afpacket_relay: RX ring");
		return 1;
	}
	rx_map = mmap(NULL, (size_t)RX_BLOCK * RX_BLOCKS, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_LOCKED | MAP_POPULATE, rx_fd, 0);
	if (rx_map == MAP_FAILED)
		rx_map = mmap(NULL, (size_t)RX_BLOCK * RX_BLOCKS, PROT_READ | PROT_WRITE,
			      MAP_SHARED, rx_fd, 0);
	sll.sll_protocol = htons(ETH_P_ALL);
	if (rx_map == MAP_FAILED || bind(rx_fd, (struct sockaddr *)&sll, sizeof(sll))) {
		perror("afpacket_relay: RX mmap/bind");
		return 1;
	}

	/* TX: TPACKET_V2 ring, qdisc bypass, send-only (protocol 0) */
	tq.tp_block_size = TX_FRAME * 2;
	tq.tp_frame_size = TX_FRAME;
	tq.tp_frame_nr = TX_FRAMES;
	tq.tp_block_nr = TX_FRAMES / 2;
	if (setsockopt(tx_fd, SOL_PACKET, PACKET_VERSION, &v2, sizeof(v2)) ||
	    setsockopt(tx_fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) ||
	    setsockopt(tx_fd, SOL_PACKET, PACKET_TX_RING, &tq, sizeof(tq))) {
		perror("afpacket_relay: TX ring");
		return 1;
	}
	setsockopt(tx_fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
	tx_map = mmap(NULL, (size_t)TX_FRAME * TX_FRAMES, PROT_READ | PROT_WRITE, MAP_SHARED,
		      tx_fd, 0);
	sll.sll_protocol = 0;
	if (tx_map == MAP_FAILED || bind(tx_fd, (struct sockaddr *)&sll, sizeof(sll))) {
		perror("afpacket_relay: TX mmap/bind");
		return 1;
	}

	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	printf("{\"ready\":true}\n");
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!stop) {
		struct tpacket_block_desc *b = (void *)(rx_map + (size_t)rx_cur * RX_BLOCK);
		struct tpacket3_hdr *h;
		unsigned n, queued = 0;

		if (seconds) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if ((unsigned)(now.tv_sec - t0.tv_sec) >= seconds)
				break;
		}
		/* pairs with the kernel's smp_wmb before it sets TP_STATUS_USER */
		if (!(__atomic_load_n(&b->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) {
			struct pollfd pfd = { .fd = rx_fd, .events = POLLIN };

			if (dirty) {
				/* idle: push out what a short send() left requested */
				ssize_t r = send(tx_fd, NULL, 0, MSG_DONTWAIT);

				sends++;
				dirty = r > 0 || (r < 0 && (errno == EAGAIN || errno == ENOBUFS));
			}
			poll(&pfd, 1, dirty ? 1 : 100);
			continue;
		}
		n = b->hdr.bh1.num_pkts;
		h = (void *)((uint8_t *)b + b->hdr.bh1.offset_to_first_pkt);
		for (i = 0; i < n; i++, h = (void *)((uint8_t *)h + h->tp_next_offset)) {
			const uint8_t *f = (const uint8_t *)h + h->tp_mac, *ip = f + 14, *udp, *pl;
			unsigned ihl, plen;
			uint16_t ulen, tot, id, frag, csum, m_old = 0;
			uint32_t psum = 0;
			int partial = (h->tp_status & TP_STATUS_CSUMNOTREADY) != 0;

			if (h->tp_snaplen < HDR_LEN || f[12] != 0x08 || f[13] != 0x00 || ip[9] != 17 ||
			    memcmp(ip + 16, laddr, 4))
				continue;
			ihl = (ip[0] & 15u) * 4u;
			udp = ip + ihl;
			/* fragments and other ports are not ours */
			if ((ip[0] >> 4) != 4 || ihl < 20 || (((ip[6] << 8) | ip[7]) & 0x3fff) ||
			    ((udp[2] << 8) | udp[3]) != lport)
				continue;
			ulen = (uint16_t)(udp[4] << 8 | udp[5]);
			if (ulen < 8 || 14u + ihl + ulen > h->tp_snaplen)
				continue;
			received++;
			pl = udp + 8;
			plen = ulen - 8u;
			tot = (uint16_t)(20 + ulen);
			id = (uint16_t)(ip[4] << 8 | ip[5]);
			frag = (uint16_t)((ip[6] << 8) & 0x4000);
			csum = (uint16_t)(udp[6] << 8 | udp[7]);
			/* once per datagram, shared by every subscriber */
			if (partial)
				psum = sum16(0, pl, plen);
			else if (csum)
				m_old = fold(sum16(sum16(sum16(0, ip + 12, 4), ip + 16, 4), udp, 4));
			for (k = 0; k < nsubs; k++) {
				struct tpacket2_hdr *t = (void *)(tx_map + (size_t)tx_head * TX_FRAME);
				const struct sub *s = &subs[k];
				uint8_t *d, *oip, *oudp;
				uint16_t c;

				/* the frame is ours once the kernel sent it: pairs with its
				 * status store after the skb is freed */
				if (__atomic_load_n(&t->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE) {
					/* ring full: hand the kernel what is queued, once */
					if (queued) {
						send(tx_fd, NULL, 0, MSG_DONTWAIT);
						sends++;
						queued = 0;
					}
					if (__atomic_load_n(&t->tp_status, __ATOMIC_ACQUIRE) !=
					    TP_STATUS_AVAILABLE) {
						dropped++;
						continue;
					}
				}
				d = (uint8_t *)t + TPACKET2_HDRLEN - sizeof(struct sockaddr_ll);
				oip = d + 14;
				oudp = oip + 20;
				memcpy(d, s->hdr, HDR_LEN);
				oip[1] = ip[1];
				put16(oip + 2, tot);
				put16(oip + 4, id);
				put16(oip + 6, frag);
				put16(oip + 10, (uint16_t)~fold(s->ip_sum + ip[1] + tot + id + frag));
				put16(oudp + 4, ulen);
				if (partial)
					c = (uint16_t)~fold(s->udp_sum + 17u + ulen + ulen + psum);
				else if (csum)
					/* RFC 1624 eqn. 3: only addresses and ports changed */
					c = (uint16_t)~fold((uint16_t)~csum + (uint16_t)~m_old + s->udp_sum);
				else
					c = 0;
				put16(oudp + 6, (csum || partial) && !c ? 0xffff : c);
				memcpy(d + HDR_LEN, pl, plen);
				t->tp_len = HDR_LEN + plen;
				/* the frame's bytes before its status: pairs with the
				 * kernel's smp_rmb in __packet_get_status */
				__atomic_store_n(&t->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
				tx_head = (tx_head + 1) & (TX_FRAMES - 1);
				queued++;
				sent++;
			}
		}
		/* one send() for the burst */
		if (queued) {
			send(tx_fd, NULL, 0, MSG_DONTWAIT);
			sends++;
			dirty = 1;
		}
		/* done with the block: pairs with the kernel's read of block_status */
		__atomic_store_n(&b->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
		rx_cur = (rx_cur + 1) % RX_BLOCKS;
	}
	printf("{\"received\":%llu,\"sent\":%llu,\"dropped\":%llu,\"sends\":%llu}\n", received, sent,
	       dropped, sends);
	return 0;
}
