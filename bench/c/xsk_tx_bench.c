/* SPDX-License-Identifier: MIT */
/*
 * Baseline sender for the TX benchmark (bench/tx.ts, issue #2): the bare
 * AF_XDP TX loop the engine's afxdp backend is built on (engine/src/
 * port_afxdp.c): an XDP socket bound to queue 0 in copy mode, a UMEM of
 * 1024 x 2048-byte frames, the completion ring reaped into a free stack and
 * ONE sendto() kick per `--batch` frames, no scheduling, no rings shared with
 * anyone: the ceiling for the engine's afxdp TX path.
 *
 *   xsk_tx_bench --ifname DEV --dst IPV4 --dst-mac aa:bb:cc:dd:ee:ff
 *                [--src IPV4] [--src-mac MAC] [--port 9] [--size 64]
 *                [--batch 64] [--count N] [--warmup-ms 200] [--duration-ms 1000]
 *
 * One Ethernet/IPv4/UDP frame (checksums computed once) is copied into each
 * UMEM frame, as the engine copies each packet. Prints one JSON line like
 * txring_bench (syscalls = sendto() calls in the window). Run it inside the
 * sender's namespace (ip netns exec); needs CAP_NET_RAW. Exit 2 on bad usage,
 * 1 on a system error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"

#define USAGE "--ifname DEV --dst IPV4 --dst-mac MAC [--src IPV4] [--src-mac MAC] [--port 9] [--size 64] [--batch 64] [--count N] [--warmup-ms 200] [--duration-ms 1000]"
#define FRAME_SIZE 2048u
#define FRAMES     1024u

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9
#endif

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct xdp_umem_reg mr;
	struct xdp_mmap_offsets off;
	struct sockaddr_xdp sxdp;
	socklen_t optlen = sizeof(off);
	uint8_t frame[1600], *umem, *txm, *cqm;
	uint32_t *tx_prod, *cq_prod, *cq_cons, tx_head, cq_head, nfree = 0, flen, fill = 1;
	uint32_t entries = FRAMES, budget = FRAMES;
	uint64_t queued = 0, calls = 0, freel[FRAMES], *cq_addr;
	struct xdp_desc *tx_desc;
	struct bench_window w;
	int fd, ioc, sndbuf = FRAMES * FRAME_SIZE * 4;
	struct ifreq ifr;

	bench_parse(argc, argv, &o, USAGE);
	flen = o.ifname ? bench_udp_frame(frame, &o) : 0;
	if (!flen)
		bench_usage(argv[0], USAGE);

	fd = socket(AF_XDP, SOCK_RAW, 0);
	ioc = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || ioc < 0) {
		perror("xsk_tx_bench: socket(AF_XDP) (needs CAP_NET_RAW and a kernel with AF_XDP)");
		return 1;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", o.ifname);
	if (ioctl(ioc, SIOCGIFINDEX, &ifr)) {
		fprintf(stderr, "xsk_tx_bench: interface %s: %s\n", o.ifname, strerror(errno));
		return 1;
	}
	memset(&sxdp, 0, sizeof(sxdp));
	sxdp.sxdp_family = AF_XDP;
	sxdp.sxdp_flags = XDP_COPY;
	sxdp.sxdp_ifindex = (uint32_t)ifr.ifr_ifindex;
	if (!o.src_mac && !ioctl(ioc, SIOCGIFHWADDR, &ifr))
		memcpy(frame + 6, ifr.ifr_hwaddr.sa_data, 6);
	close(ioc);
	umem = mmap(NULL, (size_t)FRAMES * FRAME_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (umem == MAP_FAILED) {
		perror("xsk_tx_bench: mmap of the UMEM");
		return 1;
	}
	memset(&mr, 0, sizeof(mr));
	mr.addr = (uint64_t)(uintptr_t)umem;
	mr.len = (uint64_t)FRAMES * FRAME_SIZE;
	mr.chunk_size = FRAME_SIZE;
	if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &mr, sizeof(mr)) ||
	    setsockopt(fd, SOL_XDP, XDP_UMEM_FILL_RING, &fill, sizeof(fill)) ||
	    setsockopt(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &entries, sizeof(entries)) ||
	    setsockopt(fd, SOL_XDP, XDP_TX_RING, &entries, sizeof(entries)) ||
	    getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &optlen)) {
		perror("xsk_tx_bench: setsockopt");
		return 1;
	}
	txm = mmap(NULL, off.tx.desc + FRAMES * sizeof(struct xdp_desc), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_POPULATE, fd, XDP_PGOFF_TX_RING);
	cqm = mmap(NULL, off.cr.desc + FRAMES * sizeof(uint64_t), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_POPULATE, fd, (off_t)XDP_UMEM_PGOFF_COMPLETION_RING);
	if (txm == MAP_FAILED || cqm == MAP_FAILED) {
		perror("xsk_tx_bench: mmap of the rings");
		return 1;
	}
	tx_prod = (uint32_t *)(txm + off.tx.producer);
	tx_desc = (struct xdp_desc *)(txm + off.tx.desc);
	cq_prod = (uint32_t *)(cqm + off.cr.producer);
	cq_cons = (uint32_t *)(cqm + off.cr.consumer);
	cq_addr = (uint64_t *)(cqm + off.cr.desc);
	tx_head = *tx_prod;
	cq_head = *cq_cons;
	/* every queued descriptor per kick (Linux >= 6.17; else 32 a kick) */
	(void)setsockopt(fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof(budget));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)))
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	if (bind(fd, (struct sockaddr *)&sxdp, sizeof(sxdp))) {
		fprintf(stderr, "xsk_tx_bench: AF_XDP bind on %s queue 0 (copy mode): %s\n", o.ifname,
			strerror(errno));
		return 1;
	}
	for (nfree = 0; nfree < FRAMES; nfree++)
		freel[nfree] = (uint64_t)nfree * FRAME_SIZE;

	bench_window_arm(&w, &o);
	for (;;) {
		unsigned k;
		/* completions readable after this acquire: pairs with the
		 * kernel's release of the completion producer */
		uint32_t prod = __atomic_load_n(cq_prod, __ATOMIC_ACQUIRE);

		if (prod != cq_head) {
			while (cq_head != prod)
				freel[nfree++] = cq_addr[cq_head++ & (FRAMES - 1)];
			/* entries read before the kernel may reuse them */
			__atomic_store_n(cq_cons, cq_head, __ATOMIC_RELEASE);
		}
		for (k = 0; k < o.batch && nfree; k++) {
			uint64_t addr = freel[--nfree];
			struct xdp_desc *d = &tx_desc[tx_head++ & (FRAMES - 1)];

			memcpy(umem + addr, frame, flen);
			d->addr = addr;
			d->len = flen;
			d->options = 0;
		}
		/* frames and descriptors visible before the producer moves:
		 * pairs with the kernel's acquire of the TX producer */
		__atomic_store_n(tx_prod, tx_head, __ATOMIC_RELEASE);
		queued += k;
		/* one system call per batch */
		if (sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN &&
		    errno != EBUSY && errno != ENOBUFS && errno != EINTR) {
			perror("xsk_tx_bench: sendto");
			return 1;
		}
		calls++;
		if (bench_window_tick(&w, &o, queued, calls))
			break;
	}
	bench_window_end(&w, "xsk_tx", &o, queued, calls, queued);
	close(fd);
	munmap(umem, (size_t)FRAMES * FRAME_SIZE);
	return 0;
}
