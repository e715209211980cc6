/* SPDX-License-Identifier: MIT */
/*
 * The shared region: the one contract between TypeScript and the C engine.
 *
 * TypeScript allocates a SharedArrayBuffer of rf_region_layout().size bytes;
 * the addon calls rf_region_init() on it, which writes the header and the
 * version field last. src/region/layout.ts mirrors every struct and the
 * layout algorithm below; at attach the addon publishes the offsets (see
 * rf_region_fields) and TypeScript refuses to run on any difference.
 *
 * Region map (every part starts on a 4096-byte boundary):
 *
 *   header | counters | lanes (submit ring + free ring each) | policy ring |
 *   event ring | destination table | stream counters | output counters |
 *   lane counters | pool | capture rings (since 2.1)
 *
 * Lanes: lane 0 belongs to the main thread, lanes 1..n to Piscina workers
 * (each worker claims one through rf_region_hdr.lane_claim). A lane owns a
 * slice of the pool and of the destination table, one descriptor ring it
 * produces (submit, lane -> engine) and one slot ring it consumes (free,
 * engine -> lane: slots whose packets have left). Every ring has exactly one
 * producer and one consumer.
 *
 * Bump RF_VERSION_MAJOR on any change of a byte position, RF_VERSION_MINOR
 * on additions that older readers can ignore.
 *
 * Trust: everything in the region may be written by TypeScript at any time
 * (a bug or a hostile worker included). The engine checks the header once at
 * create and then uses only its own copy; it snapshots every entry it reads
 * (descriptors, destinations, policy messages) before it checks and uses the
 * copy; it checks every peer index against what the ring can hold; it keeps
 * its own view of which pool slot is where. A lane that breaks the rules is
 * counted in its rf_lane_counters and quarantined (docs/trust.md).
 *
 * 2.0: rf_dest.gen (was reserved), the lane counters part (which moved the
 * pool), thread counters drop_bad_time and tx_device_errors, event
 * RF_EVENT_LANE_QUARANTINED.
 * 2.1: the capture rings after the pool (rf_region_hdr.capture_off,
 * rf_capture_ring); nothing before them moved.
 */
#ifndef REFLECTOR_REGION_H
#define REFLECTOR_REGION_H

#include <stddef.h>
#include <stdint.h>

#define RF_REGION_MAGIC   0x58464c52u /* "RLFX" read as little-endian bytes */
#define RF_VERSION_MAJOR  2u
#define RF_VERSION_MINOR  1u
#define RF_CACHELINE      64u
#define RF_PAGE           4096u

#define RF_MAX_LANES      64u
#define RF_MAX_THREADS    4u   /* engine threads with a doorbell and a counter block */
#define RF_SLOT_HEADROOM  128u /* bytes before the payload in a slot, for in-place headers */
#define RF_MAX_REGION     (1u << 31)

/* Engine threads: index of the doorbell and the counter block. */
enum rf_thread_id {
	RF_THREAD_TX = 0, /* lanes -> timing wheel -> port */
	RF_THREAD_RX = 1, /* port -> policy table -> port (relay) */
};

/* ---------------------------------------------------------------- rings -- */

/*
 * Header of a single-producer/single-consumer ring, followed by `entries`
 * entries of `entry_size` bytes. Indexes are free-running uint32 and masked
 * on access, so wraparound at 2^32 needs no special case (DPDK rte_ring).
 * Producer and consumer state sit on separate cache lines.
 *
 * Waiting (no side burns a core):
 * - consumer_waiting: 0, or how many entries (>= 1) the consumer wants when
 *   it sleeps on the futex word `producer` (a low-water mark). The producer
 *   wakes it after publishing when the word is non-zero, at once or (the
 *   engine on a lane's free ring) once that many entries are ready or no
 *   more will come; the consumer takes whatever is ready after any wake.
 * - producer_waiting: the producer sleeps on the futex word `consumer` (ring
 *   full); the consumer wakes it after releasing when the flag is set.
 * The engine never sleeps on a ring futex (it serves many rings): it sleeps on
 * its thread's doorbell, see rf_doorbell.
 */
struct rf_ring {
	/* producer cache line: written by the producer */
	uint32_t producer;
	uint32_t producer_waiting;
	uint8_t _pad0[RF_CACHELINE - 8];
	/* consumer cache line: written by the consumer */
	uint32_t consumer;
	uint32_t consumer_waiting;
	uint8_t _pad1[RF_CACHELINE - 8];
	/* constant after init */
	uint32_t entries;    /* power of two */
	uint32_t mask;       /* entries - 1 */
	uint32_t entry_size; /* bytes, multiple of 4 */
	uint32_t data_off;   /* entries start this many bytes after the header */
	uint8_t _pad2[RF_CACHELINE - 16];
};

/* --------------------------------------------------------- descriptors -- */

/* Descriptor flags. */
#define RF_DESC_F_AGG_END   0x0001u /* last packet of an aggregate (one submission) */

/*
 * One packet handed from a lane to the engine: its payload is in pool slot
 * `slot` at RF_SLOT_HEADROOM, `len` bytes; the engine builds Ethernet, IP and
 * UDP headers from destination entry `dest` and sends it at `tx_time`.
 */
struct rf_desc {
	uint64_t tx_time; /* CLOCK_MONOTONIC ns; 0 = as soon as possible */
	uint32_t slot;    /* pool slot index (global) */
	uint16_t len;     /* UDP payload bytes */
	uint16_t flags;   /* RF_DESC_F_* */
	uint32_t dest;    /* destination table index (global) */
	uint32_t stream;  /* stream (session) id, indexes stream counters */
	uint32_t seq;     /* per-lane sequence number; the engine counts gaps */
	uint32_t _rsvd;
};

/* ------------------------------------------------------- destinations -- */

#define RF_DEST_F_VALID 0x01u

/*
 * Where a packet goes: written by the lane that owns the entry before the
 * first descriptor that names it (the ring's release store orders the two).
 * Ports are in network byte order; IPv4 addresses use the first 4 bytes.
 *
 * `gen` is a sequence lock (reflector/dest.h): the writer makes it odd,
 * writes the other fields, then makes it even again; the engine copies the
 * entry only between two equal even reads. The engine builds a packet's
 * headers from one complete version of the entry, the one it read when it
 * took the descriptor or a later one, never from a mix: rewriting an entry
 * while packets to it are queued is allowed.
 */
struct rf_dest {
	uint8_t family;  /* 4 or 6 */
	uint8_t ttl;     /* IPv4 TTL / IPv6 hop limit; 0 = 64 */
	uint8_t dscp;    /* 0..63 */
	uint8_t flags;   /* RF_DEST_F_* */
	uint16_t src_port;
	uint16_t dst_port;
	uint8_t dst_mac[6];
	uint8_t src_mac[6];
	uint32_t gen;    /* sequence lock: odd while being written; since 2.0 */
	uint8_t src_addr[16];
	uint8_t dst_addr[16];
	uint8_t _rsvd1[8];
};

/* --------------------------------------------------------- policy ring -- */

/* Policy messages (main thread -> engine), one rf_policy_msg each. The ops
 * and their bodies are defined by the relay table (relay.h); the engine acks
 * every message with an RF_EVENT_POLICY_ACK carrying `seq`. */
#define RF_POLICY_MSG_SIZE 256u

struct rf_policy_msg {
	uint32_t op;
	uint32_t seq;
	uint8_t body[RF_POLICY_MSG_SIZE - 8];
};

/* ---------------------------------------------------------- event ring -- */

enum rf_event_type {
	RF_EVENT_NONE = 0,
	RF_EVENT_POLICY_ACK = 1, /* a = policy seq, b = status (0 ok, else errno) */
	RF_EVENT_STARTED = 2,    /* a = thread id */
	RF_EVENT_STOPPED = 3,    /* a = thread id */
	RF_EVENT_ERROR = 4,      /* a = thread id, b = errno */
	RF_EVENT_LANE_QUARANTINED = 5, /* a = lane (lane_count: the control channel),
					* b = the last fault (rf_lane_fault), c = faults so far */
};

struct rf_event {
	uint32_t type; /* rf_event_type */
	uint32_t _rsvd;
	uint64_t a;
	uint64_t b;
	uint64_t c;
};

/* ------------------------------------------------------------ counters -- */

/*
 * One block of 64-bit counters per engine thread, each written by that
 * thread only. Names are published by the addon (rf_counter_names) and
 * mirrored in src/metrics; every drop site names the counter it bumps.
 */
enum rf_counter {
	RF_C_TX_PACKETS = 0,     /* frames handed to the port */
	RF_C_TX_BYTES,           /* frame bytes handed to the port */
	RF_C_TX_FLUSHES,         /* port flushes (one system call each at most) */
	RF_C_TX_SYSCALLS,        /* system calls made by the port to send */
	RF_C_TX_RING_FULL,       /* times the port's TX ring was full (backpressure, not a drop) */
	RF_C_RX_PACKETS,         /* frames read from the port */
	RF_C_RX_BYTES,
	RF_C_DESC_CONSUMED,      /* descriptors taken from lane rings */
	RF_C_DESC_SEQ_GAP,       /* descriptors whose seq was not the lane's next */
	RF_C_DROP_BAD_SLOT,      /* dropped: slot index outside the lane's slice */
	RF_C_DROP_BAD_DEST,      /* dropped: dest index outside the lane's slice or entry not valid */
	RF_C_DROP_BAD_LEN,       /* dropped: payload longer than the slot or the MTU allows */
	RF_C_DROP_LATE,          /* dropped: later than the lateness limit */
	RF_C_DROP_TX_ERROR,      /* dropped: the port refused the frame */
	RF_C_LATE_PACKETS,       /* sent after their time (any amount) */
	RF_C_WAKEUPS,            /* doorbell wakeups */
	RF_C_SLEEPS,             /* times the thread slept */
	RF_C_POLICY_APPLIED,     /* policy messages applied */
	RF_C_POLICY_REJECTED,    /* policy messages refused (bad op or body) */
	RF_C_RELAY_IN,           /* frames matched to a relay */
	RF_C_RELAY_OUT,          /* frames sent by relays */
	RF_C_DROP_NOT_ALLOWED,   /* dropped: source outside the relay's allowed prefixes */
	RF_C_DROP_MALFORMED,     /* dropped: truncated or inconsistent headers */
	RF_C_DROP_FRAGMENT,      /* dropped: IP fragment to a relay */
	RF_C_DROP_NO_NEIGHBOUR,  /* dropped: output has no next-hop address */
	RF_C_DROP_TX_FULL,       /* dropped: port TX ring full on the relay path */
	RF_C_RX_UNMATCHED,       /* frames no relay matched (left to the kernel) */
	RF_C_DROP_RX_RING,       /* dropped by the kernel: the RX ring was full (PACKET_STATISTICS tp_drops); since 1.1 */
	RF_C_DROP_BAD_TIME,      /* dropped: tx_time further ahead than RF_TX_HORIZON_NS; since 2.0 */
	RF_C_TX_DEVICE_ERRORS,   /* frames the kernel took and the device then refused (also in
				  * tx_packets: the engine cannot tell which packet it was); since 2.0 */
	RF_C_DROP_RATE_LIMIT,    /* dropped: above the relay's max_pps / max_bps (RF_POLICY_OP_RELAY_LIMIT); since 2.0 */
	RF_C_COUNT_USED,
	RF_C_HIST_BASE = 32,     /* lateness histogram buckets, see RF_HIST_* */
	RF_COUNTERS_PER_BLOCK = 64,
};

/* Lateness histogram: bucket i counts packets sent at most rf_hist_bound_ns(i)
 * after their time; the last bucket is +Inf. Bounds 1us * 2^i. */
#define RF_HIST_BUCKETS 24u

/* Per stream (session) counters, written by the TX thread only. */
struct rf_stream_counters {
	uint64_t packets;
	uint64_t bytes;
	uint64_t late;
	uint64_t dropped;
};

/* Per relay output counters, written by the RX thread only. A relay's own
 * slot counts what it took in (packets, bytes) and what it dropped (drops:
 * sources outside its prefixes and packets above its rate limit; limited:
 * the latter alone, since 2.0). */
struct rf_output_counters {
	uint64_t packets;
	uint64_t bytes;
	uint64_t drops;
	uint64_t limited;
};

/* Descriptors whose tx_time is further ahead than this are dropped
 * (RF_C_DROP_BAD_TIME): below the timing wheel's level-1 horizon (17.2 s),
 * so no packet waits on an unbounded list. */
#define RF_TX_HORIZON_NS (16ull * 1000000000ull)

/* ------------------------------------------------------- lane counters -- */

/*
 * How a lane broke the rules of the region (each is counted and corrected:
 * the entry is not used, the index is not followed). Names in
 * rf_lane_fault_names, the `reason` of reflector_lane_faults_total.
 */
enum rf_lane_fault {
	RF_LANE_FAULT_SUBMIT_INDEX = 0, /* the submit (control: policy) ring's producer index is
					 * behind the engine or more than the ring ahead */
	RF_LANE_FAULT_FREE_INDEX = 1,   /* the free (control: event) ring's consumer index moved
					 * backwards or past what the engine published */
	RF_LANE_FAULT_SLOT = 2,         /* a descriptor names a slot outside the lane's slice */
	RF_LANE_FAULT_SLOT_NOT_HELD = 3, /* ... a slot of the lane that the lane does not hold:
					  * in flight already, or still on its free ring */
	RF_LANE_FAULT_DEST = 4,         /* ... a destination outside the lane's slice */
	RF_LANE_FAULT_DEST_TORN = 5,    /* ... an entry that stayed mid-rewrite (gen odd or moving) */
	RF_LANE_FAULT_COUNT_USED,
	RF_LANE_FAULTS = 8,             /* slots in rf_lane_counters.faults */
};

/* A lane with more faults than this within RF_LANE_FAULT_WINDOW_NS is
 * quarantined: the engine takes nothing more from it until it is restarted
 * (rf_engine_stop + rf_engine_start), and posts RF_EVENT_LANE_QUARANTINED. */
#define RF_LANE_FAULT_LIMIT     32u
#define RF_LANE_FAULT_WINDOW_NS 1000000000ull

enum rf_lane_state {
	RF_LANE_OK = 0,
	RF_LANE_QUARANTINED = 1,
};

/*
 * One block per lane, written by the TX thread only, then one more (index
 * lane_count) for the control channel (the policy and event rings), written
 * by the RX thread only; read by TypeScript at scrape time.
 *
 * For a lane: taken = sent + dropped + what is in flight (0 once the lane is
 * idle and its last packet left), every drop also counted once under one
 * drop_* thread counter and in its stream's `dropped`.
 * For the control block: taken = policy messages taken, sent = events
 * posted, dropped = events lost because the event ring was full.
 */
struct rf_lane_counters {
	uint64_t taken;
	uint64_t sent;
	uint64_t dropped;
	uint32_t state;      /* rf_lane_state */
	uint32_t last_fault; /* rf_lane_fault of the last fault */
	uint64_t faults[RF_LANE_FAULTS]; /* by rf_lane_fault */
	uint8_t _pad[RF_CACHELINE * 2 - 32 - 8 * RF_LANE_FAULTS];
};

/* ------------------------------------------------------- capture rings -- */

/*
 * What an armed capture copies (engine/src/relay_capture.c): one byte ring
 * per engine thread (RF_THREAD_TX: sessions' packets; RF_THREAD_RX: a relay's
 * ingress and output packets), each written by that thread only and read by
 * TypeScript (src/capture/ring.ts). Records are 8-byte aligned, a 32-byte
 * rf_capture_rec then `caplen` frame bytes; a record never wraps: when the
 * space to the end is too short, a record of kind RF_CAP_PAD fills it and
 * the next starts at offset 0. The producer never waits: a record that does
 * not fit is dropped and counted (`dropped`, reflector_capture_dropped_total).
 * Positions are free-running uint32 byte counts, masked on access; the
 * consumer frees space by storing `consumer` (release), the producer
 * publishes records by storing `producer` (release).
 */
#define RF_CAPTURE_RINGS      2u
#define RF_CAPTURE_DATA       (1u << 20) /* data bytes per ring, a power of two */
#define RF_CAPTURE_HDR        (3u * RF_CACHELINE)
#define RF_CAPTURE_STRIDE     (RF_CAPTURE_HDR + RF_CAPTURE_DATA)
#define RF_CAPTURE_SNAP       2048u      /* bytes of a frame copied at most */

enum rf_capture_kind {
	RF_CAP_PAD = 0,     /* skip to the end of the data area */
	RF_CAP_INGRESS = 1, /* a frame a relay took in, as received; id = relay id */
	RF_CAP_OUTPUT = 2,  /* a relay's frame to one output, as rewritten; id = output id */
	RF_CAP_SESSION = 3, /* a session's frame as sent; id = stream */
};

struct rf_capture_ring {
	/* producer cache line: written by the engine thread */
	uint32_t producer;
	uint32_t _rsvd0;
	uint64_t captured;  /* records written */
	uint64_t dropped;   /* records that did not fit */
	uint8_t _pad0[RF_CACHELINE - 24];
	/* consumer cache line: written by TypeScript */
	uint32_t consumer;
	uint32_t armed;     /* RF_THREAD_TX's ring: 0 = no capture, else the captured stream + 1
			     * (read once per burst; the RX ring is armed by RF_POLICY_OP_CAPTURE) */
	uint8_t _pad1[RF_CACHELINE - 8];
	/* constant after init */
	uint32_t size;      /* RF_CAPTURE_DATA */
	uint32_t data_off;  /* RF_CAPTURE_HDR */
	uint8_t _pad2[RF_CACHELINE - 8];
};

struct rf_capture_rec {
	uint32_t len;       /* bytes of the record, header included, a multiple of 8 */
	uint32_t caplen;    /* frame bytes that follow */
	uint32_t wire_len;  /* the frame's length on the wire */
	uint16_t kind;      /* rf_capture_kind */
	uint16_t _rsvd0;
	uint32_t id;
	uint32_t _rsvd1;
	uint64_t ts_ns;     /* CLOCK_REALTIME */
};

/* ------------------------------------------------------------- header -- */

/*
 * An engine thread's doorbell: the thread sets `sleeping`, fences, re-checks
 * its rings and then waits on eventfd `fd`; a producer that publishes work
 * stores its ring index, fences, reads `sleeping` and, when set, writes the
 * eventfd (through the addon's ring() call). See rf_smp_mb().
 */
struct rf_doorbell {
	uint32_t sleeping;
	int32_t fd; /* eventfd, -1 while the engine is stopped */
	uint32_t rings; /* times a producer rang it */
	uint8_t _pad[RF_CACHELINE - 12];
};

struct rf_lane {
	uint32_t submit_off; /* rf_ring of rf_desc */
	uint32_t free_off;   /* rf_ring of uint32 slot indexes */
	uint32_t slot_first;
	uint32_t slot_count;
	uint32_t dest_first;
	uint32_t dest_count;
	uint32_t _rsvd[2];
};

enum rf_engine_state {
	RF_STATE_STOPPED = 0,
	RF_STATE_RUNNING = 1,
};

struct rf_region_hdr {
	uint32_t magic;
	uint32_t version;       /* major << 16 | minor; written last at init */
	uint32_t region_size;
	uint32_t header_size;

	uint32_t lane_count;
	uint32_t lane_claim;    /* workers claim lanes 1.. by atomic add */
	uint32_t submit_entries;
	uint32_t free_entries;

	uint32_t slot_size;
	uint32_t slot_count;
	uint32_t pool_off;
	uint32_t dest_count;

	uint32_t dest_off;
	uint32_t policy_off;    /* rf_ring of rf_policy_msg */
	uint32_t event_off;     /* rf_ring of rf_event */
	uint32_t counters_off;  /* RF_MAX_THREADS blocks of RF_COUNTERS_PER_BLOCK uint64 */

	uint32_t stream_counters_off;
	uint32_t max_streams;
	uint32_t output_counters_off;
	uint32_t max_outputs;

	uint32_t policy_entries;
	uint32_t event_entries;
	uint32_t engine_state;  /* rf_engine_state, written by the engine */
	uint32_t lane_counters_off; /* lane_count + 1 rf_lane_counters; since 2.0 */

	uint32_t capture_off;   /* RF_CAPTURE_RINGS rf_capture_ring, RF_CAPTURE_STRIDE apart; since 2.1 */
	uint8_t _pad0[RF_CACHELINE * 2 - 100];

	struct rf_doorbell doorbell[RF_MAX_THREADS];
	struct rf_lane lanes[RF_MAX_LANES];
};

/* ------------------------------------------------------------- layout -- */

/* What the application chooses; everything else follows. */
struct rf_region_params {
	uint32_t lanes;          /* 1..RF_MAX_LANES (lane 0 = main thread) */
	uint32_t slots_per_lane; /* power of two */
	uint32_t slot_size;      /* power of two, >= 512 */
	uint32_t submit_entries; /* descriptors per lane ring, power of two */
	uint32_t dests_per_lane;
	uint32_t policy_entries; /* power of two */
	uint32_t event_entries;  /* power of two */
	uint32_t max_streams;
	uint32_t max_outputs;
};

struct rf_region_layout {
	uint32_t size;
	uint32_t header_size;
	uint32_t counters_off;
	uint32_t lanes_off;     /* first lane's submit ring */
	uint32_t lane_stride;   /* bytes from one lane's submit ring to the next */
	uint32_t free_rel;      /* free ring, relative to the lane's submit ring */
	uint32_t policy_off;
	uint32_t event_off;
	uint32_t dest_off;
	uint32_t stream_counters_off;
	uint32_t output_counters_off;
	uint32_t lane_counters_off;
	uint32_t pool_off;
	uint32_t capture_off;   /* since 2.1 */
};

/* Validate params and compute the layout. Returns 0, or -1 with a message in
 * err naming the parameter and its accepted range. */
int rf_region_layout(const struct rf_region_params *p, struct rf_region_layout *out,
		     char *err, size_t errlen);

/* Write the header, the ring headers and the free rings (every lane's free
 * ring starts full of its slots) into `mem` of `len` bytes, version last. */
int rf_region_init(void *mem, size_t len, const struct rf_region_params *p,
		   char *err, size_t errlen);

/* Check a region written by rf_region_init (magic, version, sizes). */
int rf_region_check(const void *mem, size_t len, char *err, size_t errlen);

/* Named byte positions of every shared struct field, published at attach so
 * TypeScript can compare them with its mirror. Terminated by {NULL, 0}. */
struct rf_field {
	const char *name;
	uint32_t value;
};
extern const struct rf_field rf_region_fields[];
/* Counter names in enum order (RF_C_COUNT_USED entries). */
extern const char *const rf_counter_names[];
/* Lane fault names in enum order (RF_LANE_FAULT_COUNT_USED entries). */
extern const char *const rf_lane_fault_names[];

static inline struct rf_region_hdr *rf_hdr(void *mem) { return (struct rf_region_hdr *)mem; }
static inline struct rf_capture_ring *rf_capture_ring_at(void *mem, const struct rf_region_hdr *h,
							 uint32_t ring)
{
	return (struct rf_capture_ring *)((uint8_t *)mem + h->capture_off + (size_t)ring * RF_CAPTURE_STRIDE);
}
static inline struct rf_ring *rf_ring_at(void *mem, uint32_t off)
{
	return (struct rf_ring *)((uint8_t *)mem + off);
}
static inline uint8_t *rf_slot_data(void *mem, const struct rf_region_hdr *h, uint32_t slot)
{
	return (uint8_t *)mem + h->pool_off + (size_t)slot * h->slot_size + RF_SLOT_HEADROOM;
}
static inline uint64_t *rf_counters(void *mem, const struct rf_region_hdr *h, enum rf_thread_id t)
{
	return (uint64_t *)((uint8_t *)mem + h->counters_off) + (size_t)t * RF_COUNTERS_PER_BLOCK;
}
/* Lane `lane`'s counters; lane == lane_count: the control channel's. */
static inline struct rf_lane_counters *rf_lane_counters(void *mem, const struct rf_region_hdr *h,
							uint32_t lane)
{
	return (struct rf_lane_counters *)((uint8_t *)mem + h->lane_counters_off) + lane;
}

/* ------------------------------------------------------ static asserts -- */

_Static_assert(sizeof(struct rf_ring) == 3 * RF_CACHELINE, "rf_ring is three cache lines");
_Static_assert(offsetof(struct rf_ring, consumer) == RF_CACHELINE, "consumer on its own line");
_Static_assert(offsetof(struct rf_ring, entries) == 2 * RF_CACHELINE, "constants on their own line");
_Static_assert(sizeof(struct rf_desc) == 32, "rf_desc is 32 bytes");
_Static_assert(offsetof(struct rf_desc, slot) == 8, "rf_desc.slot");
_Static_assert(offsetof(struct rf_desc, len) == 12, "rf_desc.len");
_Static_assert(offsetof(struct rf_desc, flags) == 14, "rf_desc.flags");
_Static_assert(offsetof(struct rf_desc, dest) == 16, "rf_desc.dest");
_Static_assert(offsetof(struct rf_desc, stream) == 20, "rf_desc.stream");
_Static_assert(offsetof(struct rf_desc, seq) == 24, "rf_desc.seq");
_Static_assert(sizeof(struct rf_dest) == 64, "rf_dest is one cache line");
_Static_assert(offsetof(struct rf_dest, src_port) == 4, "rf_dest.src_port");
_Static_assert(offsetof(struct rf_dest, dst_mac) == 8, "rf_dest.dst_mac");
_Static_assert(offsetof(struct rf_dest, src_mac) == 14, "rf_dest.src_mac");
_Static_assert(offsetof(struct rf_dest, gen) == 20, "rf_dest.gen");
_Static_assert(offsetof(struct rf_dest, src_addr) == 24, "rf_dest.src_addr");
_Static_assert(offsetof(struct rf_dest, dst_addr) == 40, "rf_dest.dst_addr");
_Static_assert(sizeof(struct rf_policy_msg) == RF_POLICY_MSG_SIZE, "policy message size");
_Static_assert(sizeof(struct rf_event) == 32, "rf_event is 32 bytes");
_Static_assert(sizeof(struct rf_doorbell) == RF_CACHELINE, "doorbell on its own line");
_Static_assert(sizeof(struct rf_lane) == 32, "rf_lane is 32 bytes");
_Static_assert(offsetof(struct rf_region_hdr, doorbell) == 2 * RF_CACHELINE, "doorbells");
_Static_assert(offsetof(struct rf_region_hdr, lanes) ==
	       2 * RF_CACHELINE + RF_MAX_THREADS * RF_CACHELINE, "lane table");
_Static_assert(sizeof(struct rf_region_hdr) <= RF_PAGE, "header fits a page");
_Static_assert(RF_C_COUNT_USED <= RF_C_HIST_BASE, "counters overlap the histogram");
_Static_assert(RF_C_HIST_BASE + RF_HIST_BUCKETS <= RF_COUNTERS_PER_BLOCK, "histogram fits the block");
_Static_assert(sizeof(struct rf_stream_counters) == 32, "stream counters");
_Static_assert(sizeof(struct rf_output_counters) == 32, "output counters");
_Static_assert(sizeof(struct rf_lane_counters) == 2 * RF_CACHELINE, "lane counters: two lines");
_Static_assert(offsetof(struct rf_lane_counters, state) == 24, "rf_lane_counters.state");
_Static_assert(offsetof(struct rf_lane_counters, last_fault) == 28, "rf_lane_counters.last_fault");
_Static_assert(offsetof(struct rf_lane_counters, faults) == 32, "rf_lane_counters.faults");
_Static_assert(RF_LANE_FAULT_COUNT_USED <= RF_LANE_FAULTS, "fault reasons fit the block");
_Static_assert(offsetof(struct rf_region_hdr, engine_state) == 88, "rf_region_hdr.engine_state");
_Static_assert(offsetof(struct rf_region_hdr, lane_counters_off) == 92, "rf_region_hdr.lane_counters_off");
_Static_assert(RF_TX_HORIZON_NS < (1ull << 34), "the TX horizon is below the wheel's level-1 horizon (2^34 ns)");
_Static_assert(offsetof(struct rf_output_counters, limited) == 24, "rf_output_counters.limited");
_Static_assert(offsetof(struct rf_region_hdr, capture_off) == 96, "rf_region_hdr.capture_off");
_Static_assert(sizeof(struct rf_capture_ring) == RF_CAPTURE_HDR, "rf_capture_ring");
_Static_assert(offsetof(struct rf_capture_ring, consumer) == RF_CACHELINE, "capture consumer on its own line");
_Static_assert(offsetof(struct rf_capture_ring, size) == 2 * RF_CACHELINE, "capture constants on their own line");
_Static_assert(sizeof(struct rf_capture_rec) == 32, "rf_capture_rec");
_Static_assert(offsetof(struct rf_capture_rec, kind) == 12, "rf_capture_rec.kind");
_Static_assert(offsetof(struct rf_capture_rec, ts_ns) == 24, "rf_capture_rec.ts_ns");

#endif
