/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * XDP half of bench/c/recv_xdp.c: stamps every IPv4 UDP datagram to the
 * configured port with bpf_ktime_get_ns() (CLOCK_MONOTONIC, the clock the
 * engine schedules in), hands a 32-byte record to user space through a BPF
 * ring buffer and drops the frame. Other frames (ARP, ...) pass.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* struct recv_rec of recv_common.h (that header is not for the BPF target) */
struct rec {
	__s64 rx_ns;
	__u16 src_port;
	__u16 len;
	__u32 pad;
	__u8 peek[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 26); /* 2M records: ~10 s at 190 kpps */
} recs SEC(".maps");

/* set by user space before attaching: the port and the peek offset */
enum { CFG_PORT, CFG_PEEK, CFG_N };
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CFG_N);
	__type(key, __u32);
	__type(value, __u32);
} cfg SEC(".maps");

/* records the ring buffer had no room for */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

static __always_inline __u32 cfg_get(__u32 k)
{
	__u32 *v = bpf_map_lookup_elem(&cfg, &k);

	return v ? *v : 0;
}

SEC("xdp")
int recv_xdp(struct xdp_md *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp;
	struct rec *r;
	__u32 ihl, zero = 0;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(0x3fff)))
		return XDP_PASS;
	ihl = ip->ihl * 4u;
	if (ihl < sizeof(*ip) || ihl > 60)
		return XDP_PASS;
	udp = (void *)ip + ihl;
	if ((void *)(udp + 1) > end || udp->dest != bpf_htons((__u16)cfg_get(CFG_PORT)))
		return XDP_PASS;
	r = bpf_ringbuf_reserve(&recs, sizeof(*r), 0);
	if (!r) {
		__u64 *n = bpf_map_lookup_elem(&lost, &zero);

		if (n)
			__sync_fetch_and_add(n, 1);
		return XDP_DROP;
	}
	r->rx_ns = (__s64)now;
	r->src_port = bpf_ntohs(udp->source);
	r->len = bpf_ntohs(udp->len) - sizeof(*udp);
	r->pad = 0;
	if (bpf_xdp_load_bytes(ctx, sizeof(*eth) + ihl + sizeof(*udp) + (cfg_get(CFG_PEEK) & 0x7ff),
			       r->peek, sizeof(r->peek)))
		__builtin_memset(r->peek, 0, sizeof(r->peek));
	/* no wake-up per record: user space polls the ring every millisecond */
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
