// SPDX-License-Identifier: MIT
// An aggregate: many packets for many users and streams, each with its
// transmission time, handed to the engine in ONE lane submission (the
// patent's "aggregate packet"). Usable in workers and on the main thread.
//
// Times are validated when a packet is added (before it takes a slot), so a
// rejected packet never leaks a pool slot; they are normalised to
// CLOCK_MONOTONIC ns against the base fixed when the aggregate was made.
//
// A submission that fails part-way (the ring stayed full past the timeout)
// keeps what the ring did accept and the rest: submit() again goes on where
// it stopped, abort() gives the slots of every packet not yet accepted back
// to the lane (its next packets reuse them). On the main thread use
// addAsync() and submitAsync(): the synchronous forms never wait there.
import { invalidArg } from '../errors';
import { formatNs, normalise, spreadRange, timeForm, toNs, type RangeTime, type TimeForm, type TxTime } from './time';
import { TX_HORIZON_MS } from '../region/layout';

/** One packet descriptor as the lane takes it (src/region/lane.ts PacketDesc). */
export interface AggregateDesc {
  slot: number;
  len: number;
  dest: number;
  stream: number;
  txTime: bigint;
}

/** What an aggregate needs of a lane (src/region/lane.ts Lane has all of it). */
export interface AggregateLane {
  allocSlot(timeoutMs?: number): number;
  payload(slot: number): Uint8Array;
  submit(descs: AggregateDesc[], timeoutMs?: number): void;
  /** The cursor verbs (Lane has them): one reservation, no descriptor objects. */
  readonly ringEntries?: number;
  begin?(n: number, timeoutMs?: number): void;
  put?(k: number, slot: number, len: number, dest: number, stream: number, txTimeNs: number): void;
  commit?(): void;
  /** The waits without blocking the thread (Lane has them): for the main thread. */
  allocSlotAsync?(timeoutMs?: number): Promise<number>;
  beginAsync?(n: number, timeoutMs?: number): Promise<void>;
  submitAsync?(descs: AggregateDesc[], timeoutMs?: number): Promise<void>;
}

export interface AggregateOptions {
  /** Base time (CLOCK_MONOTONIC ns) of forms (a), (b) and (c); default: now, when the aggregate is made. */
  base?: bigint;
  /** Interval of form (a) sequence numbers, when the times do not carry their own. */
  intervalNs?: number | bigint;
  /** Form (c): one relative range for the whole aggregate; packets are then added without a time. */
  range?: RangeTime;
  /** A time further in the past than this is rejected (the engine would drop it as late). Default 50 ms. */
  lateLimitMs?: number;
  /** A time further in the future than this is rejected. Default 10 s. */
  horizonMs?: number;
  /** Clock, for tests; default process.hrtime.bigint (CLOCK_MONOTONIC on Linux). */
  now?: () => bigint;
}

export const DEFAULT_LATE_LIMIT_MS = 50;
export const DEFAULT_HORIZON_MS = 10_000;
const MAX_LEN = 0xffff; // rf_desc.len is uint16

export class Aggregate {
  readonly base: bigint;
  private readonly lane: AggregateLane;
  private readonly intervalNs: bigint | undefined;
  private readonly range: RangeTime | undefined;
  private readonly lateLimitNs: bigint;
  private readonly horizonNs: bigint;
  private readonly now: () => bigint;
  private readonly lateLimitNum: number;
  private readonly horizonNum: number;
  /** now, read when the aggregate was made (addAt re-reads it only for a time that looks out of bounds) */
  private nowNs: number;
  private form: TimeForm | undefined;
  /** every packet is in the ring (or the aggregate was aborted): nothing more to add or submit */
  private submitted = false;
  private aborted = false;
  /** packets [0, committed) are in the ring: a failed submit goes on from here */
  private committed = 0;
  // packets in columns: no object per packet on the worker's path
  private n = 0;
  private slots = new Uint32Array(64);
  private lens = new Uint32Array(64);
  private dests = new Uint32Array(64);
  private streams = new Uint32Array(64);
  private times = new Float64Array(64); // CLOCK_MONOTONIC ns, exact below 2^53 (104 days of uptime)

  constructor(lane: AggregateLane, opts: AggregateOptions = {}) {
    this.lane = lane;
    this.now = opts.now ?? process.hrtime.bigint;
    const lateMs = opts.lateLimitMs ?? DEFAULT_LATE_LIMIT_MS;
    const horizonMs = opts.horizonMs ?? DEFAULT_HORIZON_MS;
    if (typeof lateMs !== 'number' || !(lateMs >= 0)) throw invalidArg(`lateLimitMs: ${String(lateMs)} is not a number >= 0`);
    if (typeof horizonMs !== 'number' || !(horizonMs > 0 && horizonMs <= TX_HORIZON_MS)) {
      // the engine drops (drop_bad_time) what is further ahead than its horizon
      throw invalidArg(`horizonMs: ${String(horizonMs)} is not a number in (0, ${TX_HORIZON_MS}] (the engine's horizon, ms)`);
    }
    this.lateLimitNs = toNs(lateMs, 'ms', 'lateLimitMs');
    this.horizonNs = toNs(horizonMs, 'ms', 'horizonMs');
    this.lateLimitNum = Number(this.lateLimitNs);
    this.horizonNum = Number(this.horizonNs);
    if (opts.base !== undefined && typeof opts.base !== 'bigint') {
      throw invalidArg(`base: expected a bigint of CLOCK_MONOTONIC ns, got ${typeof opts.base}`);
    }
    const nowAtStart = this.now();
    this.nowNs = Number(nowAtStart);
    this.base = opts.base ?? nowAtStart;
    this.intervalNs = opts.intervalNs !== undefined ? toNs(opts.intervalNs, 'ns', 'intervalNs') : undefined;
    if (this.intervalNs !== undefined && this.intervalNs < 0n) throw invalidArg(`intervalNs: ${this.intervalNs} is negative`);
    if (opts.range !== undefined) {
      this.range = opts.range;
      this.form = 'range';
      // the range's ends bound every packet's time: check them once, here
      const [first] = spreadRange(opts.range, this.base, 1, 'range');
      const last = this.base + toNs(opts.range.last, opts.range.unit, 'range.last');
      this.check(first, 'range.first');
      this.check(last, 'range.last');
    }
  }

  /** Packets added so far. */
  get length(): number {
    return this.n;
  }

  /** Copy `data` into a fresh pool slot and add it. `time` is omitted in a range (form c) aggregate. */
  add(data: Uint8Array, dest: number, stream: number, time?: TxTime, slotTimeoutMs?: number): this {
    this.checkIds(dest, stream);
    const txTime = this.timeOf(time); // before the slot: a rejected packet takes none
    return this.fill(takeSlot(this.lane, slotTimeoutMs), data, dest, stream, txTime);
  }

  /** add() that waits for a free slot without blocking the thread: for the main thread. */
  async addAsync(data: Uint8Array, dest: number, stream: number, time?: TxTime, slotTimeoutMs?: number): Promise<this> {
    this.checkIds(dest, stream);
    const txTime = this.timeOf(time);
    const slot = await takeSlotAsync(this.lane, slotTimeoutMs);
    // another add may have submitted or aborted the aggregate meanwhile
    if (this.submitted) {
      spareSlots(this.lane).push(slot);
      throw invalidArg(`aggregate packet ${this.n}: the aggregate was ${this.aborted ? 'aborted' : 'already submitted'}`);
    }
    return this.fill(slot, data, dest, stream, txTime);
  }

  private fill(slot: number, data: Uint8Array, dest: number, stream: number, txTime: bigint): this {
    const payload = this.lane.payload(slot);
    if (data.length > payload.length || data.length > MAX_LEN) {
      spareSlots(this.lane).push(slot); // kept for the next packet, not leaked
      throw invalidArg(
        `aggregate packet ${this.n}: ${data.length} bytes exceed the slot payload of ${Math.min(MAX_LEN, payload.length)} bytes`,
      );
    }
    payload.set(data);
    this.push(slot, data.length, dest, stream, Number(txTime));
    return this;
  }

  /**
   * Add a packet already written into `slot` (the zero-copy path: write into
   * lane.payload(slot) first). When this throws, the slot is still the
   * caller's: reuse it for the next packet.
   */
  addSlot(slot: number, len: number, dest: number, stream: number, time?: TxTime): this {
    const cap = Math.min(MAX_LEN, this.lane.payload(slot).length);
    if (!Number.isInteger(len) || len < 0 || len > cap) {
      throw invalidArg(`aggregate packet ${this.n}: len ${len} is outside 0..${cap}`);
    }
    this.checkIds(dest, stream);
    const txTime = this.timeOf(time);
    this.push(slot, len, dest, stream, Number(txTime));
    return this;
  }

  /**
   * The worker's path: a packet already in `slot`, at an absolute
   * CLOCK_MONOTONIC time in ns given as a number (no BigInt per packet).
   * Checked like the other forms; the aggregate's form is 'absolute'.
   */
  addAt(slot: number, len: number, dest: number, stream: number, atNs: number): this {
    if (this.form !== 'absolute' || this.submitted || this.committed > 0) {
      if (this.form !== undefined || this.submitted || this.committed > 0) this.timeOf({ at: BigInt(Math.round(atNs)) }); // throws the exact message
      this.form = 'absolute';
    }
    if (atNs < this.nowNs - this.lateLimitNum || atNs > this.nowNs + this.horizonNum) {
      this.nowNs = Number(this.now());
      this.check(BigInt(Math.round(atNs)), `aggregate packet ${this.n}`);
    }
    this.push(slot, len, dest, stream, atNs);
    return this;
  }

  /** A slot for addSlot(): one a rejected packet left behind, else a fresh one from the lane. */
  allocSlot(timeoutMs?: number): number {
    return takeSlot(this.lane, timeoutMs);
  }

  /** The descriptors, times normalised, in the order added (form c spread here). */
  descriptors(): AggregateDesc[] {
    this.spread();
    const out: AggregateDesc[] = [];
    for (let i = 0; i < this.n; i++) {
      out.push({ slot: this.slots[i], len: this.lens[i], dest: this.dests[i], stream: this.streams[i], txTime: BigInt(this.times[i]) });
    }
    return out;
  }

  /**
   * Hand every packet to the engine in ONE lane submission (one reservation,
   * one release store; the last descriptor carries RF_DESC_F_AGG_END). An
   * aggregate larger than the lane's ring goes as ring-sized submissions.
   * An aggregate is submitted once. When the ring stays full past timeoutMs
   * part-way, this throws ERR_RING_TIMEOUT with the accepted part in the
   * ring (`committed`): submit() again to go on, or abort() to give the
   * rest of the slots back.
   */
  submit(timeoutMs?: number): number {
    this.checkSubmit();
    const n = this.n;
    if (n === 0) return this.done();
    this.spread();
    const lane = this.lane;
    if (lane.begin && lane.put && lane.commit && lane.ringEntries) {
      while (this.committed < n) {
        const m = Math.min(n - this.committed, lane.ringEntries);
        lane.begin(m, timeoutMs);
        this.putChunk(m);
      }
    } else {
      lane.submit(this.descriptors().slice(this.committed), timeoutMs);
      this.committed = n;
    }
    return this.done();
  }

  /** submit() without blocking the thread while the ring is full: for the main thread. */
  async submitAsync(timeoutMs?: number): Promise<number> {
    this.checkSubmit();
    const n = this.n;
    if (n === 0) return this.done();
    this.spread();
    const lane = this.lane;
    if (lane.beginAsync && lane.put && lane.commit && lane.ringEntries) {
      while (this.committed < n) {
        const m = Math.min(n - this.committed, lane.ringEntries);
        await lane.beginAsync(m, timeoutMs);
        this.putChunk(m);
      }
    } else if (lane.submitAsync) {
      await lane.submitAsync(this.descriptors().slice(this.committed), timeoutMs);
      this.committed = n;
    } else {
      return this.submit(timeoutMs);
    }
    return this.done();
  }

  /** Packets the ring has accepted so far. */
  get accepted(): number {
    return this.committed;
  }

  /**
   * Give up the packets the ring has not accepted: their slots go back to
   * the lane (its next packets reuse them). Returns how many. What the ring
   * accepted still leaves at its time. The aggregate takes nothing after.
   */
  abort(): number {
    if (this.aborted) return 0;
    const spare = spareSlots(this.lane);
    const left = this.n - this.committed;
    for (let i = this.committed; i < this.n; i++) spare.push(this.slots[i]);
    this.aborted = true;
    this.submitted = true;
    return left;
  }

  /** Call fn(stream, len) for every packet the ring has not accepted (before abort(), to fix counts). */
  forEachPending(fn: (stream: number, len: number) => void): void {
    if (this.aborted) return;
    for (let i = this.committed; i < this.n; i++) fn(this.streams[i], this.lens[i]);
  }

  private putChunk(m: number): void {
    const lane = this.lane as Required<Pick<AggregateLane, 'put' | 'commit'>>;
    for (let k = 0; k < m; k++) {
      const i = this.committed + k;
      lane.put(k, this.slots[i], this.lens[i], this.dests[i], this.streams[i], this.times[i]);
    }
    lane.commit();
    this.committed += m;
  }

  private checkSubmit(): void {
    if (this.aborted) throw invalidArg('aggregate: aborted; make a new Aggregate for the next one');
    if (this.submitted) throw invalidArg('aggregate: already submitted; make a new Aggregate for the next one');
  }

  private done(): number {
    this.submitted = true;
    return this.n;
  }

  private spread(): void {
    if (this.form !== 'range' || this.range === undefined) return;
    const times = spreadRange(this.range, this.base, this.n, 'range');
    for (let i = 0; i < times.length; i++) this.times[i] = Number(times[i]);
  }

  private push(slot: number, len: number, dest: number, stream: number, t: number): void {
    if (this.n === this.slots.length) {
      const grow = <T extends Uint32Array | Float64Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.slots = grow(this.slots);
      this.lens = grow(this.lens);
      this.dests = grow(this.dests);
      this.streams = grow(this.streams);
      this.times = grow(this.times);
    }
    const i = this.n++;
    this.slots[i] = slot;
    this.lens[i] = len;
    this.dests[i] = dest;
    this.streams[i] = stream;
    this.times[i] = t;
  }

  private timeOf(time: TxTime | undefined): bigint {
    const what = `aggregate packet ${this.n}`;
    if (this.aborted) throw invalidArg(`${what}: the aggregate was aborted`);
    if (this.submitted || this.committed > 0) throw invalidArg(`${what}: the aggregate was already submitted`);
    if (this.form === 'range') {
      if (time !== undefined) {
        throw invalidArg(`${what}: has its own time but the aggregate has a range (form c); mixed forms in one aggregate are not accepted`);
      }
      return 0n; // spread at submit
    }
    if (time === undefined) {
      throw invalidArg(`${what}: no time: give {seq}, {offset, unit} or {at}, or build the aggregate with a range`);
    }
    const form = timeForm(time, what);
    if (this.form === undefined) this.form = form;
    else if (this.form !== form) {
      throw invalidArg(`${what}: time form "${form}" differs from the aggregate's form "${this.form}"; mixed forms in one aggregate are not accepted`);
    }
    const t = normalise(time, this.base, this.intervalNs, what);
    this.check(t, what);
    return t;
  }

  private check(t: bigint, what: string): void {
    const now = this.now();
    if (t < now - this.lateLimitNs) {
      throw invalidArg(
        `${what}: transmission time is ${formatNs(now - t)} in the past, beyond the lateness limit of ${formatNs(this.lateLimitNs)} (lateLimitMs)`,
      );
    }
    if (t > now + this.horizonNs) {
      throw invalidArg(
        `${what}: transmission time is ${formatNs(t - now)} in the future, beyond the horizon of ${formatNs(this.horizonNs)} (horizonMs)`,
      );
    }
  }

  private checkIds(dest: number, stream: number): void {
    if (!Number.isInteger(dest) || dest < 0) throw invalidArg(`aggregate packet ${this.n}: dest ${dest} is not an index >= 0`);
    if (!Number.isInteger(stream) || stream < 0) throw invalidArg(`aggregate packet ${this.n}: stream ${stream} is not an id >= 0`);
  }
}

// Slots taken from a lane but not submitted (a packet rejected after its slot
// was allocated) wait here for the lane's next packet instead of leaking.
const spares = new WeakMap<AggregateLane, number[]>();

function spareSlots(lane: AggregateLane): number[] {
  let list = spares.get(lane);
  if (list === undefined) spares.set(lane, (list = []));
  return list;
}

/** A spare slot of this lane if there is one, else a fresh one (may wait, see Lane.allocSlot). */
export function takeSlot(lane: AggregateLane, timeoutMs?: number): number {
  const list = spares.get(lane);
  if (list !== undefined && list.length > 0) return list.pop() as number;
  return lane.allocSlot(timeoutMs);
}

/** takeSlot() that waits without blocking the thread (the lane's allocSlotAsync, when it has one). */
export async function takeSlotAsync(lane: AggregateLane, timeoutMs?: number): Promise<number> {
  const list = spares.get(lane);
  if (list !== undefined && list.length > 0) return list.pop() as number;
  return lane.allocSlotAsync ? lane.allocSlotAsync(timeoutMs) : lane.allocSlot(timeoutMs);
}

/** Slots given back to this lane and not taken again (a census counts them as held). */
export function spareCount(lane: AggregateLane): number {
  return spares.get(lane)?.length ?? 0;
}

/** Give back a slot that was taken but will not be submitted; the lane's next packet reuses it. */
export function returnSlot(lane: AggregateLane, slot: number): void {
  spareSlots(lane).push(slot);
}
