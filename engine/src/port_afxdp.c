/* SPDX-License-Identifier: MIT */
/*
 * AF_XDP port (port.h), TX role: an XDP socket bound to queue 0 of the
 * interface in copy mode (XDP_COPY: veth and most drivers without AF_XDP
 * support have no zero-copy mode), with raw system calls and
 * <linux/if_xdp.h> only (no libxdp or libbpf).
 *
 *   UMEM        tx_frames frames of 2048 or 4096 bytes, mmap'ed anonymous
 *               memory registered with XDP_UMEM_REG; a stack of free frames
 *   TX ring     descriptors {addr, len} we produce, the kernel consumes
 *   completion  addresses of frames the kernel is done with (the skb built
 *               from them was freed): reaped in tx_burst back onto the stack
 *   fill ring   required by bind, unused (nothing is received): 1 entry
 *
 * No XDP program is attached: sending needs none. In copy mode the kernel's
 * sendto() builds one skb per descriptor and hands it to the driver
 * (__dev_direct_xmit, no qdisc) — a shorter path than AF_PACKET's
 * tpacket_snd, which is where the engine's TX thread spends its time.
 *
 * The RX role (the relay's thread, which also sends) is AF_PACKET's
 * unchanged: a port opened with RF_PORT_RX delegates every call to an
 * rf_port_afpacket port (TPACKET_V3 RX ring, its filter, and its TX ring).
 * Only one XDP socket can own a queue without sharing its UMEM, and sharing
 * one UMEM between two threads would need a lock on the fast path.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine_internal.h"
#include "netpkt.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif
/* Linux 6.17: descriptors one sendto() may send in copy mode (default 32) */
#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9
#endif

#define XSK_FRAME_SMALL 2048u /* the UMEM chunk sizes aligned mode accepts */
#define XSK_FRAME_LARGE 4096u
#define XSK_DEFAULT_BUDGET 32u /* kernels before XDP_MAX_TX_SKB_BUDGET */
#define XSK_BIND_WAIT_MS 1000u

struct xsk_ring {
	uint32_t *producer;
	uint32_t *consumer;
	void *desc;
	void *map;
	size_t map_len;
	uint32_t mask;
};

struct rf_port {
	struct rf_port_stats stats; /* first: see engine_internal.h */
	struct rf_port *afp;        /* RX role: the AF_PACKET port every call goes to */
	int fd;
	uint8_t *umem;
	size_t umem_len;
	uint32_t frames, frame_size;
	uint32_t max_frame;         /* Ethernet header + mtu */
	struct xsk_ring tx, cq;
	uint32_t tx_head;           /* our TX producer index, published in tx_burst */
	uint32_t cq_head;           /* our completion consumer index */
	uint32_t tx_queued;         /* descriptors published since the last flush */
	uint64_t *free;             /* stack of free frame addresses */
	uint32_t nfree;
	uint8_t mac[6];
	uint32_t mtu;
	int ifindex;
};

_Static_assert(offsetof(struct rf_port, stats) == 0, "port stats first");

static int is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

static void port_free(struct rf_port *p)
{
	if (p->afp)
		rf_port_afpacket.close(p->afp);
	if (p->tx.map)
		munmap(p->tx.map, p->tx.map_len);
	if (p->cq.map)
		munmap(p->cq.map, p->cq.map_len);
	/* closing the socket unbinds it and unpins the UMEM */
	if (p->fd >= 0)
		close(p->fd);
	if (p->umem)
		munmap(p->umem, p->umem_len);
	free(p->free);
	free(p);
}

/* The XDP socket and a datagram socket for the interface ioctls (an XDP
 * socket answers none), both made inside cfg->netns when set: a socket
 * stays in the namespace it was created in, so only socket() runs there. */
static int make_sockets(struct rf_port *p, const struct rf_engine_config *cfg, int *ioc,
			const char *where, char *err, size_t errlen)
{
	int ns_fd = -1, orig_fd = -1, rc = 0, e, step = 0;
	char path[300];

	if (cfg->netns && cfg->netns[0]) {
		if (strchr(cfg->netns, '/'))
			snprintf(path, sizeof(path), "%s", cfg->netns);
		else
			snprintf(path, sizeof(path), "/run/netns/%s", cfg->netns);
		ns_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (ns_fd < 0) {
			e = errno;
			snprintf(err, errlen, "afxdp %s: cannot open network namespace %s: %s", where,
				 path, strerror(e));
			return -e;
		}
		orig_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (orig_fd < 0) {
			e = errno;
			close(ns_fd);
			snprintf(err, errlen, "afxdp %s: cannot open this thread's network namespace: %s",
				 where, strerror(e));
			return -e;
		}
		if (setns(ns_fd, CLONE_NEWNET)) {
			e = errno;
			close(ns_fd);
			close(orig_fd);
			snprintf(err, errlen, "afxdp %s: setns(%s) failed: %s%s", where, path,
				 strerror(e), e == EPERM ? " (needs CAP_SYS_ADMIN)" : "");
			return -e;
		}
	}
	p->fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		rc = -errno;
		step = 1;
	} else {
		*ioc = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (*ioc < 0) {
			rc = -errno;
			step = 2;
		}
	}
	if (ns_fd >= 0) {
		/* back to where we came from, whatever happened above */
		if (setns(orig_fd, CLONE_NEWNET) && !rc) {
			rc = -errno;
			step = 3;
		}
		close(ns_fd);
		close(orig_fd);
	}
	if (step == 1)
		snprintf(err, errlen, "afxdp %s: socket(AF_XDP) failed: %s%s", where, strerror(-rc),
			 rc == -EAFNOSUPPORT ? " (the kernel has no AF_XDP: CONFIG_XDP_SOCKETS)"
			 : rc == -EPERM ? " (needs CAP_NET_RAW)" : "");
	else if (step == 2)
		snprintf(err, errlen, "afxdp %s: socket(AF_INET) for the interface ioctls failed: %s",
			 where, strerror(-rc));
	else if (step == 3)
		snprintf(err, errlen, "afxdp %s: setns back failed: %s", where, strerror(-rc));
	return rc;
}

#define SYSFAIL(step)                                                                   \
	do {                                                                            \
		int e_ = errno;                                                         \
		snprintf(err, errlen, "afxdp %s: %s failed: %s", where, step, strerror(e_)); \
		return -e_;                                                             \
	} while (0)

/* Interface facts through the ioctl socket, checked like AF_PACKET's. */
static int read_interface(struct rf_port *p, const struct rf_engine_config *cfg, int ioc,
			  const char *where, char *err, size_t errlen)
{
	struct ifreq ifr;
	uint32_t cap = XSK_FRAME_LARGE - 14u; /* a frame holds one whole packet */

	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, cfg->ifname, strlen(cfg->ifname));
	if (ioctl(ioc, SIOCGIFINDEX, &ifr)) {
		int e = errno;

		if (e == ENODEV) {
			snprintf(err, errlen, "afxdp %s: no such interface", where);
			return -e;
		}
		SYSFAIL("SIOCGIFINDEX");
	}
	p->ifindex = ifr.ifr_ifindex;
	if (ioctl(ioc, SIOCGIFHWADDR, &ifr))
		SYSFAIL("SIOCGIFHWADDR");
	if (ifr.ifr_hwaddr.sa_family != 1 /* ARPHRD_ETHER */ &&
	    ifr.ifr_hwaddr.sa_family != 772 /* ARPHRD_LOOPBACK */) {
		snprintf(err, errlen, "afxdp %s: not an Ethernet interface (type %u)", where,
			 ifr.ifr_hwaddr.sa_family);
		return -EPROTONOSUPPORT;
	}
	memcpy(p->mac, ifr.ifr_hwaddr.sa_data, 6);
	if (ioctl(ioc, SIOCGIFMTU, &ifr))
		SYSFAIL("SIOCGIFMTU");
	if (cfg->mtu) {
		uint32_t top = (uint32_t)ifr.ifr_mtu < cap ? (uint32_t)ifr.ifr_mtu : cap;

		if (cfg->mtu < 68 || cfg->mtu > top) {
			snprintf(err, errlen, "afxdp %s: mtu = %u is invalid (accepted: 68..%u, the "
				 "interface's MTU and at most %u: one UMEM frame per packet)", where,
				 cfg->mtu, top, cap);
			return -EINVAL;
		}
		p->mtu = cfg->mtu;
	} else {
		/* lo's 65536 would need multi-buffer frames */
		p->mtu = (uint32_t)ifr.ifr_mtu < cap ? (uint32_t)ifr.ifr_mtu : cap;
	}
	p->max_frame = 14u + p->mtu;
	return 0;
}

static int map_ring(struct rf_port *p, struct xsk_ring *r, const struct xdp_ring_offset *off,
		    uint32_t entries, size_t entry_size, off_t pgoff, const char *what,
		    const char *where, char *err, size_t errlen)
{
	r->map_len = off->desc + (size_t)entries * entry_size;
	r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, p->fd,
		      pgoff);
	if (r->map == MAP_FAILED) {
		r->map = NULL;
		SYSFAIL(what);
	}
	r->producer = (uint32_t *)((uint8_t *)r->map + off->producer);
	r->consumer = (uint32_t *)((uint8_t *)r->map + off->consumer);
	r->desc = (uint8_t *)r->map + off->desc;
	r->mask = entries - 1;
	return 0;
}

static int setup_xsk(struct rf_port *p, const struct rf_engine_config *cfg, const char *where,
		     char *err, size_t errlen)
{
	struct xdp_umem_reg mr;
	struct xdp_mmap_offsets off;
	struct sockaddr_xdp sxdp;
	socklen_t optlen = sizeof(off);
	uint32_t fill = 1, i, budget;
	int sndbuf, rc;

	if (!is_pow2(cfg->tx_frames) || cfg->tx_frames < 2 * cfg->burst || cfg->tx_frames > 65536) {
		snprintf(err, errlen,
			 "afxdp %s: tx_frames = %u is invalid (accepted: a power of two in %u..65536)",
			 where, cfg->tx_frames, 2 * cfg->burst);
		return -EINVAL;
	}
	p->frames = cfg->tx_frames;
	p->frame_size = p->max_frame <= XSK_FRAME_SMALL ? XSK_FRAME_SMALL : XSK_FRAME_LARGE;
	p->umem_len = (size_t)p->frames * p->frame_size;
	p->umem = mmap(NULL, p->umem_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p->umem == MAP_FAILED) {
		p->umem = NULL;
		SYSFAIL("mmap of the UMEM");
	}
	p->free = malloc(sizeof(*p->free) * p->frames);
	if (!p->free) {
		snprintf(err, errlen, "afxdp %s: out of memory for %u frame addresses", where,
			 p->frames);
		return -ENOMEM;
	}
	for (i = 0; i < p->frames; i++)
		p->free[i] = (uint64_t)(p->frames - 1 - i) * p->frame_size;
	p->nfree = p->frames;

	memset(&mr, 0, sizeof(mr));
	mr.addr = (uint64_t)(uintptr_t)p->umem;
	mr.len = p->umem_len;
	mr.chunk_size = p->frame_size;
	mr.headroom = 0;
	if (setsockopt(p->fd, SOL_XDP, XDP_UMEM_REG, &mr, sizeof(mr)))
		SYSFAIL("XDP_UMEM_REG");
	/* bind wants a fill ring; with no RX ring nothing is ever taken from it */
	if (setsockopt(p->fd, SOL_XDP, XDP_UMEM_FILL_RING, &fill, sizeof(fill)))
		SYSFAIL("XDP_UMEM_FILL_RING");
	/* one completion entry per frame: the kernel stops sending (EAGAIN)
	 * when it cannot reserve one, so it must never be the smaller */
	if (setsockopt(p->fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &p->frames, sizeof(p->frames)))
		SYSFAIL("XDP_UMEM_COMPLETION_RING");
	if (setsockopt(p->fd, SOL_XDP, XDP_TX_RING, &p->frames, sizeof(p->frames)))
		SYSFAIL("XDP_TX_RING");
	if (getsockopt(p->fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &optlen))
		SYSFAIL("XDP_MMAP_OFFSETS");
	rc = map_ring(p, &p->tx, &off.tx, p->frames, sizeof(struct xdp_desc), XDP_PGOFF_TX_RING,
		      "mmap of the TX ring", where, err, errlen);
	if (rc)
		return rc;
	rc = map_ring(p, &p->cq, &off.cr, p->frames, sizeof(uint64_t),
		      (off_t)XDP_UMEM_PGOFF_COMPLETION_RING, "mmap of the completion ring", where,
		      err, errlen);
	if (rc)
		return rc;
	p->tx_head = *p->tx.producer;
	p->cq_head = *p->cq.consumer;
	/* every queued descriptor in one sendto() (Linux >= 6.17; older
	 * kernels send 32 per call and flush() kicks again) */
	budget = p->frames;
	if (budget >= XSK_DEFAULT_BUDGET)
		(void)setsockopt(p->fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof(budget));
	/* each skb in flight is charged to the socket until freed: room for a
	 * whole UMEM so the send buffer never stops a kick before the frames
	 * run out (best effort: FORCE needs CAP_NET_ADMIN) */
	sndbuf = (int)(p->umem_len > (1u << 29) ? (1u << 29) : p->umem_len) * 4;
	if (setsockopt(p->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)))
		(void)setsockopt(p->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	memset(&sxdp, 0, sizeof(sxdp));
	sxdp.sxdp_family = AF_XDP;
	sxdp.sxdp_flags = XDP_COPY;
	sxdp.sxdp_ifindex = (uint32_t)p->ifindex;
	sxdp.sxdp_queue_id = 0;
	/* a socket closed just before (engine stop, then start) gives the
	 * queue back from a kernel work item, a little after close(): retry
	 * EBUSY for up to XSK_BIND_WAIT_MS */
	for (i = 0; (rc = bind(p->fd, (struct sockaddr *)&sxdp, sizeof(sxdp))) && errno == EBUSY &&
		    i < XSK_BIND_WAIT_MS; i++)
		usleep(1000);
	if (rc) {
		int e = errno;

		snprintf(err, errlen, "afxdp %s: AF_XDP bind on %s queue 0 (copy mode) failed: %s%s",
			 where, cfg->ifname, strerror(e),
			 e == EBUSY ? " (another XDP socket owns the queue)" : "");
		return -e;
	}
	return 0;
}

static int xsk_open(struct rf_port **out, const struct rf_engine_config *cfg, int roles,
		    char *err, size_t errlen)
{
	struct rf_port *p;
	char where[400];
	int rc, ioc = -1;

	if (!cfg->ifname || !cfg->ifname[0] || strlen(cfg->ifname) >= IFNAMSIZ) {
		snprintf(err, errlen, "afxdp: interface name '%s' is invalid (1..%d characters)",
			 cfg->ifname ? cfg->ifname : "", IFNAMSIZ - 1);
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "afxdp interface %s: out of memory", cfg->ifname);
		return -ENOMEM;
	}
	p->fd = -1;
	if (roles & RF_PORT_RX) {
		rc = rf_port_afpacket.open(&p->afp, cfg, roles, err, errlen);
		if (rc)
			goto fail;
		rf_port_afpacket.info(p->afp, p->mac, &p->mtu, &p->ifindex);
		*out = p;
		return 0;
	}
	if (cfg->netns && cfg->netns[0])
		snprintf(where, sizeof(where), "interface %s in namespace %s", cfg->ifname, cfg->netns);
	else
		snprintf(where, sizeof(where), "interface %s", cfg->ifname);
	rc = make_sockets(p, cfg, &ioc, where, err, errlen);
	if (!rc)
		rc = read_interface(p, cfg, ioc, where, err, errlen);
	if (ioc >= 0)
		close(ioc);
	if (!rc)
		rc = setup_xsk(p, cfg, where, err, errlen);
	if (rc)
		goto fail;
	*out = p;
	return 0;
fail:
	port_free(p);
	return rc;
}

/* ------------------------------------------------------------------ RX -- */

static uint32_t xsk_rx_burst(struct rf_port *p, struct rf_rx_pkt *pkts, uint32_t n)
{
	uint32_t got;

	if (!p->afp)
		return 0;
	got = rf_port_afpacket.rx_burst(p->afp, pkts, n);
	p->stats = *rf_port_stats(p->afp);
	return got;
}

static void xsk_rx_release(struct rf_port *p)
{
	if (p->afp)
		rf_port_afpacket.rx_release(p->afp);
}

static int xsk_rx_fd(struct rf_port *p) { return p->afp ? rf_port_afpacket.rx_fd(p->afp) : -1; }

/* ------------------------------------------------------------------ TX -- */

/* Frames the kernel has finished with go back on the free stack. */
static inline void cq_reap(struct rf_port *p)
{
	/* completions are readable after this acquire: pairs with the
	 * kernel's smp_store_release of the producer (xskq_prod_submit_n) */
	uint32_t prod = __atomic_load_n(p->cq.producer, __ATOMIC_ACQUIRE);
	const uint64_t *addrs = p->cq.desc;

	if (prod == p->cq_head)
		return;
	while (p->cq_head != prod)
		p->free[p->nfree++] = addrs[p->cq_head++ & p->cq.mask];
	/* the entries were read before the kernel may reuse them: pairs with
	 * the kernel's load of the consumer before it writes entries */
	__atomic_store_n(p->cq.consumer, p->cq_head, __ATOMIC_RELEASE);
}

static uint32_t xsk_tx_burst(struct rf_port *p, struct rf_tx_pkt *pkts, uint32_t n)
{
	struct xdp_desc *ring = p->tx.desc;
	uint32_t i, added = 0;

	if (p->afp) {
		i = rf_port_afpacket.tx_burst(p->afp, pkts, n);
		p->stats = *rf_port_stats(p->afp);
		return i;
	}
	if (p->nfree < n)
		cq_reap(p);
	for (i = 0; i < n; i++) {
		uint32_t len = (uint32_t)pkts[i].hdr_len + pkts[i].payload_len;
		struct xdp_desc *d;
		uint8_t *data;
		uint64_t addr;

		if (rf_unlikely(len < 14u || len > p->max_frame)) {
			/* drop: a descriptor longer than its frame is skipped by
			 * the kernel without a completion (the frame would be
			 * lost), and no device sends a runt; taken, not sent: the
			 * caller counts RF_C_DROP_TX_ERROR */
			pkts[i].refused = 1;
			continue;
		}
		/* every frame is in the TX ring, in the kernel or on the
		 * completion ring: the TX ring (as many entries as frames)
		 * has room whenever a frame is free */
		if (p->nfree == 0)
			break;
		addr = p->free[--p->nfree];
		data = p->umem + addr;
		memcpy(data, pkts[i].hdr, pkts[i].hdr_len);
		memcpy(data + pkts[i].hdr_len, pkts[i].payload, pkts[i].payload_len);
		/* the UDP checksum's payload part, summed in the frame where the
		 * copy left it hot (port.h: csum_off) */
		if (pkts[i].csum_off)
			rf_csum_complete(data + pkts[i].csum_off,
					 rf_csum_partial(data + pkts[i].hdr_len, pkts[i].payload_len, 0));
		d = &ring[p->tx_head & p->tx.mask];
		d->addr = addr;
		d->len = len;
		d->options = 0;
		p->tx_head++;
		added++;
	}
	if (added) {
		/* ensure the frames and descriptors are visible before the kernel
		 * sees the producer move: pairs with its smp_load_acquire of the
		 * producer (xskq_cons_peek_desc) */
		__atomic_store_n(p->tx.producer, p->tx_head, __ATOMIC_RELEASE);
		p->tx_queued += added;
	}
	return i;
}

/* Descriptors published but not yet taken by the kernel. */
static inline uint32_t tx_pending(struct rf_port *p)
{
	/* pairs with the kernel's smp_store_release of the TX consumer
	 * (__xskq_cons_release) */
	return p->tx_head - __atomic_load_n(p->tx.consumer, __ATOMIC_ACQUIRE);
}

static int xsk_flush(struct rf_port *p)
{
	uint32_t frames = p->tx_queued, left, kicks = 0;
	int e = 0;

	if (p->afp) {
		int r = rf_port_afpacket.flush(p->afp);

		p->stats = *rf_port_stats(p->afp);
		return r;
	}
	left = tx_pending(p);
	p->tx_queued = 0;
	if (!left) {
		p->stats.tx_backlog = 0;
		return (int)frames;
	}
	/* one sendto() sends every pending descriptor where the kernel takes
	 * XDP_MAX_TX_SKB_BUDGET; older kernels stop after 32 with EAGAIN, so
	 * kick again while each kick makes progress */
	while (left) {
		uint32_t before = left;

		kicks++;
		p->stats.syscalls++;
		if (sendto(p->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0)
			e = errno;
		else
			e = 0;
		left = tx_pending(p);
		/* EBUSY says the device refused the last frame taken
		 * (NET_XMIT_DROP, e.g. no carrier; its frame is completed, not
		 * sent). It was counted as sent: a device error
		 * (RF_C_TX_DEVICE_ERRORS via tx_errors) */
		if (rf_unlikely(e == EBUSY))
			p->stats.tx_errors++;
		/* EAGAIN (budget spent, send buffer or completion ring full,
		 * driver busy), EBUSY, ENOBUFS (no memory for an skb),
		 * ENETDOWN: what the kernel did not take stays in the TX ring
		 * for the next flush */
		if (left == before || (e && e != EAGAIN))
			break;
		if (kicks > p->frames / XSK_DEFAULT_BUDGET)
			break;
	}
	cq_reap(p);
	/* what the kernel did not take waits in the TX ring: the caller
	 * flushes again on a deadline */
	p->stats.tx_backlog = left != 0;
	if (e && left)
		return -e;
	return (int)frames;
}

static void xsk_info(struct rf_port *p, uint8_t mac[6], uint32_t *mtu, int *ifindex)
{
	memcpy(mac, p->mac, 6);
	*mtu = p->mtu;
	*ifindex = p->ifindex;
}

static void xsk_close(struct rf_port *p)
{
	if (p)
		port_free(p);
}

const struct rf_port_ops rf_port_afxdp = {
	.name = "afxdp",
	.open = xsk_open,
	.rx_burst = xsk_rx_burst,
	.rx_release = xsk_rx_release,
	.tx_burst = xsk_tx_burst,
	.flush = xsk_flush,
	.rx_fd = xsk_rx_fd,
	.info = xsk_info,
	.close = xsk_close,
};
