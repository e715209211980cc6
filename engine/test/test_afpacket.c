/* SPDX-License-Identifier: MIT */
/*
 * The AF_PACKET port through the whole engine, on a temporary veth pair
 * between two temporary namespaces (root only, skips with 77 otherwise):
 *
 *   ns1: engine on veth B (opened from outside via cfg.netns, 198.19.77.2)
 *   ns2: veth A (198.19.77.1) with UDP receivers
 *
 * Proves: frames built by the TX thread are accepted by the receiving kernel
 * (which validates the IPv4 and UDP checksums: a frame with one flipped
 * checksum bit is shown to be dropped), payloads arrive intact, timed
 * packets are not sent early, sends are batched (syscalls <= flushes),
 * the port's RX ring sees UDP and not ARP/ICMP, never our own TX frames,
 * IPv6 on `lo` (::1, zero MACs) works (lo loops our frames back as
 * incoming ones: the relay must not match its own outputs there), and open errors name the interface,
 * namespace and step.
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

#define MS 1000000ull

#include "vethbed.h"

int main(void)
{
	struct rgn r;
	struct rf_engine *e;
	struct rf_dest *d;
	uint8_t mac_a[6], payload[2048];
	char err[256];
	uint32_t i, got, bad = 0;
	int rx4;

	if (geteuid() != 0)
		SKIP("needs root (network namespaces, veth, AF_PACKET)");
	if (sh("command -v ip >/dev/null 2>&1"))
		SKIP("needs iproute2 (ip)");

	vethbed_up("afp", "rf", "198.19.77.2/24", "198.19.77.1/24");
	read_mac(ns2, va, mac_a);

	/* open errors name the interface, namespace and step */
	{
		struct rf_engine_config cfg;
		char nspath[128];

		memset(&cfg, 0, sizeof(cfg));
		cfg.backend = RF_BACKEND_AFPACKET;
		cfg.ifname = "rfnosuch0";
		cfg.netns = ns1;
		cfg.cpu_tx = cfg.cpu_rx = -1;
		rgn_init(&r);
		CHECK(rf_engine_create(&e, r.mem, r.h->region_size, &cfg, err, sizeof(err)) == -ENODEV &&
			      strstr(err, "rfnosuch0") && strstr(err, "no such interface") &&
			      strstr(err, ns1), "no such interface: '%s'", err);
		snprintf(nspath, sizeof(nspath), "/run/netns/%s-none", ns1);
		cfg.ifname = vb;
		cfg.netns = nspath;
		CHECK(rf_engine_create(&e, r.mem, r.h->region_size, &cfg, err, sizeof(err)) < 0 &&
			      strstr(err, nspath), "missing namespace: '%s'", err);
		cfg.netns = ns1;
		cfg.tx_frames = 1000;
		CHECK(rf_engine_create(&e, r.mem, r.h->region_size, &cfg, err, sizeof(err)) == -EINVAL &&
			      strstr(err, "tx_frames"), "bad tx_frames: '%s'", err);
		cfg.tx_frames = 0;
		cfg.rx_block_size = 5000;
		CHECK(rf_engine_create(&e, r.mem, r.h->region_size, &cfg, err, sizeof(err)) == -EINVAL &&
			      strstr(err, "rx_block_size"), "bad rx_block_size: '%s'", err);
		free(r.mem);
	}

	/* 1. IPv4 over the veth pair, engine opened in ns1 from here */
	rgn_init(&r);
	rx4 = udp_receiver(ns2, AF_INET, "198.19.77.1", 7000);
	e = engine_on(&r, vb, ns1, RF_BACKEND_AFPACKET);
	CHECK(r.h->engine_state == RF_STATE_RUNNING, "running");
	d = (struct rf_dest *)(r.mem + r.h->dest_off);
	memset(d, 0, sizeof(*d));
	d->family = 4;
	d->flags = RF_DEST_F_VALID;
	d->src_port = htons(5000);
	d->dst_port = htons(7000);
	memcpy(d->dst_mac, mac_a, 6);
	memcpy(d->src_mac, e->if_mac, 6);
	inet_pton(AF_INET, "198.19.77.2", d->src_addr);
	inet_pton(AF_INET, "198.19.77.1", d->dst_addr);
	for (i = 0; i < 300; i++) {
		fill_payload(payload, len_of(i), i);
		memcpy(payload, &i, 4);
		rgn_send(&r, 0, payload, len_of(i), 0);
		if (i % 100 == 99)
			rgn_publish(&r);
	}
	got = receive(rx4, 300, &bad);
	CHECK(got == 300, "300 IPv4 datagrams received through the kernel (got %u)", got);
	CHECK(bad == 0, "%u payloads differ", bad);
	/* the counters are bumped after the flush that delivered them */
	for (i = 0; i < 1000 && ctr(&r, RF_THREAD_TX, RF_C_TX_PACKETS) < 300; i++)
		usleep(1000);
	CHECK(ctr(&r, RF_THREAD_TX, RF_C_TX_PACKETS) == 300, "tx_packets");
	CHECK(ctr(&r, RF_THREAD_TX, RF_C_TX_SYSCALLS) >= 1 &&
		      ctr(&r, RF_THREAD_TX, RF_C_TX_SYSCALLS) <= ctr(&r, RF_THREAD_TX, RF_C_TX_FLUSHES) + 0,
	      "one send() per flush at most (syscalls %llu, flushes %llu)",
	      (unsigned long long)ctr(&r, RF_THREAD_TX, RF_C_TX_SYSCALLS),
	      (unsigned long long)ctr(&r, RF_THREAD_TX, RF_C_TX_FLUSHES));
	CHECK(ctr(&r, RF_THREAD_TX, RF_C_TX_FLUSHES) < 300, "flushes batch packets (%llu)",
	      (unsigned long long)ctr(&r, RF_THREAD_TX, RF_C_TX_FLUSHES));
	CHECK(ctr(&r, RF_THREAD_TX, RF_C_DROP_TX_ERROR) == 0, "no TX error");

	/* 2. timed: 20 packets for +40 ms do not arrive before */
	{
		uint64_t t0 = rf_now_ns(), t_first = 0;
		uint8_t buf[2048];

		for (i = 1000; i < 1020; i++) {
			fill_payload(payload, 100, i);
			memcpy(payload, &i, 4);
			rgn_send(&r, 0, payload, 100, t0 + 40 * MS);
		}
		rgn_publish(&r);
		got = 0;
		while (got < 20 && recv(rx4, buf, sizeof(buf), 0) > 0) {
			if (!got)
				t_first = rf_now_ns();
			got++;
		}
		CHECK(got == 20, "20 timed datagrams (got %u)", got);
		CHECK(t_first >= t0 + 40 * MS, "first arrived %lld us after its time (not early)",
		      (long long)(t_first - (t0 + 40 * MS)) / 1000);
	}

	/* 3. the port's RX ring (base filter, outgoing ignored): of UDP from
	 * ns2, an ICMP echo, the ARP before them, the echo reply, our engine's
	 * 5 TX frames and 2 frames sent on the port itself, exactly the 3
	 * incoming UDP datagrams are seen. (The engine's RX thread carries the
	 * relay's filter, which passes only frames a relay can match.) */
	{
		int s = socket_in(ns2, AF_INET, SOCK_DGRAM), ic;
		struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9999) };
		struct rf_engine_config cfg;
		struct rf_port *p = NULL;
		struct rf_rx_pkt pk[32];
		uint8_t echo[8] = { 8, 0, 0, 0, 0x12, 0x34, 0, 1 }, hdr[RF_HDR_MAX];
		uint16_t c = rf_csum_fold(rf_csum_partial(echo, 8, 0));
		uint32_t seen = 0, udp9999 = 0, k, n;
		struct rf_tx_pkt pkt;
		uint64_t t_end;

		memset(&cfg, 0, sizeof(cfg));
		cfg.ifname = vb;
		cfg.netns = ns1;
		rf_engine_config_defaults(&cfg);
		REQUIRE(rf_port_afpacket.open(&p, &cfg, RF_PORT_RX | RF_PORT_TX, err, sizeof(err)) == 0,
			"%s", err);
		inet_pton(AF_INET, "198.19.77.2", &to.sin_addr);
		sh("ip -n %s neigh flush dev %s", ns2, va);
		ic = socket_in_proto(ns2, AF_INET, SOCK_RAW, IPPROTO_ICMP);
		memcpy(echo + 2, &c, 2);
		CHECK(sendto(ic, echo, 8, 0, (struct sockaddr *)&to, sizeof(to)) == 8,
		      "ICMP echo sent: %s", strerror(errno));
		close(ic);
		for (i = 0; i < 3; i++)
			CHECK(sendto(s, "probe", 5, 0, (struct sockaddr *)&to, sizeof(to)) == 5, "sendto");
		close(s);
		for (i = 0; i < 5; i++) {
			fill_payload(payload, 50, 2000 + i);
			i += 2000;
			memcpy(payload, &i, 4);
			i -= 2000;
			rgn_send(&r, 0, payload, 50, 0);
		}
		rgn_publish(&r);
		pkt.hdr = hdr;
		pkt.hdr_len = (uint16_t)rf_netpkt_build(hdr, d, payload, 50, 9);
		pkt.payload = payload;
		pkt.csum_off = 0; /* the header is final */
		pkt.csum_off = 0; /* the header is final */
		pkt.payload_len = 50;
		CHECK(rf_port_afpacket.tx_burst(p, &pkt, 1) == 1 &&
			      rf_port_afpacket.tx_burst(p, &pkt, 1) == 1 &&
			      rf_port_afpacket.flush(p) == 2, "2 frames sent on the port");
		t_end = rf_now_ns() + 500 * MS;
		while (rf_now_ns() < t_end) {
			n = rf_port_afpacket.rx_burst(p, pk, 32);
			for (k = 0; k < n; k++) {
				const uint8_t *f = pk[k].data;

				seen++;
				if (pk[k].len >= 42 && f[12] == 0x08 && f[13] == 0 && f[23] == 17 &&
				    f[36] == 9999 >> 8 && f[37] == (9999 & 0xff))
					udp9999++;
			}
			rf_port_afpacket.rx_release(p);
			usleep(2000);
		}
		CHECK(udp9999 == 3 && seen == 3, "RX ring saw the 3 UDP datagrams only (%u of %u)",
		      udp9999, seen);
		got = receive(rx4, 7, &bad);
		CHECK(got == 7 && bad == 0, "the 7 frames sent meanwhile arrived (%u)", got);
		rf_port_afpacket.close(p);
	}

	/* 3b. frames the kernel drops because the RX ring is full are counted:
	 * a 2-block ring, 300 datagrams while nobody reads, then read it all;
	 * the drops show when a block comes back marked TP_STATUS_LOSING, and
	 * what was read plus what was dropped is exactly what was sent */
	{
		int s = socket_in(ns2, AF_INET, SOCK_DGRAM);
		struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9998) };
		struct rf_engine_config cfg;
		struct rf_port *p = NULL;
		struct rf_rx_pkt pk[32];
		uint32_t seen = 0, k, n, sent = 0;
		uint64_t t_end;

		memset(&cfg, 0, sizeof(cfg));
		cfg.ifname = vb;
		cfg.netns = ns1;
		cfg.rx_block_size = 4096;
		cfg.rx_blocks = 2;
		rf_engine_config_defaults(&cfg);
		REQUIRE(rf_port_afpacket.open(&p, &cfg, RF_PORT_RX, err, sizeof(err)) == 0, "%s", err);
		inet_pton(AF_INET, "198.19.77.2", &to.sin_addr);
		memset(payload, 0x5a, 1000);
		for (i = 0; i < 300; i++)
			sent += sendto(s, payload, 1000, 0, (struct sockaddr *)&to, sizeof(to)) == 1000;
		/* one more after the ring was read: its block carries the LOSING mark */
		for (i = 0; i < 2; i++) {
			t_end = rf_now_ns() + 300 * MS;
			while (rf_now_ns() < t_end) {
				n = rf_port_afpacket.rx_burst(p, pk, 32);
				for (k = 0; k < n; k++)
					seen += pk[k].len >= 38 && pk[k].data[36] == 9998 >> 8 &&
						pk[k].data[37] == (9998 & 0xff);
				rf_port_afpacket.rx_release(p);
				usleep(2000);
			}
			if (i == 0)
				sent += sendto(s, payload, 1000, 0, (struct sockaddr *)&to, sizeof(to)) == 1000;
		}
		close(s);
		CHECK(rf_port_stats(p)->rx_drops > 0, "the full ring dropped frames and they were counted");
		CHECK(seen + rf_port_stats(p)->rx_drops == sent,
		      "read %u + dropped %llu = sent %u", seen,
		      (unsigned long long)rf_port_stats(p)->rx_drops, sent);
		rf_port_afpacket.close(p);
	}

	/* 4. the receiving kernel validates checksums: a frame with a flipped
	 * UDP checksum bit is dropped, the same frame intact is delivered */
	{
		struct rf_engine_config cfg;
		struct rf_port *p = NULL;
		uint8_t hdr[RF_HDR_MAX], buf[64];
		struct rf_tx_pkt pkt;
		uint32_t hl, id = 0x7777;

		memset(&cfg, 0, sizeof(cfg));
		cfg.ifname = vb;
		cfg.netns = ns1;
		rf_engine_config_defaults(&cfg);
		REQUIRE(rf_port_afpacket.open(&p, &cfg, RF_PORT_TX, err, sizeof(err)) == 0, "%s", err);
		memset(payload, 0, 8);
		memcpy(payload, &id, 4);
		hl = rf_netpkt_build(hdr, d, payload, 8, 1);
		hdr[hl - 1] ^= 0x10;
		pkt.hdr = hdr;
		pkt.hdr_len = (uint16_t)hl;
		pkt.payload = payload;
		pkt.csum_off = 0; /* the header is final */
		pkt.csum_off = 0; /* the header is final */
		pkt.payload_len = 8;
		CHECK(rf_port_afpacket.tx_burst(p, &pkt, 1) == 1, "queued");
		CHECK(rf_port_afpacket.flush(p) == 1, "flushed");
		CHECK(recv(rx4, buf, sizeof(buf), 0) < 0, "bad UDP checksum dropped by the kernel");
		hdr[hl - 1] ^= 0x10;
		CHECK(rf_port_afpacket.tx_burst(p, &pkt, 1) == 1, "queued");
		CHECK(rf_port_afpacket.flush(p) == 1, "flushed");
		CHECK(recv(rx4, buf, sizeof(buf), 0) == 8, "the intact frame is delivered");
		/* sizes the kernel would refuse are refused first: taken, marked
		 * refused for the caller to count as its drop, never queued (not
		 * sent, so not a device error either) */
		pkt.payload_len = 1500;
		pkt.refused = 0;
		CHECK(rf_port_afpacket.tx_burst(p, &pkt, 1) == 1 && pkt.refused == 1 &&
			      rf_port_stats(p)->tx_errors == 0,
		      "oversized frame taken and refused (refused %u, tx_errors %llu)", pkt.refused,
		      (unsigned long long)rf_port_stats(p)->tx_errors);
		CHECK(rf_port_afpacket.flush(p) == 0, "a refused frame is not queued");
		CHECK(rf_port_stats(p)->syscalls == 2, "one send() per flush, none without frames");
		/* the MTU shrinks under the port. Frames behind a vnet header
		 * (port_afpacket.c) are not checked by the kernel: the port
		 * re-reads the MTU every 100 ms and refuses the frame itself.
		 * Without the header the kernel marks it TP_STATUS_WRONG_FORMAT
		 * and stops there: the port counts a device error (the frame was
		 * sent as far as the engine knows), unblocks the ring, and the
		 * next frames still leave */
		CHECK(sh("ip -n %s link set %s mtu 1000", ns1, vb) == 0, "shrink the MTU");
		usleep(150000);
		pkt.payload_len = 1100;
		pkt.refused = 0;
		CHECK(rf_port_afpacket.tx_burst(p, &pkt, 1) == 1, "took a 1100-byte payload");
		(void)rf_port_afpacket.flush(p);
		CHECK((pkt.refused == 1 && rf_port_stats(p)->tx_errors == 0) ||
			      (pkt.refused == 0 && rf_port_stats(p)->tx_errors == 1),
		      "refused (vnet) or TP_STATUS_WRONG_FORMAT counted once (refused %u, tx_errors %llu)",
		      pkt.refused, (unsigned long long)rf_port_stats(p)->tx_errors);
		pkt.payload_len = 8;
		pkt.refused = 0;
		for (i = 0; i < 3; i++)
			CHECK(rf_port_afpacket.tx_burst(p, &pkt, 1) == 1, "queued");
		CHECK(rf_port_afpacket.flush(p) == 3, "flushed");
		for (i = 0; i < 3; i++)
			CHECK(recv(rx4, buf, sizeof(buf), 0) == 8, "frame %u after the refused one arrives", i);
		sh("ip -n %s link set %s mtu 1500", ns1, vb);
		rf_port_afpacket.close(p);
	}
	/* 4b. a frame the port refuses, through the engine: the MTU shrinks
	 * under a running engine (its checks still allow 1472 bytes), and a
	 * 1200-byte payload is refused by the port (vnet header: the port's own
	 * MTU check) or by the kernel (TP_STATUS_WRONG_FORMAT). Either way the
	 * packet is counted exactly once: dropped (drop_tx_error, its stream's
	 * and its lane's `dropped`) and not sent, or sent and then a device
	 * error; its slot comes back, and the next packet still leaves */
	{
		uint64_t tx0 = ctr(&r, RF_THREAD_TX, RF_C_TX_PACKETS);
		uint64_t err0 = ctr(&r, RF_THREAD_TX, RF_C_DROP_TX_ERROR);
		uint64_t dev0 = ctr(&r, RF_THREAD_TX, RF_C_TX_DEVICE_ERRORS);
		uint64_t taken0 = lane_ctr(&r, 0, offsetof(struct rf_lane_counters, taken));
		uint64_t sent0 = lane_ctr(&r, 0, offsetof(struct rf_lane_counters, sent));
		uint64_t drop0 = lane_ctr(&r, 0, offsetof(struct rf_lane_counters, dropped));
		struct rf_stream_counters *sc = (struct rf_stream_counters *)(r.mem + r.h->stream_counters_off);
		uint64_t sdrop0 = __atomic_load_n(&sc[0].dropped, __ATOMIC_RELAXED);
		uint64_t spk0 = __atomic_load_n(&sc[0].packets, __ATOMIC_RELAXED);
		uint8_t buf[2048];
		int refused;

		CHECK(sh("ip -n %s link set %s mtu 1000", ns1, vb) == 0, "shrink the MTU");
		usleep(150000);
		fill_payload(payload, 1200, 3000);
		rgn_send(&r, 0, payload, 1200, 0);
		rgn_publish(&r);
		for (i = 0; i < 2000 && lane_ctr(&r, 0, offsetof(struct rf_lane_counters, sent)) +
						lane_ctr(&r, 0, offsetof(struct rf_lane_counters, dropped)) <
					sent0 + drop0 + 1; i++)
			usleep(1000);
		refused = ctr(&r, RF_THREAD_TX, RF_C_DROP_TX_ERROR) == err0 + 1;
		CHECK(lane_ctr(&r, 0, offsetof(struct rf_lane_counters, taken)) == taken0 + 1,
		      "the lane's descriptor was taken once");
		if (refused) {
			CHECK(ctr(&r, RF_THREAD_TX, RF_C_TX_PACKETS) == tx0,
			      "a refused frame is not counted as sent (tx_packets %llu, was %llu)",
			      (unsigned long long)ctr(&r, RF_THREAD_TX, RF_C_TX_PACKETS),
			      (unsigned long long)tx0);
			CHECK(lane_ctr(&r, 0, offsetof(struct rf_lane_counters, dropped)) == drop0 + 1 &&
				      lane_ctr(&r, 0, offsetof(struct rf_lane_counters, sent)) == sent0,
			      "the lane: dropped once, not sent");
			CHECK(__atomic_load_n(&sc[0].dropped, __ATOMIC_RELAXED) == sdrop0 + 1 &&
				      __atomic_load_n(&sc[0].packets, __ATOMIC_RELAXED) == spk0,
			      "its stream: dropped once, not sent");
			CHECK(ctr(&r, RF_THREAD_TX, RF_C_TX_DEVICE_ERRORS) == dev0, "not a device error");
		} else {
			CHECK(ctr(&r, RF_THREAD_TX, RF_C_TX_DEVICE_ERRORS) == dev0 + 1 &&
				      ctr(&r, RF_THREAD_TX, RF_C_TX_PACKETS) == tx0 + 1 &&
				      ctr(&r, RF_THREAD_TX, RF_C_DROP_TX_ERROR) == err0,
			      "the kernel refused it: sent once, one device error, no drop (tx %llu, "
			      "device %llu, drop_tx_error %llu)",
			      (unsigned long long)ctr(&r, RF_THREAD_TX, RF_C_TX_PACKETS),
			      (unsigned long long)ctr(&r, RF_THREAD_TX, RF_C_TX_DEVICE_ERRORS),
			      (unsigned long long)ctr(&r, RF_THREAD_TX, RF_C_DROP_TX_ERROR));
		}
		sh("ip -n %s link set %s mtu 1500", ns1, vb);
		usleep(150000);
		fill_payload(payload, 100, 3001);
		memcpy(payload, &(uint32_t){ 3001 }, 4);
		rgn_send(&r, 0, payload, 100, 0);
		rgn_publish(&r);
		CHECK(recv(rx4, buf, sizeof(buf), 0) == 100, "the next packet leaves");
		for (i = 0; i < 1000 && rf_ring_count(rf_ring_at(r.mem, r.h->lanes[0].free_off)) !=
					       params.slots_per_lane; i++)
			usleep(1000);
		CHECK(rf_ring_count(rf_ring_at(r.mem, r.h->lanes[0].free_off)) == params.slots_per_lane,
		      "every slot is back on the free ring");
	}
	rf_engine_destroy(e);
	close(rx4);
	free(r.mem);

	/* 5. IPv6 on lo inside ns2: ::1 -> ::1 with zero MACs */
	{
		int rx6 = udp_receiver(ns2, AF_INET6, "::1", 7001);

		rgn_init(&r);
		e = engine_on(&r, "lo", ns2, RF_BACKEND_AFPACKET);
		d = (struct rf_dest *)(r.mem + r.h->dest_off);
		memset(d, 0, sizeof(*d));
		d->family = 6;
		d->flags = RF_DEST_F_VALID;
		d->src_port = htons(5001);
		d->dst_port = htons(7001);
		d->src_addr[15] = 1;
		d->dst_addr[15] = 1;
		for (i = 0; i < 100; i++) {
			fill_payload(payload, len_of(i), i);
			memcpy(payload, &i, 4);
			rgn_send(&r, 0, payload, len_of(i), 0);
		}
		rgn_publish(&r);
		bad = 0;
		got = receive(rx6, 100, &bad);
		CHECK(got == 100, "100 IPv6 datagrams on lo (got %u)", got);
		CHECK(bad == 0, "%u IPv6 payloads differ", bad);
		/* no check of RX here: lo loops our frames back as incoming ones,
		 * which PACKET_IGNORE_OUTGOING cannot tell from others */
		rf_engine_destroy(e);
		close(rx6);
		free(r.mem);
	}
	cleanup();
	return t_result("afpacket");
}
