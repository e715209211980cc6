/* SPDX-License-Identifier: MIT */
/*
 * The AF_XDP port (backend afxdp) on a temporary veth pair between two
 * temporary namespaces (root only; skips with 77 without root, iproute2 or
 * AF_XDP sockets in the kernel):
 *
 *   ns1: the port / engine on veth B (opened from outside via cfg.netns,
 *        198.19.78.2, 2001:db8:0:78::2)
 *   ns2: veth A (198.19.78.1, 2001:db8:0:78::1) with UDP receivers
 *
 * Proves: frames sent through the port arrive byte-identical (the
 * receiving kernel validates the IP and UDP checksums), in exact numbers,
 * one sendto() per flush; a UMEM smaller than the traffic fills (tx_burst
 * takes what fits, nothing is lost, frames come back through the
 * completion ring); a kick that fails (interface down) leaves the frames
 * queued for the next flush; without carrier the device's refusal of one
 * frame is counted and the rest wait; sizes the kernel would refuse are
 * counted;
 * the whole engine on backend afxdp sends IPv4 and IPv6 and keeps its
 * AF_PACKET RX port; open errors name the interface, namespace and step.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "engine_internal.h"
#include "netpkt.h"
#include "reflector/ring.h"
#include "testlib.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif

#define MS 1000000ull

#include "vethbed.h"


static void cfg_port(struct rf_engine_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->backend = RF_BACKEND_AFXDP;
	cfg->ifname = vb;
	cfg->netns = ns1;
	cfg->cpu_tx = cfg->cpu_rx = -1;
}

/* n frames i0.. for destination d through the port, payload i as in fill_payload */
static struct rf_tx_pkt *make_pkts(const struct rf_dest *d, uint32_t i0, uint32_t n,
				   uint16_t (*len)(uint32_t))
{
	struct rf_tx_pkt *pk = calloc(n, sizeof(*pk));
	uint32_t k;

	REQUIRE(pk, "calloc");
	for (k = 0; k < n; k++) {
		uint8_t *hdr = malloc(RF_HDR_MAX), *pl = malloc(2048);
		uint32_t i = i0 + k;
		uint16_t l = len(i);

		REQUIRE(hdr && pl, "malloc");
		fill_payload(pl, l, i);
		memcpy(pl, &i, 4);
		pk[k].hdr = hdr;
		pk[k].hdr_len = (uint16_t)rf_netpkt_build(hdr, d, pl, l, (uint16_t)i);
		pk[k].payload = pl;
		pk[k].payload_len = l;
	}
	return pk;
}

static void free_pkts(struct rf_tx_pkt *pk, uint32_t n)
{
	uint32_t k;

	for (k = 0; k < n; k++) {
		free((void *)pk[k].hdr);
		free((void *)pk[k].payload);
	}
	free(pk);
}

static uint16_t len_small(uint32_t i) { return (uint16_t)(4 + i % 200); }

int main(void)
{
	struct rgn r;
	struct rf_engine *e;
	struct rf_engine_config cfg;
	struct rf_port *p = NULL, *p2 = NULL;
	struct rf_dest d4, d6, *d;
	struct rf_tx_pkt *pk;
	uint8_t mac_a[6], mac_b[6], payload[2048];
	char err[256];
	uint32_t i, got, bad = 0, k, sum;
	int rx4, rx6, fd, rc;

	if (geteuid() != 0)
		SKIP("needs root (network namespaces, veth, AF_XDP)");
	if (sh("command -v ip >/dev/null 2>&1"))
		SKIP("needs iproute2 (ip)");
	fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0)
		SKIP("no AF_XDP sockets here: socket(AF_XDP): %s", strerror(errno));
	close(fd);

	vethbed_up("xdp", "rx", "198.19.78.2/24 2001:db8:0:78::2/64", "198.19.78.1/24 2001:db8:0:78::1/64");
	read_mac(ns2, va, mac_a);
	read_mac(ns1, vb, mac_b);

	memset(&d4, 0, sizeof(d4));
	d4.family = 4;
	d4.flags = RF_DEST_F_VALID;
	d4.src_port = htons(5000);
	d4.dst_port = htons(7000);
	memcpy(d4.dst_mac, mac_a, 6);
	memcpy(d4.src_mac, mac_b, 6);
	inet_pton(AF_INET, "198.19.78.2", d4.src_addr);
	inet_pton(AF_INET, "198.19.78.1", d4.dst_addr);
	d6 = d4;
	d6.family = 6;
	d6.src_port = htons(5001);
	d6.dst_port = htons(7001);
	memset(d6.src_addr, 0, 16);
	memset(d6.dst_addr, 0, 16);
	inet_pton(AF_INET6, "2001:db8:0:78::2", d6.src_addr);
	inet_pton(AF_INET6, "2001:db8:0:78::1", d6.dst_addr);
	rx4 = udp_receiver(ns2, AF_INET, "198.19.78.1", 7000);
	rx6 = udp_receiver(ns2, AF_INET6, "2001:db8:0:78::1", 7001);

	/* the port opens in copy mode on veth, or this host cannot run it */
	cfg_port(&cfg);
	rf_engine_config_defaults(&cfg);
	rc = rf_port_afxdp.open(&p, &cfg, RF_PORT_TX, err, sizeof(err));
	if (rc == -EOPNOTSUPP || rc == -EAFNOSUPPORT || rc == -EPROTONOSUPPORT)
		SKIP("AF_XDP copy mode unavailable on veth: %s", err);
	REQUIRE(rc == 0, "open: %s", err);

	/* open errors name the interface, namespace and step */
	{
		struct rf_engine_config c2;

		/* one XDP socket per queue: a second one is refused, named */
		cfg_port(&c2);
		rf_engine_config_defaults(&c2);
		rc = rf_port_afxdp.open(&p2, &c2, RF_PORT_TX, err, sizeof(err));
		CHECK(rc == -EBUSY && strstr(err, "AF_XDP bind on") && strstr(err, vb) &&
			      strstr(err, "queue 0 (copy mode)"), "second socket on queue 0: %d '%s'", rc, err);
		c2.ifname = "rfnosuch0";
		rgn_init(&r);
		c2.cpu_tx = c2.cpu_rx = -1;
		CHECK(rf_engine_create(&e, r.mem, r.h->region_size, &c2, err, sizeof(err)) == -ENODEV &&
			      strstr(err, "afxdp") && strstr(err, "rfnosuch0") &&
			      strstr(err, "no such interface") && strstr(err, ns1),
		      "no such interface: '%s'", err);
		cfg_port(&c2);
		c2.tx_frames = 1000;
		CHECK(rf_port_afxdp.open(&p2, &c2, RF_PORT_TX, err, sizeof(err)) == -EINVAL &&
			      strstr(err, "tx_frames") && strstr(err, vb), "bad tx_frames: '%s'", err);
		cfg_port(&c2);
		rf_engine_config_defaults(&c2);
		c2.mtu = 1600;
		CHECK(rf_port_afxdp.open(&p2, &c2, RF_PORT_TX, err, sizeof(err)) == -EINVAL &&
			      strstr(err, "mtu = 1600"), "mtu above the interface's: '%s'", err);
		free(r.mem);
	}

	/* 1. 300 frames of 4..1403 bytes through the port, 50 per flush:
	 * all arrive, byte-identical, one sendto() per flush */
	pk = make_pkts(&d4, 0, 300, len_of);
	for (sum = 0, k = 0; k < 300; k += 50) {
		CHECK(rf_port_afxdp.tx_burst(p, pk + k, 50) == 50, "50 frames queued");
		rc = rf_port_afxdp.flush(p);
		CHECK(rc == 50, "flush sent 50 (%d)", rc);
		sum += rc > 0 ? (uint32_t)rc : 0;
	}
	free_pkts(pk, 300);
	got = receive(rx4, 300, &bad);
	CHECK(got == 300 && sum == 300, "300 datagrams received (got %u, flushed %u)", got, sum);
	CHECK(bad == 0, "%u payloads differ", bad);
	CHECK(recv(rx4, payload, sizeof(payload), MSG_DONTWAIT) < 0, "and not one more");
	CHECK(rf_port_stats(p)->syscalls == 6, "one sendto() per flush (%llu for 6)",
	      (unsigned long long)rf_port_stats(p)->syscalls);
	CHECK(rf_port_stats(p)->tx_errors == 0, "no TX error");

	/* 2. sizes the kernel would refuse are refused first: taken and marked
	 * refused, for the caller to count as its drop (not a device error) */
	pk = make_pkts(&d4, 900, 1, len_small);
	pk[0].payload_len = 1500 - 28 + 1; /* one byte above the MTU */
	pk[0].refused = 0;
	CHECK(rf_port_afxdp.tx_burst(p, pk, 1) == 1 && pk[0].refused == 1 &&
		      rf_port_stats(p)->tx_errors == 0,
	      "oversized frame refused");
	pk[0].hdr_len = 10;
	pk[0].payload_len = 3;
	pk[0].refused = 0;
	CHECK(rf_port_afxdp.tx_burst(p, pk, 1) == 1 && pk[0].refused == 1 &&
		      rf_port_stats(p)->tx_errors == 0,
	      "runt frame refused");
	CHECK(rf_port_afxdp.flush(p) == 0 && rf_port_stats(p)->syscalls == 6,
	      "nothing queued: no system call");
	free_pkts(pk, 1);
	rf_port_afxdp.close(p);

	/* 3. backpressure: a 32-frame UMEM and 1000 frames. tx_burst takes
	 * what fits, the rest waits for completions; every frame arrives
	 * once */
	cfg_port(&cfg);
	cfg.burst = 16;
	cfg.tx_frames = 32;
	rf_engine_config_defaults(&cfg);
	REQUIRE(rf_port_afxdp.open(&p, &cfg, RF_PORT_TX, err, sizeof(err)) == 0, "%s", err);
	pk = make_pkts(&d4, 1000, 1000, len_small);
	CHECK(rf_port_afxdp.tx_burst(p, pk, 100) == 32, "a full UMEM takes 32 of 100");
	CHECK(rf_port_afxdp.flush(p) == 32, "and sends them");
	{
		uint32_t sent = 32, full = 0, rounds = 0;

		while (sent < 1000 && rounds++ < 100000) {
			uint32_t n = 1000 - sent < 100 ? 1000 - sent : 100;
			uint32_t t = rf_port_afxdp.tx_burst(p, pk + sent, n);

			full += t < n;
			sent += t;
			(void)rf_port_afxdp.flush(p);
		}
		CHECK(sent == 1000, "all 1000 frames went through 32 UMEM frames (%u)", sent);
		CHECK(full > 0, "the UMEM was full %u times", full);
	}
	bad = 0;
	got = receive(rx4, 1000, &bad);
	CHECK(got == 1000 && bad == 0, "1000 received, intact (got %u, %u differ)", got, bad);
	CHECK(recv(rx4, payload, sizeof(payload), MSG_DONTWAIT) < 0, "and not one more");
	CHECK(rf_port_stats(p)->tx_errors == 0, "no TX error");
	free_pkts(pk, 1000);

	/* 4. a kick that fails leaves the frames queued: interface down, 5
	 * frames, flush fails; up again, the next flush sends them once */
	pk = make_pkts(&d4, 3000, 5, len_small);
	CHECK(sh("ip -n %s link set %s down", ns1, vb) == 0, "interface down");
	CHECK(rf_port_afxdp.tx_burst(p, pk, 5) == 5, "5 queued");
	rc = rf_port_afxdp.flush(p);
	CHECK(rc == -ENETDOWN, "flush on a down interface: %d (%s)", rc, strerror(-rc));
	CHECK(rf_port_stats(p)->tx_backlog, "the port says it kept frames (the caller retries)");
	CHECK(sh("ip -n %s link set %s up", ns1, vb) == 0, "interface up");
	usleep(100000);
	rc = rf_port_afxdp.flush(p);
	CHECK(rc == 0, "the retry flush sends what was queued (%d)", rc);
	CHECK(!rf_port_stats(p)->tx_backlog, "and then it has nothing left");
	bad = 0;
	got = receive(rx4, 5, &bad);
	CHECK(got == 5 && bad == 0, "the 5 frames arrived once the interface was up (%u)", got);
	CHECK(recv(rx4, payload, sizeof(payload), MSG_DONTWAIT) < 0, "and not one more");
	free_pkts(pk, 5);

	/* 4b. no carrier (the peer is down): the device refuses the frame the
	 * kick took (EBUSY: counted as a TX error), the others stay queued
	 * and leave once the carrier is back */
	pk = make_pkts(&d4, 3100, 3, len_small);
	CHECK(sh("ip -n %s link set %s down", ns2, va) == 0, "peer down");
	usleep(50000);
	CHECK(rf_port_afxdp.tx_burst(p, pk, 3) == 3, "3 queued");
	rc = rf_port_afxdp.flush(p);
	CHECK(rc == -EBUSY && rf_port_stats(p)->tx_errors == 1,
	      "no carrier: %d (%s), tx_errors %llu", rc, strerror(-rc),
	      (unsigned long long)rf_port_stats(p)->tx_errors);
	/* (down removed the IPv6 address: section 5 needs it back) */
	CHECK(sh("ip -n %s link set %s up && ip -n %s addr replace 2001:db8:0:78::1/64 dev %s nodad",
		 ns2, va, ns2, va) == 0, "peer up");
	usleep(100000);
	(void)rf_port_afxdp.flush(p);
	bad = 0;
	got = receive(rx4, 3, &bad);
	CHECK(got == 2 && bad == 0, "the 2 frames after the refused one arrived (%u)", got);
	free_pkts(pk, 3);
	rf_port_afxdp.close(p);

	/* 5. the whole engine on backend afxdp: IPv4 and IPv6 from the region */
	rgn_init(&r);
	e = engine_on(&r, vb, ns1, RF_BACKEND_AFXDP);
	CHECK(r.h->engine_state == RF_STATE_RUNNING, "running");
	CHECK(e->ops == &rf_port_afxdp, "backend afxdp");
	CHECK(e->ops->rx_fd(e->th[RF_THREAD_RX].port) >= 0, "the RX thread has its AF_PACKET ring");
	CHECK(e->ops->rx_fd(e->th[RF_THREAD_TX].port) < 0, "the TX thread has none");
	CHECK(memcmp(e->if_mac, mac_b, 6) == 0, "the engine's MAC is veth B's");
	d = (struct rf_dest *)(r.mem + r.h->dest_off);
	d[0] = d4;
	d[1] = d6;
	for (i = 0; i < 400; i++) {
		uint16_t l = len_of(i); /* at most 1403: fits IPv6 in a 1500 MTU */

		fill_payload(payload, l, i);
		memcpy(payload, &i, 4);
		rgn_send(&r, i % 2, payload, l, 0);
		if (i % 100 == 99)
			rgn_publish(&r);
	}
	bad = 0;
	got = receive(rx4, 200, &bad);
	CHECK(got == 200, "200 IPv4 datagrams from the engine (got %u)", got);
	got = receive(rx6, 200, &bad);
	CHECK(got == 200, "200 IPv6 datagrams from the engine (got %u)", got);
	CHECK(bad == 0, "%u payloads differ", bad);
	for (i = 0; i < 1000 && ctr(&r, RF_THREAD_TX, RF_C_TX_PACKETS) < 400; i++)
		usleep(1000);
	CHECK(ctr(&r, RF_THREAD_TX, RF_C_TX_PACKETS) == 400, "tx_packets %llu",
	      (unsigned long long)ctr(&r, RF_THREAD_TX, RF_C_TX_PACKETS));
	CHECK(ctr(&r, RF_THREAD_TX, RF_C_TX_SYSCALLS) >= 1 &&
		      ctr(&r, RF_THREAD_TX, RF_C_TX_SYSCALLS) <= ctr(&r, RF_THREAD_TX, RF_C_TX_FLUSHES),
	      "one sendto() per flush at most (syscalls %llu, flushes %llu)",
	      (unsigned long long)ctr(&r, RF_THREAD_TX, RF_C_TX_SYSCALLS),
	      (unsigned long long)ctr(&r, RF_THREAD_TX, RF_C_TX_FLUSHES));
	CHECK(ctr(&r, RF_THREAD_TX, RF_C_DROP_TX_ERROR) == 0, "no TX error");
	/* stop and start: the XDP socket is closed and bound again */
	rf_engine_destroy(e);
	free(r.mem);
	rgn_init(&r);
	e = engine_on(&r, vb, ns1, RF_BACKEND_AFXDP);
	d = (struct rf_dest *)(r.mem + r.h->dest_off);
	d[0] = d4;
	fill_payload(payload, 100, 5000);
	i = 5000;
	memcpy(payload, &i, 4);
	rgn_send(&r, 0, payload, 100, 0);
	rgn_publish(&r);
	bad = 0;
	CHECK(receive(rx4, 1, &bad) == 1 && bad == 0, "a second engine on the same queue sends");
	rf_engine_destroy(e);
	free(r.mem);
	close(rx4);
	close(rx6);
	cleanup();
	return t_result("afxdp");
}
