/* SPDX-License-Identifier: MIT */
/*
 * Paced origin for the relay benchmark (bench/relay.ts): batches of 32
 * datagrams to one destination at a given rate (0 = as fast as possible)
 * for a given time, then prints {"sent":N,"seconds":S,"mode":"udp"|"ring"|"ring+vnet"|"xdp"}.
 *
 *   relay_origin --dst IPV4:PORT --size BYTES --pps RATE --ms DURATION
 *                [--ifname DEV --src IPV4:PORT --dst-mac aa:bb:cc:dd:ee:ff
 *                 [--xdp 1 [--xdp-hold DUMMY] | --vnet 0|1]]
 *   relay_origin --gro DEV on|off      (ETHTOOL_SGRO: the receiving veth's NAPI, see --xdp)
 *
 * Default: sendmmsg() on a connected UDP socket. With --ifname (and --src,
 * --dst-mac) the origin sends through a PACKET_TX_RING with qdisc bypass:
 * every ring frame is written once with the same complete frame (IPv4 DF,
 * full UDP checksum), and a batch costs one status store per frame and one
 * send(). That is several times the UDP socket's rate on this host, so the
 * relay under test, not the origin, is the limit (issue #4). Its frames
 * carry a final checksum (as from a remote origin), not the veth's
 * CHECKSUM_PARTIAL of a local UDP socket.
 *
 * --vnet 1 (default): each ring frame is preceded by a virtio_net_hdr, so
 * the kernel copies the frame into the skb head rather than attaching the
 * ring page that the veth then copies again: 1.7x the frames per second on
 * one CPU here (1316 B: ~190 k -> ~320 k per 0.5 s run pinned to CPU 0,
 * medians of 4 alternating runs; 64 B: 390 k -> 740 k pps).
 *
 * --xdp 1: no socket at all. The frame (the same one) is the input of a
 * BPF_PROG_TEST_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES, Linux
 * >= 5.18, as xdp-tools' xdp-trafficgen sends): the kernel puts it in page
 * pool pages once, runs the XDP program on each repetition and, the program
 * returning XDP_TX, redirects it out of ctx_in's ingress_ifindex (DEV) with
 * that device's ndo_xdp_xmit, flushed every 64 frames: no skb on the origin
 * side, the frames land in the veth peer's XDP ring as xdp_frames. The peer
 * takes them only when its NAPI is on (veth_xdp_xmit: -ENXIO otherwise, the
 * frames dropped silently: the sender cannot tell), which GRO on the peer
 * turns on: `--gro DEV on` in the peer's namespace. What arrived must be
 * counted on the receiving side; this counts the frames it handed over.
 * The program is raw instructions loaded with bpf(BPF_PROG_LOAD) (no libbpf,
 * no clang): it rewrites the 42 bytes of Ethernet, IPv4 and UDP header with
 * the frame's own (immediate stores), then returns XDP_TX. The pages are
 * recycled within a run without being reinitialised, and a relay that
 * rewrites headers in place (the kernel tier, nftables dnat) writes into
 * them: without the restore, frames sent later in the run would carry the
 * relayed headers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "relay_common.h"

#define BATCH 32
#define RING_FRAME 2048u
#define RING_FRAMES 1024u
/* frames per BPF_PROG_TEST_RUN at full speed (each call sets up a page
 * pool: ~1.5 ms of frames amortise it), and the kernel's flush batch */
#define XDP_REPEAT 4096u
#define XDP_BATCH 64u
#define HDR_LEN 42u

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint16_t csum(uint32_t s)
{
	return (uint16_t)~fold(s);
}

/* The one frame every ring slot carries: Ethernet + IPv4 + UDP + payload. */
static unsigned build_frame(uint8_t *f, const uint8_t smac[6], const uint8_t dmac[6],
			    const struct sockaddr_in *src, const struct sockaddr_in *dst,
			    const uint8_t *payload, unsigned size)
{
	uint8_t *ip = f + 14, *udp = ip + 20;
	unsigned ulen = 8 + size, tot = 20 + ulen;
	uint16_t c;
	uint32_t s;

	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)(tot >> 8);
	ip[3] = (uint8_t)tot;
	ip[6] = 0x40; /* DF */
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 12, &src->sin_addr, 4);
	memcpy(ip + 16, &dst->sin_addr, 4);
	c = csum(sum16(0, ip, 20));
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	memcpy(udp, &src->sin_port, 2);
	memcpy(udp + 2, &dst->sin_port, 2);
	udp[4] = (uint8_t)(ulen >> 8);
	udp[5] = (uint8_t)ulen;
	udp[6] = udp[7] = 0;
	memcpy(udp + 8, payload, size);
	/* pseudo-header + UDP header + payload */
	s = sum16(0, ip + 12, 8) + 17u + ulen;
	c = csum(sum16(s, udp, ulen));
	c = c ? c : 0xffff;
	udp[6] = (uint8_t)(c >> 8);
	udp[7] = (uint8_t)c;
	return 14 + tot;
}

struct ring {
	int fd;
	uint8_t *map;
	unsigned head;
	unsigned vnet; /* bytes of virtio_net_hdr in front of each frame (0: none) */
};

static int ring_open(struct ring *r, const char *ifname, const uint8_t dmac[6],
		     const struct sockaddr_in *src, const struct sockaddr_in *dst,
		     const uint8_t *payload, unsigned size)
{
	struct tpacket_req tq = { RING_FRAME * 2, RING_FRAMES / 2, RING_FRAME, RING_FRAMES };
	struct sockaddr_ll sll = { .sll_family = AF_PACKET };
	struct ifreq ifr = { 0 };
	int v2 = TPACKET_V2, one = 1, sndbuf = 16 << 20;
	unsigned i, len;
	uint8_t smac[6];

	r->fd = socket(AF_PACKET, SOCK_RAW, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (r->fd < 0 || ioctl(r->fd, SIOCGIFINDEX, &ifr))
		return -1;
	sll.sll_ifindex = ifr.ifr_ifindex;
	if (ioctl(r->fd, SIOCGIFHWADDR, &ifr))
		return -1;
	memcpy(smac, ifr.ifr_hwaddr.sa_data, 6);
	if (setsockopt(r->fd, SOL_PACKET, PACKET_VERSION, &v2, sizeof(v2)) ||
	    setsockopt(r->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)))
		return -1;
	/* a virtio_net_hdr whose hdr_len is the whole frame: the kernel copies
	 * the frame into the skb's head instead of attaching the ring's page,
	 * which a veth must copy again (skb_orphan_frags) before it passes it
	 * on; as the engine does (port_afpacket.c). Without it (older kernels)
	 * plain frames. Before the ring: the kernel refuses it after. */
	r->vnet = r->vnet && !setsockopt(r->fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) ?
		  (unsigned)sizeof(struct virtio_net_hdr) : 0;
	if (setsockopt(r->fd, SOL_PACKET, PACKET_TX_RING, &tq, sizeof(tq)))
		return -1;
	setsockopt(r->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
	r->map = mmap(NULL, (size_t)RING_FRAME * RING_FRAMES, PROT_READ | PROT_WRITE, MAP_SHARED,
		      r->fd, 0);
	if (r->map == MAP_FAILED || bind(r->fd, (struct sockaddr *)&sll, sizeof(sll)))
		return -1;
	for (i = 0; i < RING_FRAMES; i++) {
		struct tpacket2_hdr *t = (void *)(r->map + (size_t)i * RING_FRAME);

		uint8_t *f = (uint8_t *)t + TPACKET2_HDRLEN - sizeof(struct sockaddr_ll) + r->vnet;

		len = build_frame(f, smac, dmac, src, dst, payload, size);
		if (r->vnet) {
			struct virtio_net_hdr vh = { .gso_type = VIRTIO_NET_HDR_GSO_NONE,
						     .hdr_len = (uint16_t)len };

			memcpy(f - r->vnet, &vh, sizeof(vh));
		}
		t->tp_len = len + r->vnet;
	}
	r->head = 0;
	return 0;
}

/* Request up to n frames (those the kernel has sent back) and send them. */
static unsigned ring_send(struct ring *r, unsigned n)
{
	unsigned k;

	for (k = 0; k < n; k++) {
		struct tpacket2_hdr *t = (void *)(r->map + (size_t)r->head * RING_FRAME);

		/* ours again once sent: pairs with the kernel's status store */
		if (__atomic_load_n(&t->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE)
			break;
		/* the frame (written at open) before its status: pairs with the
		 * kernel's smp_rmb in __packet_get_status */
		__atomic_store_n(&t->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
		r->head = (r->head + 1) & (RING_FRAMES - 1);
	}
	if (send(r->fd, NULL, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS)
		return 0;
	return k;
}

/* ------------------------------------------------------------ --xdp --- */

static long sys_bpf(int cmd, union bpf_attr *a)
{
	return syscall(__NR_bpf, cmd, a, sizeof(*a));
}

#define INSN(c, d, s_, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s_), .off = (o), .imm = (i) })

/* The XDP program: if the frame holds HDR_LEN bytes, store hdr (the frame's
 * own first HDR_LEN bytes) over them; return XDP_TX. */
static int xdp_prog_load(const uint8_t *hdr)
{
	struct bpf_insn p[32];
	union bpf_attr a;
	static char log[4096];
	unsigned n = 0, k;
	int fd;

	p[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, offsetof(struct xdp_md, data), 0);
	p[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_3, BPF_REG_1, offsetof(struct xdp_md, data_end), 0);
	p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_4, BPF_REG_2, 0, 0);
	p[n++] = INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_4, 0, 0, HDR_LEN);
	/* short frame: skip the HDR_LEN / 4 word stores and the half-word one */
	p[n++] = INSN(BPF_JMP | BPF_JGT | BPF_X, BPF_REG_4, BPF_REG_3, HDR_LEN / 4 + 1, 0);
	for (k = 0; k + 4 <= HDR_LEN; k += 4) {
		uint32_t w;

		memcpy(&w, hdr + k, 4); /* host order in, the same bytes out */
		p[n++] = INSN(BPF_ST | BPF_MEM | BPF_W, BPF_REG_2, 0, (int16_t)k, (int32_t)w);
	}
	{
		uint16_t h;

		memcpy(&h, hdr + k, 2);
		p[n++] = INSN(BPF_ST | BPF_MEM | BPF_H, BPF_REG_2, 0, (int16_t)k, h);
	}
	p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_TX);
	p[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP;
	a.expected_attach_type = BPF_XDP;
	a.insns = (uint64_t)(uintptr_t)p;
	a.insn_cnt = n;
	a.license = (uint64_t)(uintptr_t)"Dual MIT/GPL";
	a.log_buf = (uint64_t)(uintptr_t)log;
	a.log_size = sizeof(log);
	a.log_level = 1;
	fd = (int)sys_bpf(BPF_PROG_LOAD, &a);
	if (fd < 0)
		fprintf(stderr, "relay_origin: BPF_PROG_LOAD: %s\n%s\n", strerror(errno), log);
	return fd;
}

struct xdp_tx {
	int prog;
	uint8_t frame[2048];
	unsigned len;
	struct xdp_md ctx;
};

static int xdp_open(struct xdp_tx *x, const char *ifname, const uint8_t dmac[6],
		    const struct sockaddr_in *src, const struct sockaddr_in *dst,
		    const uint8_t *payload, unsigned size)
{
	struct ifreq ifr = { 0 };
	uint8_t smac[6];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (fd < 0 || ioctl(fd, SIOCGIFINDEX, &ifr))
		return -1;
	memset(&x->ctx, 0, sizeof(x->ctx));
	x->ctx.ingress_ifindex = (uint32_t)ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		return -1;
	close(fd);
	memcpy(smac, ifr.ifr_hwaddr.sa_data, 6);
	x->len = build_frame(x->frame, smac, dmac, src, dst, payload, size);
	x->ctx.data_end = x->len;
	x->prog = xdp_prog_load(x->frame);
	return x->prog < 0 ? -1 : 0;
}

/* Attach the program to HOLD (a device without traffic: a dummy) in generic
 * mode for the life of this process. The kernel's XDP dispatcher then has
 * it already, and each BPF_PROG_TEST_RUN only takes a reference instead of
 * rebuilding the dispatcher image (bpf_prog_change_xdp: ~360 us per call
 * here, more than 1,000 frames' worth). The link goes with the process. */
static int xdp_hold(struct xdp_tx *x, const char *hold)
{
	union bpf_attr a;
	unsigned idx = if_nametoindex(hold);

	if (!idx)
		return -1;
	memset(&a, 0, sizeof(a));
	a.link_create.prog_fd = (uint32_t)x->prog;
	a.link_create.target_ifindex = idx;
	a.link_create.attach_type = BPF_XDP;
	a.link_create.flags = XDP_FLAGS_SKB_MODE;
	return sys_bpf(BPF_LINK_CREATE, &a) < 0 ? -1 : 0;
}

/* n frames out of the device (handed to its ndo_xdp_xmit). Returns n, or 0. */
static unsigned xdp_send(struct xdp_tx *x, unsigned n)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.test.prog_fd = (uint32_t)x->prog;
	a.test.data_in = (uint64_t)(uintptr_t)x->frame;
	a.test.data_size_in = x->len;
	a.test.ctx_in = (uint64_t)(uintptr_t)&x->ctx;
	a.test.ctx_size_in = sizeof(x->ctx);
	a.test.repeat = n;
	a.test.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
	a.test.batch_size = XDP_BATCH;
	if (sys_bpf(BPF_PROG_TEST_RUN, &a)) {
		static int told;

		if (!told++)
			fprintf(stderr, "relay_origin: BPF_PROG_TEST_RUN: %s\n", strerror(errno));
		return 0;
	}
	return n;
}

/* --gro DEV on|off: ETHTOOL_SGRO (no ethtool binary needed). */
static int set_gro(const char *ifname, const char *v)
{
	struct ethtool_value ev = { .cmd = ETHTOOL_SGRO };
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (strcmp(v, "on") && strcmp(v, "off")) {
		fprintf(stderr, "relay_origin: --gro DEV on|off\n");
		return 2;
	}
	ev.data = !strcmp(v, "on");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = (void *)&ev;
	if (fd < 0 || ioctl(fd, SIOCETHTOOL, &ifr)) {
		fprintf(stderr, "relay_origin: ETHTOOL_SGRO %s %s: %s\n", ifname, v, strerror(errno));
		return 1;
	}
	ev.cmd = ETHTOOL_GGRO;
	if (ioctl(fd, SIOCETHTOOL, &ifr) || ev.data != (uint32_t)!strcmp(v, "on")) {
		fprintf(stderr, "relay_origin: GRO on %s did not become %s\n", ifname, v);
		return 1;
	}
	printf("{\"gro\":\"%s\",\"dev\":\"%s\"}\n", v, ifname);
	return 0;
}

int main(int argc, char **argv)
{
	static uint8_t payload[1500];
	static struct mmsghdr msgs[BATCH];
	static struct iovec iov[BATCH];
	struct sockaddr_in to, from;
	const char *dst = NULL, *ifname = NULL, *src = NULL, *mac = NULL, *hold = NULL;
	unsigned size = 64, ms = 1000, i, m[6];
	uint8_t dmac[6];
	double pps = 0;
	uint64_t t0, end, sent = 0;
	struct ring ring = { -1, NULL, 0, 1 };
	static struct xdp_tx xtx;
	int fd = -1, sndbuf = 4 << 20, xdp = 0;

	if (argc == 4 && !strcmp(argv[1], "--gro"))
		return set_gro(argv[2], argv[3]);

	for (i = 1; i + 1 < (unsigned)argc; i += 2) {
		if (!strcmp(argv[i], "--dst"))
			dst = argv[i + 1];
		else if (!strcmp(argv[i], "--size"))
			size = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--pps"))
			pps = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--ms"))
			ms = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--ifname"))
			ifname = argv[i + 1];
		else if (!strcmp(argv[i], "--src"))
			src = argv[i + 1];
		else if (!strcmp(argv[i], "--dst-mac"))
			mac = argv[i + 1];
		else if (!strcmp(argv[i], "--vnet"))
			ring.vnet = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--xdp"))
			xdp = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--xdp-hold"))
			hold = argv[i + 1];
	}
	if (!dst || size < 8 || size > 1472 || parse_ep(dst, &to) || (xdp && !ifname) ||
	    (ifname && (!src || !mac || parse_ep(src, &from) ||
			sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6))) {
		fprintf(stderr, "usage: %s --dst IPV4:PORT --size BYTES --pps RATE --ms DURATION "
			"[--ifname DEV --src IPV4:PORT --dst-mac aa:bb:cc:dd:ee:ff [--xdp 1 [--xdp-hold DEV] | --vnet 0|1]]\n"
			"       %s --gro DEV on|off\n", argv[0], argv[0]);
		return 2;
	}
	for (i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)i;
	if (ifname && xdp) {
		for (i = 0; i < 6; i++)
			dmac[i] = (uint8_t)m[i];
		if (xdp_open(&xtx, ifname, dmac, &from, &to, payload, size)) {
			perror("relay_origin: XDP");
			return 1;
		}
		if (hold && xdp_hold(&xtx, hold)) {
			perror("relay_origin: --xdp-hold");
			return 1;
		}
	} else if (ifname) {
		for (i = 0; i < 6; i++)
			dmac[i] = (uint8_t)m[i];
		if (ring_open(&ring, ifname, dmac, &from, &to, payload, size)) {
			perror("relay_origin: TX ring");
			return 1;
		}
	} else {
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
		if (connect(fd, (struct sockaddr *)&to, sizeof(to))) {
			perror("relay_origin: connect");
			return 1;
		}
		for (i = 0; i < BATCH; i++) {
			iov[i].iov_base = payload;
			iov[i].iov_len = size;
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
	}
	t0 = now_ns();
	end = t0 + (uint64_t)ms * 1000000ull;
	for (;;) {
		uint64_t t = now_ns();
		uint64_t due = 0;
		int n;

		if (t >= end)
			break;
		if (pps > 0) {
			/* on schedule: sent so far vs. what the rate allows by now */
			due = (uint64_t)((double)(t - t0) * pps / 1e9);
			if (sent >= due) {
				struct timespec d = { 0, 50000 };

				nanosleep(&d, NULL);
				continue;
			}
		}
		if (xdp) {
			/* paced: what is due in bursts of one flush batch (the
			 * ring's 32, about); full speed: large calls */
			uint64_t want = pps > 0 ? due - sent : XDP_REPEAT;

			n = (int)xdp_send(&xtx, (unsigned)(want < XDP_BATCH ? XDP_BATCH : want > XDP_REPEAT ? XDP_REPEAT : want));
			if (!n)
				break;
		} else {
			n = ifname ? (int)ring_send(&ring, BATCH) : sendmmsg(fd, msgs, BATCH, 0);
		}
		if (n > 0)
			sent += (uint64_t)n;
	}
	printf("{\"sent\":%llu,\"seconds\":%.6f,\"mode\":\"%s\"}\n", (unsigned long long)sent,
	       (double)(now_ns() - t0) / 1e9, xdp ? "xdp" : !ifname ? "udp" : ring.vnet ? "ring+vnet" : "ring");
	return 0;
}
