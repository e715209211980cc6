// SPDX-License-Identifier: MIT
// The shared region from TypeScript: created on the main thread (allocated
// and initialised by the engine's own rf_region_init, then checked against
// the mirror in layout.ts), attached in workers from the SharedArrayBuffer.
import { isMainThread } from 'node:worker_threads';
import { ReflectorError, invalidArg } from '../errors';
import { native } from '../native';
import {
  COUNTER,
  COUNTERS_PER_BLOCK,
  COUNTER_NAMES,
  HDR,
  HIST_BASE,
  HIST_BUCKETS,
  LANE,
  LANE_COUNTERS,
  LANE_FAULT_NAMES,
  LANE_QUARANTINED,
  OUTPUT_COUNTERS,
  PAGE,
  REGION_MAGIC,
  RING,
  STATE_RUNNING,
  STREAM_COUNTERS,
  VERSION_MAJOR,
  checkLayout,
  layoutMismatch,
  type CounterName,
  type LaneFaultName,
} from './layout';
import { Lane, type LaneRegion } from './lane';
import { resolveRegionParams, type RegionParams } from './params';
import { RingConsumer, RingProducer } from './ring';

export type { RegionParams } from './params';

/** struct rf_lane_counters, as Region.laneCounters() reads it. */
export interface LaneCounters {
  taken: bigint;
  sent: bigint;
  dropped: bigint;
  quarantined: boolean;
  faults: Record<LaneFaultName, bigint>;
}
export { DEFAULT_REGION_PARAMS } from './params';

/** How long fromShared() waits for the creator to publish the version field. */
const VERSION_WAIT_MS = 1000;

/** The engine's tc program's counters (src/engine/engine.ts wires the addon in). */
export interface KernelCounterSource {
  /** by engine counter index, KERNEL_REASONS of them, summed over CPUs */
  reasons(): BigUint64Array;
  /** packets, bytes, drops, limited of an output counter slot */
  output(slot: number): BigUint64Array;
}
/** engine/bpf/relay_abi.h RF_KT_REASONS */
export const KERNEL_REASONS = 64;
/** one scrape reads the program's counters once, not once per counter name */
const KERNEL_CACHE_MS = 20;

export class Region implements LaneRegion {
  readonly sab: SharedArrayBuffer;
  readonly u32: Uint32Array;
  readonly laneCount: number;
  readonly slotSize: number;
  readonly slotCount: number;
  readonly poolOff: number;
  readonly destOff: number;
  readonly destCount: number;
  readonly maxStreams: number;
  readonly maxOutputs: number;
  private readonly laneCountersOff: number;
  private readonly u64: BigUint64Array;
  private kernel: KernelCounterSource | null = null;
  private kernelCache: { at: number; reasons: BigUint64Array } | null = null;
  private readonly kernelBase = new Array<bigint>(KERNEL_REASONS).fill(0n);
  private readonly kernelOutBase = new Map<number, bigint[]>();
  private readonly kernelSlots = new Set<number>();
  private readonly lanes = new Map<number, Lane>();
  private policy?: RingProducer;
  private events?: RingConsumer;

  private constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.u32 = new Uint32Array(sab);
    this.u64 = new BigUint64Array(sab);
    const h = (o: number): number => this.u32[o >> 2];
    this.laneCount = h(HDR.laneCount);
    this.slotSize = h(HDR.slotSize);
    this.slotCount = h(HDR.slotCount);
    this.poolOff = h(HDR.poolOff);
    this.destOff = h(HDR.destOff);
    this.destCount = h(HDR.destCount);
    this.maxStreams = h(HDR.maxStreams);
    this.maxOutputs = h(HDR.maxOutputs);
    this.laneCountersOff = h(HDR.laneCountersOff);
  }

  /**
   * Allocate and initialise a region (main thread). Parameters not given
   * take DEFAULT_REGION_PARAMS; out-of-range ones are refused with the
   * engine's message (ERR_INVALID_ARG naming the key and its range). The
   * mirror is checked against the engine before anything is used.
   */
  static create(p: Partial<RegionParams> = {}): Region {
    const params = resolveRegionParams(p);
    const n = native();
    let size: number;
    try {
      size = n.regionLayout(params).size;
    } catch (e) {
      throw invalidArg((e as Error).message);
    }
    // constants, field positions and the layout for these params
    checkLayout(n, params);
    const sab = n.regionAlloc(size);
    try {
      n.regionInit(sab, params);
    } catch (e) {
      throw invalidArg((e as Error).message);
    }
    // and the header the engine actually wrote
    checkLayout(n, params, sab);
    return new Region(sab);
  }

  /**
   * Attach to a region created elsewhere (a worker gets the SAB through
   * workerData). Waits for the version field, which the creator writes last,
   * then refuses a bad magic or another major version, and checks this
   * thread's mirror against the engine.
   */
  static fromShared(sab: SharedArrayBuffer): Region {
    if (!(sab instanceof SharedArrayBuffer)) throw invalidArg('region: expected a SharedArrayBuffer');
    if (sab.byteLength < PAGE) throw invalidArg(`region: ${sab.byteLength} bytes is smaller than its header`);
    const i32 = new Int32Array(sab, 0, PAGE / 4);
    const deadline = Date.now() + VERSION_WAIT_MS;
    // pairs with rf_region_init()'s release store of `version`: every header
    // byte is visible once it is non-zero
    let version = Atomics.load(i32, HDR.version >> 2);
    while (version === 0) {
      // the main thread never waits (its event loop must run): it checks once
      if (isMainThread || Date.now() >= deadline) {
        throw new ReflectorError('ERR_LAYOUT_MISMATCH', `region: version field still 0 after ${VERSION_WAIT_MS} ms (region not initialised)`);
      }
      Atomics.wait(i32, HDR.version >> 2, 0, 5);
      version = Atomics.load(i32, HDR.version >> 2);
    }
    const magic = i32[HDR.magic >> 2] >>> 0;
    if (magic !== REGION_MAGIC) {
      throw new ReflectorError(
        'ERR_LAYOUT_MISMATCH',
        `region: bad magic 0x${magic.toString(16).padStart(8, '0')} (expected 0x${REGION_MAGIC.toString(16)})`,
      );
    }
    const major = version >>> 16;
    const minor = version & 0xffff;
    if (major !== VERSION_MAJOR) {
      throw layoutMismatch(`${major}.${minor}`, `the region was written by major version ${major}, the mirror reads major version ${VERSION_MAJOR}`);
    }
    checkLayout(native());
    return new Region(sab);
  }

  /** Lane `index` (0 = the main thread's); one Lane object per index per thread. */
  lane(index: number): Lane {
    let l = this.lanes.get(index);
    if (l === undefined) {
      l = new Lane(this, index);
      this.lanes.set(index, l);
    }
    return l;
  }

  /** Claim the next worker lane (1..lanes-1) for this thread; throws when none is left. */
  claimWorkerLane(): Lane {
    const index = Atomics.add(this.u32, HDR.laneClaim >> 2, 1);
    if (index >= this.laneCount) {
      throw invalidArg(
        `region: no worker lane left (${this.laneCount} lanes, lane 0 is the main thread's, ${this.laneCount - 1} claimed); raise region.lanes`,
      );
    }
    return this.lane(index);
  }

  /** The policy ring (main thread -> engine, rf_policy_msg of 256 bytes). One producer: the main thread. */
  policyProducer(): RingProducer {
    this.policy ??= new RingProducer(this.sab, this.u32[HDR.policyOff >> 2], this.u32);
    return this.policy;
  }

  /** The event ring (engine -> main thread, rf_event of 32 bytes). One consumer: the main thread. */
  eventConsumer(): RingConsumer {
    this.events ??= new RingConsumer(this.sab, this.u32[HDR.eventOff >> 2], this.u32);
    return this.events;
  }

  /** Engine thread `thread`'s counter `name` (rf_counter_names). */
  counter(thread: 0 | 1, name: string): bigint {
    const i = (COUNTER as Record<string, number>)[name];
    if (i === undefined) throw invalidArg(`counter: "${name}" is not a counter (accepted: ${COUNTER_NAMES.join(', ')})`);
    return this.counterAt(thread, i);
  }

  /** The kernel tier's part of RX counter `name` (already in counter(1, name)): what the tc program counted. */
  kernelCounter(name: string): bigint {
    const i = (COUNTER as Record<string, number>)[name];
    if (i === undefined) throw invalidArg(`counter: "${name}" is not a counter (accepted: ${COUNTER_NAMES.join(', ')})`);
    if (i >= KERNEL_REASONS) return 0n;
    return this.kernelBase[i] + (this.kernel ? this.kernelReasons()[i] : 0n);
  }

  /** Every counter of engine thread `thread`, by name. */
  counters(thread: 0 | 1): Record<CounterName, bigint> {
    const out = {} as Record<CounterName, bigint>;
    for (const name of COUNTER_NAMES) out[name] = this.counterAt(thread, COUNTER[name]);
    return out;
  }

  /**
   * The kernel tier's counters (the engine's tc program, per-CPU maps summed
   * by the addon) join the RX thread's and the output counters at every
   * read. null detaches it; what it counted so far stays in the totals.
   */
  setKernelSource(src: KernelCounterSource | null): void {
    if (this.kernel) {
      // fold the final counts in: totals only go up
      const r = this.kernelReasons();
      for (let i = 0; i < r.length; i++) this.kernelBase[i] += r[i];
      for (const slot of this.kernelSlots) {
        const o = this.kernel.output(slot);
        const b = this.kernelOutBase.get(slot) ?? [0n, 0n, 0n, 0n];
        for (let i = 0; i < 4; i++) b[i] += o[i];
        this.kernelOutBase.set(slot, b);
      }
    }
    this.kernel = src;
    this.kernelCache = null;
  }

  private kernelReasons(): BigUint64Array {
    const now = Date.now();
    if (!this.kernelCache || now - this.kernelCache.at > KERNEL_CACHE_MS) {
      this.kernelCache = { at: now, reasons: this.kernel ? this.kernel.reasons() : new BigUint64Array(KERNEL_REASONS) };
    }
    return this.kernelCache.reasons;
  }

  /** The kernel tier's part of output slot `output` (zeroed with it when the slot is reused). */
  private kernelOutput(output: number): bigint[] {
    const base = this.kernelOutBase.get(output) ?? [0n, 0n, 0n, 0n];
    if (!this.kernel) return base;
    this.kernelSlots.add(output);
    const o = this.kernel.output(output);
    return [base[0] + o[0], base[1] + o[1], base[2] + o[2], base[3] + o[3]];
  }

  /** An output slot given to a new relay or output: the kernel part restarts with the region's (zeroed by the engine). */
  resetKernelOutput(output: number): void {
    this.kernelOutBase.delete(output);
  }

  private counterAt(thread: number, index: number): bigint {
    if (thread !== 0 && thread !== 1) throw invalidArg(`counter: thread ${String(thread)} is not 0 (TX) or 1 (RX)`);
    const base = this.u32[HDR.countersOff >> 2] / 8;
    // single-writer 64-bit counters: an aligned load is never torn (barrier.h rf_counter_add)
    const v = Atomics.load(this.u64, base + thread * COUNTERS_PER_BLOCK + index);
    if (thread !== 1 || index >= KERNEL_REASONS) return v;
    return v + this.kernelBase[index] + (this.kernel ? this.kernelReasons()[index] : 0n);
  }

  /** Lateness histogram of engine thread `thread`: bucket i counts packets at most 1us * 2^i late, the last is +Inf. */
  histogram(thread: 0 | 1): bigint[] {
    const out: bigint[] = [];
    for (let i = 0; i < HIST_BUCKETS; i++) out.push(this.counterAt(thread, HIST_BASE + i));
    return out;
  }

  streamCounters(stream: number): { packets: bigint; bytes: bigint; late: bigint; dropped: bigint } {
    if (!Number.isInteger(stream) || stream < 0 || stream >= this.maxStreams) {
      throw invalidArg(`stream: ${String(stream)} is not in 0..${this.maxStreams - 1} (region.maxStreams)`);
    }
    const b = (this.u32[HDR.streamCountersOff >> 2] + stream * STREAM_COUNTERS.size) / 8;
    return {
      packets: Atomics.load(this.u64, b + STREAM_COUNTERS.packets / 8),
      bytes: Atomics.load(this.u64, b + STREAM_COUNTERS.bytes / 8),
      late: Atomics.load(this.u64, b + STREAM_COUNTERS.late / 8),
      dropped: Atomics.load(this.u64, b + STREAM_COUNTERS.dropped / 8),
    };
  }

  outputCounters(output: number): { packets: bigint; bytes: bigint; drops: bigint; limited: bigint } {
    if (!Number.isInteger(output) || output < 0 || output >= this.maxOutputs) {
      throw invalidArg(`output: ${String(output)} is not in 0..${this.maxOutputs - 1} (region.maxOutputs)`);
    }
    const b = (this.u32[HDR.outputCountersOff >> 2] + output * OUTPUT_COUNTERS.size) / 8;
    const k = this.kernelOutput(output);
    return {
      packets: Atomics.load(this.u64, b + OUTPUT_COUNTERS.packets / 8) + k[0],
      bytes: Atomics.load(this.u64, b + OUTPUT_COUNTERS.bytes / 8) + k[1],
      drops: Atomics.load(this.u64, b + OUTPUT_COUNTERS.drops / 8) + k[2],
      limited: Atomics.load(this.u64, b + OUTPUT_COUNTERS.limited / 8) + k[3],
    };
  }

  /**
   * Lane `lane`'s accounting and faults (rf_lane_counters, written by the
   * engine): lane laneCount is the control channel (policy and event rings).
   * For a lane, taken = sent + dropped once its last packet left.
   */
  laneCounters(lane: number): LaneCounters {
    if (!Number.isInteger(lane) || lane < 0 || lane > this.laneCount) {
      throw invalidArg(`lane: ${String(lane)} is not in 0..${this.laneCount} (${this.laneCount}: the control channel)`);
    }
    const b = (this.laneCountersOff + lane * LANE_COUNTERS.size) / 8;
    const faults = {} as Record<LaneFaultName, bigint>;
    LANE_FAULT_NAMES.forEach((name, i) => {
      faults[name] = Atomics.load(this.u64, b + LANE_COUNTERS.faults / 8 + i);
    });
    const w = (this.laneCountersOff + lane * LANE_COUNTERS.size) / 4;
    return {
      taken: Atomics.load(this.u64, b + LANE_COUNTERS.taken / 8),
      sent: Atomics.load(this.u64, b + LANE_COUNTERS.sent / 8),
      dropped: Atomics.load(this.u64, b + LANE_COUNTERS.dropped / 8),
      quarantined: Atomics.load(this.u32, w + LANE_COUNTERS.state / 4) === LANE_QUARANTINED,
      faults,
    };
  }

  /** Every lane's faults and state, for metrics: lane "0".."n-1", and "control". */
  laneSamples(): { lane: string; quarantined: boolean; faults: Record<string, bigint> }[] {
    const out = [];
    for (let i = 0; i <= this.laneCount; i++) {
      const c = this.laneCounters(i);
      out.push({ lane: i === this.laneCount ? 'control' : String(i), quarantined: c.quarantined, faults: c.faults });
    }
    return out;
  }

  /**
   * Occupancy of every ring, read at scrape time without touching any
   * cursor: entries published and not yet released ("lane1.submit": queued
   * descriptors, "lane1.free": free slots, "policy", "event").
   */
  ringSamples(): { ring: string; used: number; size: number }[] {
    const out: { ring: string; used: number; size: number }[] = [];
    const sample = (ring: string, off: number): void => {
      const used = (Atomics.load(this.u32, (off + RING.producer) >> 2) - Atomics.load(this.u32, (off + RING.consumer) >> 2)) >>> 0;
      out.push({ ring, used, size: this.u32[(off + RING.entries) >> 2] });
    };
    for (let i = 0; i < this.laneCount; i++) {
      const base = (HDR.lanes + i * LANE.size) >> 2;
      sample(`lane${i}.submit`, this.u32[base + (LANE.submitOff >> 2)]);
      sample(`lane${i}.free`, this.u32[base + (LANE.freeOff >> 2)]);
    }
    sample('policy', this.u32[HDR.policyOff >> 2]);
    sample('event', this.u32[HDR.eventOff >> 2]);
    return out;
  }

  /** Pool slots in use (taken by lanes or in flight in the engine) out of all slots. */
  poolUsage(): { used: number; size: number } {
    let free = 0;
    for (const s of this.ringSamples()) if (s.ring.endsWith('.free')) free += s.used;
    return { used: this.slotCount - free, size: this.slotCount };
  }

  /** True while the engine's threads run (rf_region_hdr.engine_state). */
  get engineRunning(): boolean {
    return Atomics.load(this.u32, HDR.engineState >> 2) === STATE_RUNNING;
  }
}
