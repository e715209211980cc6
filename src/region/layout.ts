// SPDX-License-Identifier: MIT
// TypeScript mirror of engine/include/reflector/region.h: constants, the byte
// position of every shared struct field (named exactly as rf_region_fields
// publishes them), the layout algorithm of rf_region_layout() and the counter
// indexes. The engine is the owner: checkLayout() compares this mirror with
// what the addon publishes and refuses to run on any difference, naming both
// versions and the first field that differs (the Aeron way: one layout, two
// languages, checked at attach).
import { ReflectorError } from '../errors';
import type { Native } from '../native';
import type { RegionParams } from './params';

export const VERSION_MAJOR = 2;
export const VERSION_MINOR = 1;
export const REGION_MAGIC = 0x58464c52; // "RLFX" as little-endian bytes
export const CACHELINE = 64;
export const PAGE = 4096;
export const MAX_LANES = 64;
export const MAX_THREADS = 4;
export const SLOT_HEADROOM = 128;
export const MAX_REGION = 2 ** 31;
export const COUNTERS_PER_BLOCK = 64;
export const HIST_BASE = 32;
export const HIST_BUCKETS = 24;
export const POLICY_MSG_SIZE = 256;
/** rf_lane_counters.faults slots, the fault limit per window, the TX horizon (region.h) */
export const LANE_FAULTS = 8;
export const LANE_FAULT_LIMIT = 32;
export const TX_HORIZON_MS = 16_000;

/** enum rf_thread_id */
export const THREAD_TX = 0;
export const THREAD_RX = 1;

/** enum rf_engine_state */
export const STATE_STOPPED = 0;
export const STATE_RUNNING = 1;

export const DESC_F_AGG_END = 0x0001;
export const DEST_F_VALID = 0x01;

/** enum rf_event_type */
export const EVENT_NONE = 0;
export const EVENT_POLICY_ACK = 1;
export const EVENT_STARTED = 2;
export const EVENT_STOPPED = 3;
export const EVENT_ERROR = 4;
/** a = lane (laneCount: the control channel), b = the last fault (LANE_FAULT_NAMES index), c = faults so far */
export const EVENT_LANE_QUARANTINED = 5;

/** enum rf_lane_state */
export const LANE_OK = 0;
export const LANE_QUARANTINED = 1;

/** struct rf_ring (three cache lines) */
export const RING = {
  size: 192,
  producer: 0,
  producerWaiting: 4,
  consumer: 64,
  consumerWaiting: 68,
  entries: 128,
  mask: 132,
  entrySize: 136,
  dataOff: 140,
} as const;

/** struct rf_desc */
export const DESC = {
  size: 32,
  txTime: 0,
  slot: 8,
  len: 12,
  flags: 14,
  dest: 16,
  stream: 20,
  seq: 24,
} as const;

/** struct rf_dest */
export const DEST = {
  size: 64,
  family: 0,
  ttl: 1,
  dscp: 2,
  flags: 3,
  srcPort: 4,
  dstPort: 6,
  dstMac: 8,
  srcMac: 14,
  gen: 20,
  srcAddr: 24,
  dstAddr: 40,
} as const;

/** struct rf_policy_msg */
export const POLICY_MSG = { size: POLICY_MSG_SIZE, op: 0, seq: 4, body: 8 } as const;

/** struct rf_event */
export const EVENT = { size: 32, type: 0, a: 8, b: 16, c: 24 } as const;

/** struct rf_doorbell */
export const DOORBELL = { size: 64, sleeping: 0, fd: 4, rings: 8 } as const;

/** struct rf_lane */
export const LANE = {
  size: 32,
  submitOff: 0,
  freeOff: 4,
  slotFirst: 8,
  slotCount: 12,
  destFirst: 16,
  destCount: 20,
} as const;

/** struct rf_stream_counters */
export const STREAM_COUNTERS = { size: 32, packets: 0, bytes: 8, late: 16, dropped: 24 } as const;

/** struct rf_output_counters */
export const OUTPUT_COUNTERS = { size: 32, packets: 0, bytes: 8, drops: 16, limited: 24 } as const;

/** struct rf_lane_counters (two cache lines; one per lane, then the control channel's) */
export const LANE_COUNTERS = { size: 128, taken: 0, sent: 8, dropped: 16, state: 24, lastFault: 28, faults: 32 } as const;

/** enum rf_lane_fault, names as rf_lane_fault_names publishes them (the `reason` of reflector_lane_faults_total). */
export const LANE_FAULT_NAMES = ['submit_index', 'free_index', 'slot', 'slot_not_held', 'dest', 'dest_torn'] as const;
export type LaneFaultName = (typeof LANE_FAULT_NAMES)[number];

/** struct rf_region_hdr */
export const HDR = {
  magic: 0,
  version: 4,
  regionSize: 8,
  headerSize: 12,
  laneCount: 16,
  laneClaim: 20,
  submitEntries: 24,
  freeEntries: 28,
  slotSize: 32,
  slotCount: 36,
  poolOff: 40,
  destCount: 44,
  destOff: 48,
  policyOff: 52,
  eventOff: 56,
  countersOff: 60,
  streamCountersOff: 64,
  maxStreams: 68,
  outputCountersOff: 72,
  maxOutputs: 76,
  policyEntries: 80,
  eventEntries: 84,
  engineState: 88,
  laneCountersOff: 92,
  captureOff: 96,
  doorbell: 128,
  lanes: 384,
} as const;

/** The capture rings after the pool (since 2.1): one per engine thread, CAPTURE_STRIDE bytes apart. */
export const CAPTURE_RINGS = 2;
export const CAPTURE_DATA = 1 << 20;
export const CAPTURE_HDR = 3 * 64;
export const CAPTURE_STRIDE = CAPTURE_HDR + CAPTURE_DATA;
export const CAPTURE_SNAP = 2048;

/** struct rf_capture_ring (its header; CAPTURE_DATA bytes of records follow) */
export const CAPTURE_RING = { size: CAPTURE_HDR, producer: 0, captured: 8, dropped: 16, consumer: 64, armed: 68, size_: 128, dataOff: 132 } as const;

/** struct rf_capture_rec (then caplen frame bytes; records are 8-byte aligned) */
export const CAPTURE_REC = { size: 32, len: 0, caplen: 4, wireLen: 8, kind: 12, id: 16, tsNs: 24 } as const;

/** enum rf_capture_kind */
export const CAP_KIND = { pad: 0, ingress: 1, output: 2, session: 3 } as const;

/** enum rf_counter, names as rf_counter_names publishes them. */
export const COUNTER_NAMES = [
  'tx_packets',
  'tx_bytes',
  'tx_flushes',
  'tx_syscalls',
  'tx_ring_full',
  'rx_packets',
  'rx_bytes',
  'desc_consumed',
  'desc_seq_gap',
  'drop_bad_slot',
  'drop_bad_dest',
  'drop_bad_len',
  'drop_late',
  'drop_tx_error',
  'late_packets',
  'wakeups',
  'sleeps',
  'policy_applied',
  'policy_rejected',
  'relay_in',
  'relay_out',
  'drop_not_allowed',
  'drop_malformed',
  'drop_fragment',
  'drop_no_neighbour',
  'drop_tx_full',
  'rx_unmatched',
  'drop_rx_ring',
  'drop_bad_time',
  'tx_device_errors',
  'drop_rate_limit',
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];

/** Counter index by name (enum rf_counter). */
export const COUNTER: Readonly<Record<CounterName, number>> = Object.freeze(
  Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, i])) as Record<CounterName, number>,
);

/** The mirror in the form rf_region_fields publishes: "struct.field" -> byte position. */
export function mirrorFields(): Record<string, number> {
  const f: Record<string, number> = {
    'version.major': VERSION_MAJOR,
    'version.minor': VERSION_MINOR,
    magic: REGION_MAGIC,
    slot_headroom: SLOT_HEADROOM,
    max_lanes: MAX_LANES,
    max_threads: MAX_THREADS,
    counters_per_block: COUNTERS_PER_BLOCK,
    hist_base: HIST_BASE,
    hist_buckets: HIST_BUCKETS,
    lane_faults: LANE_FAULTS,
    lane_fault_limit: LANE_FAULT_LIMIT,
    tx_horizon_ms: TX_HORIZON_MS,
    capture_rings: CAPTURE_RINGS,
    capture_data: CAPTURE_DATA,
    capture_stride: CAPTURE_STRIDE,
    capture_snap: CAPTURE_SNAP,
  };
  const add = (struct: string, fields: Record<string, number>, withSize: boolean): void => {
    for (const [k, v] of Object.entries(fields)) {
      if (k === 'size') {
        if (withSize) f[`sizeof.${struct}`] = v;
      } else {
        f[`${struct}.${snake(k)}`] = v;
      }
    }
  };
  add('rf_ring', RING, true);
  add('rf_desc', DESC, true);
  add('rf_dest', DEST, true);
  add('rf_policy_msg', POLICY_MSG, true);
  add('rf_event', EVENT, true);
  add('rf_doorbell', DOORBELL, true);
  add('rf_lane', LANE, true);
  add('rf_stream_counters', STREAM_COUNTERS, true);
  add('rf_output_counters', OUTPUT_COUNTERS, true);
  add('rf_lane_counters', LANE_COUNTERS, true);
  add('rf_region_hdr', HDR, false);
  // `size` is both the struct's size and a field of rf_capture_ring: size_ names the field
  const { size_: ringSizeField, ...ring } = CAPTURE_RING;
  add('rf_capture_ring', ring, true);
  f['rf_capture_ring.size'] = ringSizeField;
  add('rf_capture_rec', CAPTURE_REC, true);
  return f;
}

function snake(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** struct rf_region_layout, computed by the same algorithm as rf_region_layout(). */
export interface Layout {
  size: number;
  headerSize: number;
  countersOff: number;
  lanesOff: number;
  laneStride: number;
  freeRel: number;
  policyOff: number;
  eventOff: number;
  destOff: number;
  streamCountersOff: number;
  outputCountersOff: number;
  laneCountersOff: number;
  poolOff: number;
  captureOff: number;
}

const roundUp = (v: number, a: number): number => Math.ceil(v / a) * a;
const ringBytes = (entries: number, entrySize: number): number => RING.size + entries * entrySize;

/**
 * rf_region_layout() without its range checks (the engine's message is the
 * one users see): every part starts on a page, in the order of region.h's map.
 * Sizes stay below 2^53, so plain numbers are exact.
 */
export function computeLayout(p: RegionParams): Layout {
  let off = PAGE;
  const headerSize = PAGE;
  const countersOff = off;
  off += roundUp(MAX_THREADS * COUNTERS_PER_BLOCK * 8, PAGE);
  const laneSubmit = roundUp(ringBytes(p.submitEntries, DESC.size), CACHELINE);
  const laneFree = roundUp(ringBytes(p.slotsPerLane, 4), CACHELINE);
  const lanesOff = off;
  const freeRel = laneSubmit;
  const laneStride = roundUp(laneSubmit + laneFree, PAGE);
  off += laneStride * p.lanes;
  const policyOff = off;
  off += roundUp(ringBytes(p.policyEntries, POLICY_MSG.size), PAGE);
  const eventOff = off;
  off += roundUp(ringBytes(p.eventEntries, EVENT.size), PAGE);
  const destOff = off;
  off += roundUp(p.lanes * p.destsPerLane * DEST.size, PAGE);
  const streamCountersOff = off;
  off += roundUp(p.maxStreams * STREAM_COUNTERS.size, PAGE);
  const outputCountersOff = off;
  off += roundUp(p.maxOutputs * OUTPUT_COUNTERS.size, PAGE);
  const laneCountersOff = off;
  off += roundUp((p.lanes + 1) * LANE_COUNTERS.size, PAGE);
  const poolOff = off;
  off += p.lanes * p.slotsPerLane * p.slotSize;
  off = roundUp(off, PAGE);
  const captureOff = off;
  off += roundUp(CAPTURE_RINGS * CAPTURE_STRIDE, PAGE);
  return {
    size: off,
    headerSize,
    countersOff,
    lanesOff,
    laneStride,
    freeRel,
    policyOff,
    eventOff,
    destOff,
    streamCountersOff,
    outputCountersOff,
    laneCountersOff,
    poolOff,
    captureOff,
  };
}

export const mirrorVersion = `${VERSION_MAJOR}.${VERSION_MINOR}`;

function versionOf(fields: Record<string, number>): string {
  return `${fields['version.major'] ?? '?'}.${fields['version.minor'] ?? '?'}`;
}

export function layoutMismatch(engineVersion: string, what: string): ReflectorError {
  return new ReflectorError(
    'ERR_LAYOUT_MISMATCH',
    `region layout mismatch: TypeScript mirror ${mirrorVersion} vs engine ${engineVersion}: ${what}`,
  );
}

/**
 * Compare the mirror with what the engine publishes, key by key: every
 * constant and field position, the layout the engine computes for `params`
 * and, when given, the header the engine wrote into `sab`. Throws
 * ERR_LAYOUT_MISMATCH naming both versions and the first difference.
 */
export function checkLayout(
  n: Pick<Native, 'regionFields' | 'counterNames'> & Partial<Pick<Native, 'regionLayout' | 'laneFaultNames'>>,
  params?: RegionParams,
  sab?: SharedArrayBuffer,
): void {
  const engine = n.regionFields();
  const mirror = mirrorFields();
  const ev = versionOf(engine);
  for (const key of Object.keys(mirror)) {
    if (!(key in engine)) throw layoutMismatch(ev, `${key} is ${mirror[key]} in TypeScript, missing in the engine`);
    if (engine[key] !== mirror[key]) {
      throw layoutMismatch(ev, `${key} is ${mirror[key]} in TypeScript, ${engine[key]} in the engine`);
    }
  }
  for (const key of Object.keys(engine)) {
    if (!(key in mirror)) throw layoutMismatch(ev, `${key} is ${engine[key]} in the engine, missing in TypeScript`);
  }
  const names = n.counterNames();
  for (let i = 0; i < Math.max(names.length, COUNTER_NAMES.length); i++) {
    if (names[i] !== COUNTER_NAMES[i]) {
      throw layoutMismatch(
        ev,
        `counter ${i} is ${COUNTER_NAMES[i] ?? 'missing'} in TypeScript, ${names[i] ?? 'missing'} in the engine`,
      );
    }
  }
  if (n.laneFaultNames) {
    const faults = n.laneFaultNames();
    for (let i = 0; i < Math.max(faults.length, LANE_FAULT_NAMES.length); i++) {
      if (faults[i] !== LANE_FAULT_NAMES[i]) {
        throw layoutMismatch(ev, `lane fault ${i} is ${LANE_FAULT_NAMES[i] ?? 'missing'} in TypeScript, ${faults[i] ?? 'missing'} in the engine`);
      }
    }
  }
  if (params === undefined) return;
  const mine = computeLayout(params);
  if (n.regionLayout) {
    const theirs = n.regionLayout(params);
    for (const k of Object.keys(mine) as (keyof Layout)[]) {
      if (mine[k] !== theirs[k]) {
        throw layoutMismatch(ev, `layout ${k} is ${mine[k]} in TypeScript, ${theirs[k]} in the engine`);
      }
    }
  }
  if (sab === undefined) return;
  // The header the engine wrote must agree with the layout computed here.
  const u32 = new Uint32Array(sab, 0, PAGE / 4);
  const expect: [string, number, number][] = [
    ['region_size', HDR.regionSize, mine.size],
    ['header_size', HDR.headerSize, mine.headerSize],
    ['counters_off', HDR.countersOff, mine.countersOff],
    ['policy_off', HDR.policyOff, mine.policyOff],
    ['event_off', HDR.eventOff, mine.eventOff],
    ['dest_off', HDR.destOff, mine.destOff],
    ['stream_counters_off', HDR.streamCountersOff, mine.streamCountersOff],
    ['output_counters_off', HDR.outputCountersOff, mine.outputCountersOff],
    ['lane_counters_off', HDR.laneCountersOff, mine.laneCountersOff],
    ['pool_off', HDR.poolOff, mine.poolOff],
    ['capture_off', HDR.captureOff, mine.captureOff],
    ['lane_count', HDR.laneCount, params.lanes],
    ['slot_size', HDR.slotSize, params.slotSize],
    ['slot_count', HDR.slotCount, params.lanes * params.slotsPerLane],
    ['submit_entries', HDR.submitEntries, params.submitEntries],
    ['free_entries', HDR.freeEntries, params.slotsPerLane],
  ];
  for (let i = 0; i < params.lanes; i++) {
    const base = HDR.lanes + i * LANE.size;
    const submit = mine.lanesOff + i * mine.laneStride;
    expect.push([`lanes[${i}].submit_off`, base + LANE.submitOff, submit]);
    expect.push([`lanes[${i}].free_off`, base + LANE.freeOff, submit + mine.freeRel]);
    expect.push([`lanes[${i}].slot_first`, base + LANE.slotFirst, i * params.slotsPerLane]);
    expect.push([`lanes[${i}].dest_first`, base + LANE.destFirst, i * params.destsPerLane]);
  }
  for (const [name, off, want] of expect) {
    const got = u32[off / 4];
    if (got !== want) throw layoutMismatch(ev, `header ${name} is ${want} in TypeScript, ${got} in the engine`);
  }
}

/** The brief's name for checkLayout(). */
export const checkAgainstNative = checkLayout;
