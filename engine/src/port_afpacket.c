/* SPDX-License-Identifier: MIT */
/*
 * AF_PACKET port (port.h): a TPACKET_V3 RX ring (blocks retired by timeout)
 * and a TPACKET_V2 TX ring sent with PACKET_QDISC_BYPASS, one send() per
 * flush. RX and TX use two sockets because a socket has one TPACKET version
 * for both rings, and TX blocks of V3 are not supported by the kernel.
 *
 * Frames reach userspace through the mmap'ed rings only: the RX socket
 * carries a classic BPF filter (IPv4/IPv6 UDP, VLAN-tagged too) that the
 * relay replaces with its own, and ignores outgoing frames so ours never
 * come back. The TX socket is bound with protocol 0: it receives nothing.
 *
 * TX frames start with a virtio_net_hdr (PACKET_VNET_HDR, Linux >= 4.11)
 * whose hdr_len is the whole frame: the kernel then copies each frame into
 * the head of its skb instead of attaching the ring's page as a zero-copy
 * fragment. A veth (and lo, or a bridge to a local namespace) must copy such
 * a fragment into a newly allocated page before it passes the packet on, and
 * that page allocation, copy and free cost more than the copy into the head:
 * the bare TX ring loop sends 1.4x the packets per CPU second on a veth this
 * way (bench/README.md, tx). No offload is asked for (flags 0, GSO none):
 * the engine's checksums stay final. Without the option (older kernels) the
 * frames go out plain.
 * With the header the kernel no longer refuses frames above the interface's
 * MTU (it did so with TP_STATUS_WRONG_FORMAT, see tx_recover()), so the TX
 * path re-reads the MTU every RF_TX_MTU_RECHECK_NS and refuses (counts)
 * longer frames itself: an MTU lowered after start is seen within 100 ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "clock.h"
#include "engine_internal.h"
#include "netpkt.h"

#define RX_FRAME_SIZE     2048u /* V3 needs a nominal frame size; blocks hold any size */
#define RX_RETIRE_MS      1u    /* a block with packets reaches us within 1 ms */
#define TX_MTU_CAP        9000u /* lo's 65536 would need 128 KiB frames */
#define TX_LOCAL_ETHERTYPE 0x88b5u /* IEEE 802 local experimental, see tx_recover() */
#define RF_TX_MTU_RECHECK_NS 100000000ull /* 100 ms: one ioctl, see the top of this file */

struct rf_port {
	struct rf_port_stats stats; /* first: see engine_internal.h */
	int tx_fd, rx_fd;
	/* TX ring, TPACKET_V2 */
	uint8_t *tx_map;
	size_t tx_map_len;
	uint32_t tx_frames, tx_frame_size, tx_head, tx_queued, tx_retry;
	uint32_t tx_data_off;       /* where the frame starts: after the vnet header if any */
	uint32_t tx_vnet;           /* bytes of virtio_net_hdr before each frame, 0 = none */
	uint32_t tx_max_frame;      /* longest frame taken now: max_frame, less if the MTU shrank */
	uint64_t tx_mtu_at;         /* when the MTU was last read (tx_vnet only) */
	char ifname[IFNAMSIZ];
	uint32_t max_frame;         /* Ethernet header + mtu */
	uint64_t tx_queued_bytes;
	/* RX ring, TPACKET_V3 */
	uint8_t *rx_map;
	size_t rx_map_len;
	uint32_t rx_blocks, rx_block_size;
	uint32_t rx_cur;            /* block being read */
	uint32_t rx_left;           /* packets left in it, 0 = not opened */
	uint32_t rx_done;           /* blocks read to the end, not yet released */
	uint8_t *rx_next;
	uint8_t mac[6];
	uint32_t mtu;
	int ifindex;
};

_Static_assert(offsetof(struct rf_port, stats) == 0, "port stats first");

/* Base filter: accept IPv4/IPv6 UDP, with or without an in-line 802.1Q/802.1ad
 * tag (a tag stripped to metadata leaves the untagged layout). */
static struct sock_filter base_filter[] = {
	BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x8100, 4, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x88a8, 3, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 6, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x86dd, 7, 0),
	BPF_STMT(BPF_RET | BPF_K, 0),
	/* 6: tagged */
	BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 16),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 6, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x86dd, 7, 0),
	BPF_STMT(BPF_RET | BPF_K, 0),
	/* 10: IPv4 protocol at 14 + 9 */
	BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 8, 9),
	/* 12: IPv6 next header at 14 + 6 */
	BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 20),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 6, 7),
	/* 14: tagged IPv4 at 18 + 9 */
	BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 27),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 4, 5),
	/* 16: tagged IPv6 at 18 + 6 */
	BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 24),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 2, 3),
	BPF_STMT(BPF_RET | BPF_K, 0),
	BPF_STMT(BPF_RET | BPF_K, 0),
	/* 20: accept the whole frame */
	BPF_STMT(BPF_RET | BPF_K, 0x40000),
	BPF_STMT(BPF_RET | BPF_K, 0),
};

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

static int is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

static void port_free(struct rf_port *p)
{
	if (p->tx_map)
		munmap(p->tx_map, p->tx_map_len);
	if (p->rx_map)
		munmap(p->rx_map, p->rx_map_len);
	if (p->tx_fd >= 0)
		close(p->tx_fd);
	if (p->rx_fd >= 0)
		close(p->rx_fd);
	free(p);
}

/* Create the sockets, inside cfg->netns when set: a socket stays in the
 * namespace it was created in, so only socket() runs there. */
static int make_sockets(struct rf_port *p, const struct rf_engine_config *cfg, int roles,
			const char *where, char *err, size_t errlen)
{
	int ns_fd = -1, orig_fd = -1, rc = 0, e;
	char path[300];

	if (cfg->netns && cfg->netns[0]) {
		if (strchr(cfg->netns, '/'))
			snprintf(path, sizeof(path), "%s", cfg->netns);
		else
			snprintf(path, sizeof(path), "/run/netns/%s", cfg->netns);
		ns_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (ns_fd < 0) {
			e = errno;
			snprintf(err, errlen, "afpacket %s: cannot open network namespace %s: %s",
				 where, path, strerror(e));
			return -e;
		}
		orig_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (orig_fd < 0) {
			e = errno;
			close(ns_fd);
			snprintf(err, errlen, "afpacket %s: cannot open this thread's network namespace: %s",
				 where, strerror(e));
			return -e;
		}
		if (setns(ns_fd, CLONE_NEWNET)) {
			e = errno;
			close(ns_fd);
			close(orig_fd);
			snprintf(err, errlen, "afpacket %s: setns(%s) failed: %s%s", where, path,
				 strerror(e), e == EPERM ? " (needs CAP_SYS_ADMIN)" : "");
			return -e;
		}
	}
	if (roles & RF_PORT_TX) {
		p->tx_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
		if (p->tx_fd < 0)
			rc = -errno;
	}
	if (!rc && (roles & RF_PORT_RX)) {
		p->rx_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
		if (p->rx_fd < 0)
			rc = -errno;
	}
	if (ns_fd >= 0) {
		/* back to where we came from, whatever happened above */
		if (setns(orig_fd, CLONE_NEWNET) && !rc)
			rc = -errno;
		close(ns_fd);
		close(orig_fd);
	}
	if (rc)
		snprintf(err, errlen, "afpacket %s: socket(AF_PACKET) failed: %s%s", where,
			 strerror(-rc), rc == -EPERM ? " (needs CAP_NET_RAW)" : "");
	return rc;
}

#define SYSFAIL(step)                                                                     \
	do {                                                                              \
		int e_ = errno;                                                           \
		snprintf(err, errlen, "afpacket %s: %s failed: %s", where, step, strerror(e_)); \
		return -e_;                                                               \
	} while (0)

/* tpacket_snd() reads a virtio_net_hdr in front of each frame from Linux
 * 4.11 on; before, PACKET_VNET_HDR is accepted but only packet_snd() honours
 * it, and the header would go out as frame bytes. */
static int kernel_tx_vnet_ok(void)
{
	struct utsname u;
	unsigned major = 0, minor = 0;

	if (uname(&u) || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return 0;
	return major > 4 || (major == 4 && minor >= 11);
}

static int setup_tx(struct rf_port *p, const struct rf_engine_config *cfg, const char *where,
		    char *err, size_t errlen)
{
	int v = TPACKET_V2, one = 1, sndbuf;
	struct tpacket_req req;
	struct sockaddr_ll sll;
	uint32_t block;

	if (!is_pow2(cfg->tx_frames) || cfg->tx_frames < 2 * cfg->burst || cfg->tx_frames > 65536) {
		snprintf(err, errlen,
			 "afpacket %s: tx_frames = %u is invalid (accepted: a power of two in %u..65536)",
			 where, cfg->tx_frames, 2 * cfg->burst);
		return -EINVAL;
	}
	if (setsockopt(p->tx_fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)))
		SYSFAIL("PACKET_VERSION(TPACKET_V2) on the TX socket");
	/* the engine paces packets itself: skip the qdisc layer */
	if (setsockopt(p->tx_fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)))
		SYSFAIL("PACKET_QDISC_BYPASS");
	/* before the ring: the kernel refuses PACKET_VNET_HDR once it exists */
	p->tx_vnet = !kernel_tx_vnet_ok() ||
			     setsockopt(p->tx_fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) ?
		     0 : (uint32_t)sizeof(struct virtio_net_hdr);
	p->tx_data_off = TPACKET_ALIGN(sizeof(struct tpacket2_hdr)) + p->tx_vnet;
	p->tx_frame_size = pow2_at_least(p->tx_data_off + p->max_frame);
	block = p->tx_frame_size < RF_PAGE ? RF_PAGE : p->tx_frame_size;
	p->tx_frames = cfg->tx_frames;
	if ((uint64_t)p->tx_frames * p->tx_frame_size < block)
		p->tx_frames = block / p->tx_frame_size;
	memset(&req, 0, sizeof(req));
	req.tp_block_size = block;
	req.tp_frame_size = p->tx_frame_size;
	req.tp_frame_nr = p->tx_frames;
	req.tp_block_nr = (uint32_t)((uint64_t)p->tx_frames * p->tx_frame_size / block);
	if (setsockopt(p->tx_fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof(req)))
		SYSFAIL("PACKET_TX_RING");
	p->tx_map_len = (size_t)req.tp_block_nr * block;
	p->tx_map = mmap(NULL, p->tx_map_len, PROT_READ | PROT_WRITE, MAP_SHARED, p->tx_fd, 0);
	if (p->tx_map == MAP_FAILED) {
		p->tx_map = NULL;
		SYSFAIL("mmap of the TX ring");
	}
	/* room for a whole ring in flight, so send() never stops on the socket's
	 * send buffer before the ring is empty (best effort: FORCE needs
	 * CAP_NET_ADMIN) */
	sndbuf = (int)(p->tx_map_len > (1u << 30) ? (1u << 30) : p->tx_map_len) * 2;
	if (setsockopt(p->tx_fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)))
		(void)setsockopt(p->tx_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = 0; /* send only: no frame is queued to this socket */
	sll.sll_ifindex = p->ifindex;
	if (bind(p->tx_fd, (struct sockaddr *)&sll, sizeof(sll)))
		SYSFAIL("bind of the TX socket");
	return 0;
}

static int setup_rx(struct rf_port *p, const struct rf_engine_config *cfg, const char *where,
		    char *err, size_t errlen)
{
	int v = TPACKET_V3, one = 1;
	struct tpacket_req3 req;
	struct sockaddr_ll sll;
	struct sock_fprog fprog = { .len = sizeof(base_filter) / sizeof(base_filter[0]),
				    .filter = base_filter };

	if (!is_pow2(cfg->rx_block_size) || cfg->rx_block_size < RF_PAGE ||
	    cfg->rx_block_size > (1u << 26) || cfg->rx_block_size < p->max_frame + 256) {
		snprintf(err, errlen,
			 "afpacket %s: rx_block_size = %u is invalid (accepted: a power of two in "
			 "%u..%u, above the MTU)", where, cfg->rx_block_size, RF_PAGE, 1u << 26);
		return -EINVAL;
	}
	if (cfg->rx_blocks < 2 || cfg->rx_blocks > 4096) {
		snprintf(err, errlen, "afpacket %s: rx_blocks = %u is invalid (accepted: 2..4096)",
			 where, cfg->rx_blocks);
		return -EINVAL;
	}
	if (setsockopt(p->rx_fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)))
		SYSFAIL("PACKET_VERSION(TPACKET_V3) on the RX socket");
	/* filter before bind: no unfiltered frame reaches the ring */
	if (setsockopt(p->rx_fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)))
		SYSFAIL("SO_ATTACH_FILTER");
	/* our own TX frames must not come back to the relay */
	if (setsockopt(p->rx_fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)))
		SYSFAIL("PACKET_IGNORE_OUTGOING");
	memset(&req, 0, sizeof(req));
	req.tp_block_size = cfg->rx_block_size;
	req.tp_block_nr = cfg->rx_blocks;
	req.tp_frame_size = RX_FRAME_SIZE;
	req.tp_frame_nr = cfg->rx_block_size / RX_FRAME_SIZE * cfg->rx_blocks;
	req.tp_retire_blk_tov = RX_RETIRE_MS;
	if (setsockopt(p->rx_fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)))
		SYSFAIL("PACKET_RX_RING");
	p->rx_blocks = cfg->rx_blocks;
	p->rx_block_size = cfg->rx_block_size;
	p->rx_map_len = (size_t)p->rx_blocks * p->rx_block_size;
	p->rx_map = mmap(NULL, p->rx_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED,
			 p->rx_fd, 0);
	if (p->rx_map == MAP_FAILED)
		p->rx_map = mmap(NULL, p->rx_map_len, PROT_READ | PROT_WRITE, MAP_SHARED,
				 p->rx_fd, 0);
	if (p->rx_map == MAP_FAILED) {
		p->rx_map = NULL;
		SYSFAIL("mmap of the RX ring");
	}
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = p->ifindex;
	if (bind(p->rx_fd, (struct sockaddr *)&sll, sizeof(sll)))
		SYSFAIL("bind of the RX socket");
	return 0;
}

static int afp_open(struct rf_port **out, const struct rf_engine_config *cfg, int roles,
		    char *err, size_t errlen)
{
	struct rf_port *p;
	struct ifreq ifr;
	char where[400];
	int rc, fd;

	if (!cfg->ifname || !cfg->ifname[0] || strlen(cfg->ifname) >= IFNAMSIZ) {
		snprintf(err, errlen, "afpacket: interface name '%s' is invalid (1..%d characters)",
			 cfg->ifname ? cfg->ifname : "", IFNAMSIZ - 1);
		return -EINVAL;
	}
	if (cfg->netns && cfg->netns[0])
		snprintf(where, sizeof(where), "interface %s in namespace %s", cfg->ifname, cfg->netns);
	else
		snprintf(where, sizeof(where), "interface %s", cfg->ifname);
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "afpacket %s: out of memory", where);
		return -ENOMEM;
	}
	p->tx_fd = p->rx_fd = -1;
	rc = make_sockets(p, cfg, roles, where, err, errlen);
	if (rc)
		goto fail;
	fd = p->tx_fd >= 0 ? p->tx_fd : p->rx_fd;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, cfg->ifname, strlen(cfg->ifname));
	if (ioctl(fd, SIOCGIFINDEX, &ifr)) {
		rc = -errno;
		if (rc == -ENODEV)
			snprintf(err, errlen, "afpacket %s: no such interface", where);
		else
			snprintf(err, errlen, "afpacket %s: SIOCGIFINDEX failed: %s", where,
				 strerror(-rc));
		goto fail;
	}
	p->ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr)) {
		rc = -errno;
		snprintf(err, errlen, "afpacket %s: SIOCGIFHWADDR failed: %s", where, strerror(-rc));
		goto fail;
	}
	if (ifr.ifr_hwaddr.sa_family != 1 /* ARPHRD_ETHER */ &&
	    ifr.ifr_hwaddr.sa_family != 772 /* ARPHRD_LOOPBACK */) {
		rc = -EPROTONOSUPPORT;
		snprintf(err, errlen, "afpacket %s: not an Ethernet interface (type %u)", where,
			 ifr.ifr_hwaddr.sa_family);
		goto fail;
	}
	memcpy(p->mac, ifr.ifr_hwaddr.sa_data, 6);
	if (ioctl(fd, SIOCGIFMTU, &ifr)) {
		rc = -errno;
		snprintf(err, errlen, "afpacket %s: SIOCGIFMTU failed: %s", where, strerror(-rc));
		goto fail;
	}
	if (cfg->mtu) {
		if (cfg->mtu < 68 || cfg->mtu > (uint32_t)ifr.ifr_mtu) {
			rc = -EINVAL;
			snprintf(err, errlen, "afpacket %s: mtu = %u is invalid (accepted: 68..%d, the "
				 "interface's MTU)", where, cfg->mtu, ifr.ifr_mtu);
			goto fail;
		}
		p->mtu = cfg->mtu;
	} else {
		p->mtu = (uint32_t)ifr.ifr_mtu < TX_MTU_CAP ? (uint32_t)ifr.ifr_mtu : TX_MTU_CAP;
	}
	p->max_frame = 14u + p->mtu;
	p->tx_max_frame = p->max_frame;
	memcpy(p->ifname, cfg->ifname, strlen(cfg->ifname) + 1);
	if (p->tx_fd >= 0 && (rc = setup_tx(p, cfg, where, err, errlen)))
		goto fail;
	if (p->rx_fd >= 0 && (rc = setup_rx(p, cfg, where, err, errlen)))
		goto fail;
	*out = p;
	return 0;
fail:
	port_free(p);
	return rc;
}

/* ------------------------------------------------------------------ RX -- */

static inline struct tpacket_block_desc *rx_block(struct rf_port *p, uint32_t i)
{
	return (struct tpacket_block_desc *)(p->rx_map + (size_t)i * p->rx_block_size);
}

/*
 * The kernel marks a block TP_STATUS_LOSING when it dropped frames for want
 * of ring space since PACKET_STATISTICS was last read (packet(7)); reading
 * the statistics returns the drops and resets them, so this system call is
 * made only while the ring overflows. Counted as RF_C_DROP_RX_RING.
 */
static void rx_read_drops(struct rf_port *p)
{
	struct tpacket_stats_v3 st;
	socklen_t len = sizeof(st);

	if (getsockopt(p->rx_fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
		p->stats.rx_drops += st.tp_drops;
}

static uint32_t afp_rx_burst(struct rf_port *p, struct rf_rx_pkt *pkts, uint32_t n)
{
	uint32_t got = 0;

	while (got < n) {
		struct tpacket3_hdr *h;

		if (p->rx_left == 0) {
			struct tpacket_block_desc *b = rx_block(p, p->rx_cur);

			/* a block the kernel retired: its packets are visible after
			 * this acquire (pairs with the kernel's smp_wmb before it
			 * sets TP_STATUS_USER) */
			if (!(__atomic_load_n(&b->hdr.bh1.block_status, __ATOMIC_ACQUIRE) &
			      TP_STATUS_USER))
				break;
			/* do not run into blocks not yet released */
			if (p->rx_done == p->rx_blocks)
				break;
			if (rf_unlikely(b->hdr.bh1.block_status & TP_STATUS_LOSING))
				rx_read_drops(p);
			p->rx_left = b->hdr.bh1.num_pkts;
			p->rx_next = (uint8_t *)b + b->hdr.bh1.offset_to_first_pkt;
			if (rf_unlikely(p->rx_left == 0)) {
				p->rx_done++;
				p->rx_cur = (p->rx_cur + 1) % p->rx_blocks;
				continue;
			}
		}
		h = (struct tpacket3_hdr *)p->rx_next;
		pkts[got].data = (const uint8_t *)h + h->tp_mac;
		pkts[got].len = h->tp_snaplen;
		pkts[got].wire_len = h->tp_len;
		pkts[got].vlan_valid = (h->tp_status & TP_STATUS_VLAN_VALID) ? 1 : 0;
		pkts[got].vlan_tci = pkts[got].vlan_valid ? (uint16_t)h->hv1.tp_vlan_tci : 0;
		pkts[got].csum_partial = (h->tp_status & TP_STATUS_CSUMNOTREADY) ? 1 : 0;
		pkts[got].ts_ns = (uint64_t)h->tp_sec * 1000000000ull + h->tp_nsec;
		got++;
		p->rx_next += h->tp_next_offset;
		if (--p->rx_left == 0) {
			/* read to the end; released at the next rx_release() */
			p->rx_done++;
			p->rx_cur = (p->rx_cur + 1) % p->rx_blocks;
		}
	}
	return got;
}

static void afp_rx_release(struct rf_port *p)
{
	uint32_t first = (p->rx_cur + p->rx_blocks - p->rx_done) % p->rx_blocks;

	while (p->rx_done) {
		/* we are done reading the block before the kernel may refill it:
		 * pairs with the kernel's read of block_status */
		__atomic_store_n(&rx_block(p, first)->hdr.bh1.block_status, TP_STATUS_KERNEL,
				 __ATOMIC_RELEASE);
		first = (first + 1) % p->rx_blocks;
		p->rx_done--;
	}
}

/* ------------------------------------------------------------------ TX -- */

static inline struct tpacket2_hdr *tx_frame(struct rf_port *p, uint32_t i)
{
	return (struct tpacket2_hdr *)(p->tx_map + (size_t)i * p->tx_frame_size);
}

/*
 * The frame's virtio_net_hdr: no offload, and a header length of the whole
 * frame, so the kernel copies it all into the skb's head (see the top of
 * this file). The kernel reads hdr_len in native byte order here
 * (__virtio16 with the legacy endianness of packet sockets).
 */
static inline uint32_t tx_put_vnet(const struct rf_port *p, uint8_t *frame, uint32_t len)
{
	struct virtio_net_hdr vh;

	if (!p->tx_vnet)
		return len;
	memset(&vh, 0, sizeof(vh));
	vh.gso_type = VIRTIO_NET_HDR_GSO_NONE;
	vh.hdr_len = (uint16_t)len;
	memcpy(frame - p->tx_vnet, &vh, sizeof(vh));
	return len + p->tx_vnet;
}

/* The interface's MTU now (tx_vnet: the kernel does not check it for us). A
 * failed read keeps the last value. */
static void tx_recheck_mtu(struct rf_port *p, uint64_t now)
{
	struct ifreq ifr;

	p->tx_mtu_at = now;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, p->ifname, sizeof(p->ifname));
	if (ioctl(p->tx_fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0) {
		uint32_t m = 14u + (uint32_t)ifr.ifr_mtu;

		p->tx_max_frame = m < p->max_frame ? m : p->max_frame;
	}
}

static uint32_t afp_tx_burst(struct rf_port *p, struct rf_tx_pkt *pkts, uint32_t n)
{
	uint32_t i;

	if (p->tx_vnet) {
		uint64_t now = rf_now_ns();

		if (rf_unlikely(now - p->tx_mtu_at >= RF_TX_MTU_RECHECK_NS))
			tx_recheck_mtu(p, now);
	}

	for (i = 0; i < n; i++) {
		uint32_t len = (uint32_t)pkts[i].hdr_len + pkts[i].payload_len;
		struct tpacket2_hdr *f = tx_frame(p, p->tx_head);
		uint8_t *data;

		if (rf_unlikely(len < 14u || len > p->tx_max_frame)) {
			/* drop: the kernel would mark it TP_STATUS_WRONG_FORMAT and
			 * stop the ring there, or (tx_vnet) send it past the MTU;
			 * taken, not sent: the caller counts RF_C_DROP_TX_ERROR */
			pkts[i].refused = 1;
			continue;
		}
		/* the frame is ours again only once the kernel sent it: pairs
		 * with the kernel's status store after the skb is freed */
		if (__atomic_load_n(&f->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE)
			break;
		data = (uint8_t *)f + p->tx_data_off;
		memcpy(data, pkts[i].hdr, pkts[i].hdr_len);
		memcpy(data + pkts[i].hdr_len, pkts[i].payload, pkts[i].payload_len);
		/* sum the payload where it is now hot, in the frame we just wrote:
		 * summing it in the pool first took the misses on lines the worker
		 * wrote on the other core, then the copy read them again (see
		 * bench/README.md, tx) */
		if (pkts[i].csum_off)
			rf_csum_complete(data + pkts[i].csum_off,
					 rf_csum_partial(data + pkts[i].hdr_len, pkts[i].payload_len, 0));
		f->tp_len = tx_put_vnet(p, data, len);
		/* ensure the frame's bytes are visible before the kernel sees it
		 * requested: pairs with the kernel's smp_rmb in __packet_get_status */
		__atomic_store_n(&f->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
		p->tx_head = (p->tx_head + 1) & (p->tx_frames - 1);
		p->tx_queued++;
		p->tx_queued_bytes += len;
	}
	return i;
}

/*
 * The kernel stops at a frame it marks TP_STATUS_WRONG_FORMAT (without
 * PACKET_LOSS it does not move its ring head past it), so every later frame
 * would wait forever. tx_burst refuses every size the kernel would refuse;
 * a frame can still come back WRONG_FORMAT if the interface's MTU shrinks
 * under us. It was counted as sent, and we cannot tell which packet it was:
 * count it as a device error (tx_errors, RF_C_TX_DEVICE_ERRORS) and send a
 * 14-byte IEEE local experimental frame to our own MAC in its place so the
 * ring moves on.
 */
static int tx_recover(struct rf_port *p)
{
	uint32_t i, found = 0;

	for (i = 0; i < p->tx_frames; i++) {
		struct tpacket2_hdr *f = tx_frame(p, i);
		uint8_t *data = (uint8_t *)f + p->tx_data_off;

		if (__atomic_load_n(&f->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_WRONG_FORMAT)
			continue;
		p->stats.tx_errors++;
		found++;
		memcpy(data, p->mac, 6);
		memcpy(data + 6, p->mac, 6);
		data[12] = TX_LOCAL_ETHERTYPE >> 8;
		data[13] = TX_LOCAL_ETHERTYPE & 0xff;
		f->tp_len = tx_put_vnet(p, data, 14u);
		__atomic_store_n(&f->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
	}
	return (int)found;
}

static int afp_flush(struct rf_port *p)
{
	uint32_t frames = p->tx_queued;
	ssize_t r;

	if (!frames && !p->tx_retry)
		return 0;
	/* one system call for every frame queued since the last flush */
	r = send(p->tx_fd, NULL, 0, MSG_DONTWAIT);
	p->stats.syscalls++;
	if (rf_unlikely(r < 0)) {
		int e = errno;

		/* ENOBUFS: the device refused the frame being sent (NET_XMIT_DROP,
		 * e.g. a veth peer's backlog full); the kernel marked that frame
		 * SEND_REQUEST again and stopped there (tpacket_snd's out_status),
		 * so it goes out with the next send: backpressure, not a drop. */
		if (e != EAGAIN && e != ENOBUFS && e != EINTR && tx_recover(p)) {
			r = send(p->tx_fd, NULL, 0, MSG_DONTWAIT);
			p->stats.syscalls++;
		}
		if (r < 0) {
			/* frames still requested go out with the next flush,
			 * which the caller makes on a deadline (tx_backlog) */
			p->tx_retry = 1;
			p->stats.tx_backlog = 1;
			p->tx_queued = 0;
			p->tx_queued_bytes = 0;
			return -e;
		}
	}
	/* a short send leaves frames requested: retry them at the next flush */
	p->tx_retry = (uint64_t)r < p->tx_queued_bytes;
	p->stats.tx_backlog = p->tx_retry;
	p->tx_queued = 0;
	p->tx_queued_bytes = 0;
	return (int)frames;
}

static int afp_rx_fd(struct rf_port *p) { return p->rx_fd; }

static void afp_info(struct rf_port *p, uint8_t mac[6], uint32_t *mtu, int *ifindex)
{
	memcpy(mac, p->mac, 6);
	*mtu = p->mtu;
	*ifindex = p->ifindex;
}

static void afp_close(struct rf_port *p)
{
	if (p)
		port_free(p);
}

const struct rf_port_ops rf_port_afpacket = {
	.name = "afpacket",
	.open = afp_open,
	.rx_burst = afp_rx_burst,
	.rx_release = afp_rx_release,
	.tx_burst = afp_tx_burst,
	.flush = afp_flush,
	.rx_fd = afp_rx_fd,
	.info = afp_info,
	.close = afp_close,
};
