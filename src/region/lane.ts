// SPDX-License-Identifier: MIT
// A lane: one producer's slice of the region (region.h rf_lane). It owns
// a slice of the pool (slots), a slice of the destination table, the submit
// ring it produces (descriptors, lane -> engine) and the free ring it
// consumes (slots whose packets have left, engine -> lane).
//
// Two ways to submit:
// - submit(descs): one aggregate from PacketDesc objects; validated first,
//   then ONE reservation and ONE submit (one release store) for the whole
//   batch, so the engine sees the aggregate at once.
// - the cursor (begin / put / commit): the same without objects, for
//   workers that write millions of descriptors a second.
//
// seq: the engine counts descriptors whose seq is not the lane's next
// (desc_seq_gap). A descriptor's seq is its submit ring index, which is
// exactly "descriptors this lane has submitted before it" and survives a
// Lane object being rebuilt (a worker restart) without resynchronising.
import { isIPv4, isIPv6 } from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { ReflectorError, invalidArg } from '../errors';
import { addressBytes } from '../net/address';
import { native } from '../native';
import { DESC, DESC_F_AGG_END, DEST, DEST_F_VALID, DOORBELL, HDR, LANE, SLOT_HEADROOM, THREAD_TX } from './layout';
import { RingConsumer, RingProducer } from './ring';

/** Where a packet goes (struct rf_dest). MACs "aa:bb:cc:dd:ee:ff". */
export interface Destination {
  family: 4 | 6;
  srcAddr: string;
  dstAddr: string;
  srcPort: number;
  dstPort: number;
  srcMac: string;
  dstMac: string;
  ttl?: number; // 1..255, default 64
  dscp?: number; // 0..63
}

/** One packet of an aggregate (struct rf_desc). */
export interface PacketDesc {
  slot: number;
  len: number;
  dest: number;
  stream: number;
  txTime: bigint; // CLOCK_MONOTONIC ns, 0n = now
}

/** Default wait for a free slot or ring space before ERR_RING_TIMEOUT. */
export const DEFAULT_TIMEOUT_MS = 5000;

/**
 * The main thread never waits on a futex: its event loop serves the control
 * API, the metrics and every timer. A synchronous call there that would have
 * to wait fails at once with ERR_WOULD_BLOCK; the *Async forms wait with a
 * timer backoff instead.
 */
function wouldBlock(what: string, verb: string): ReflectorError {
  return new ReflectorError('ERR_WOULD_BLOCK', `${what}, and ${verb}() does not wait on the main thread (use ${verb}Async())`);
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** What a Lane needs of its region (Region provides it). */
export interface LaneRegion {
  readonly sab: SharedArrayBuffer;
  readonly u32: Uint32Array;
  readonly slotSize: number;
  readonly poolOff: number;
  readonly destOff: number;
}

export class Lane {
  readonly index: number;
  readonly slotFirst: number;
  readonly slotCount: number;
  readonly destFirst: number;
  readonly destCount: number;
  /** Bytes a slot's payload may hold (slotSize - RF_SLOT_HEADROOM). */
  readonly payloadSize: number;
  /** Descriptors the submit ring holds: the largest single submission. */
  readonly ringEntries: number;
  /** The whole region as bytes, for writing payloads without a view per packet (see payloadOffset). */
  readonly bytes: Uint8Array;
  /**
   * Free slots a waiting allocSlot()/allocSlots() asks the engine for before
   * it is woken (a quarter of the lane's slots): a producer faster than the
   * engine then sleeps once per quarter of its slots instead of once per
   * engine flush. The engine wakes it sooner when none of its slots is left
   * in flight.
   */
  readonly lowWater: number;

  private readonly sab: SharedArrayBuffer;
  private readonly u32: Uint32Array;
  private readonly u16: Uint16Array;
  private readonly u64: BigUint64Array;
  private readonly submitRing: RingProducer;
  private readonly freeRing: RingConsumer;
  private readonly slotSize: number;
  private readonly poolOff: number;
  private readonly destOff: number;
  private readonly iTxSleeping: number;
  /** Entries reserved by begin() and not yet committed. */
  private open = 0;
  /** Ring index of the open batch's first entry, and the ring's geometry, for put(). */
  private openFirst = 0;
  private readonly ringData: number;
  private readonly ringMask: number;

  constructor(region: LaneRegion, index: number) {
    const u32 = region.u32;
    const laneCount = u32[HDR.laneCount >> 2];
    if (!Number.isInteger(index) || index < 0 || index >= laneCount) {
      throw invalidArg(`lane: ${String(index)} is not a lane of this region (accepted: 0..${laneCount - 1})`);
    }
    const base = (HDR.lanes + index * LANE.size) >> 2;
    this.index = index;
    this.sab = region.sab;
    this.u32 = u32;
    this.u16 = new Uint16Array(region.sab);
    this.u64 = new BigUint64Array(region.sab);
    this.bytes = new Uint8Array(region.sab);
    this.slotFirst = u32[base + (LANE.slotFirst >> 2)];
    this.slotCount = u32[base + (LANE.slotCount >> 2)];
    this.destFirst = u32[base + (LANE.destFirst >> 2)];
    this.destCount = u32[base + (LANE.destCount >> 2)];
    this.submitRing = new RingProducer(region.sab, u32[base + (LANE.submitOff >> 2)], u32);
    this.freeRing = new RingConsumer(region.sab, u32[base + (LANE.freeOff >> 2)], u32);
    this.slotSize = region.slotSize;
    this.poolOff = region.poolOff;
    this.destOff = region.destOff;
    this.payloadSize = region.slotSize - SLOT_HEADROOM;
    this.lowWater = Math.max(1, this.slotCount >> 2);
    this.ringEntries = this.submitRing.entries;
    this.ringData = this.submitRing.data;
    this.ringMask = this.submitRing.mask;
    if (this.submitRing.entrySize !== DESC.size) {
      throw new ReflectorError('ERR_LAYOUT_MISMATCH', `lane ${index}: submit ring entries are ${this.submitRing.entrySize} bytes, rf_desc is ${DESC.size}`);
    }
    this.iTxSleeping = (HDR.doorbell + THREAD_TX * DOORBELL.size + DOORBELL.sleeping) >> 2;
  }

  // ------------------------------------------------------------ slots --

  /** Free slots ready to take without waiting. */
  freeSlots(): number {
    return this.freeRing.peek(this.slotCount);
  }

  /**
   * Take a free slot. When none is free, waits on the native futex (the
   * engine wakes it once lowWater slots are back, or when none is left in
   * flight) up to timeoutMs, then throws
   * ERR_RING_TIMEOUT. Blocks the thread while waiting: on the main thread
   * it does not wait (ERR_WOULD_BLOCK): use allocSlotAsync() there.
   */
  allocSlot(timeoutMs = DEFAULT_TIMEOUT_MS): number {
    if (this.freeRing.peek(1) === 0) this.waitSlot(timeoutMs, this.lowWater);
    return this.takeSlot();
  }

  /** allocSlot() without blocking the thread (timer backoff): for the main thread. */
  async allocSlotAsync(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<number> {
    if (this.freeRing.peek(1) === 0) {
      try {
        await this.freeRing.waitAvailableAsync(timeoutMs);
      } catch (e) {
        throw this.noSlot(e, timeoutMs);
      }
    }
    return this.takeSlot();
  }

  /**
   * Take up to out.length free slots at once (one release for all) into
   * `out`; returns how many. Waits like allocSlot() only when none is free.
   */
  allocSlots(out: Uint32Array, timeoutMs = DEFAULT_TIMEOUT_MS): number {
    let n = this.freeRing.peek(out.length);
    if (n === 0) {
      this.waitSlot(timeoutMs, Math.min(this.slotCount, Math.max(out.length, this.lowWater)));
      n = this.freeRing.peek(out.length);
    }
    const ring = this.freeRing;
    for (let k = 0; k < n; k++) out[k] = this.u32[ring.entryOffset(k) >> 2];
    ring.release(n);
    return n;
  }

  private takeSlot(): number {
    const slot = this.u32[this.freeRing.entryOffset(0) >> 2];
    this.freeRing.release(1);
    return slot;
  }

  private waitSlot(timeoutMs: number, want: number): void {
    if (isMainThread) throw wouldBlock(`lane ${this.index}: no free slot now`, 'allocSlot');
    try {
      this.freeRing.waitAvailable(timeoutMs, want);
    } catch (e) {
      throw this.noSlot(e, timeoutMs);
    }
  }

  private noSlot(e: unknown, timeoutMs: number): unknown {
    if (e instanceof ReflectorError && e.code === 'ERR_RING_TIMEOUT') {
      return new ReflectorError(
        'ERR_RING_TIMEOUT',
        `lane ${this.index}: no free slot after ${timeoutMs} ms (all ${this.slotCount} slots are in flight; is the engine running?)`,
      );
    }
    return e;
  }

  /** Byte offset in the region of a slot's payload (use with `bytes`). */
  payloadOffset(slot: number): number {
    return this.poolOff + slot * this.slotSize + SLOT_HEADROOM;
  }

  /** The slot's payload area (slotSize - 128 bytes): write the packet's UDP payload here. */
  payload(slot: number): Uint8Array {
    this.checkSlot(slot);
    return new Uint8Array(this.sab, this.payloadOffset(slot), this.payloadSize);
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < this.slotFirst || slot >= this.slotFirst + this.slotCount) {
      throw invalidArg(
        `lane ${this.index}: slot ${String(slot)} is not one of this lane's (accepted: ${this.slotFirst}..${this.slotFirst + this.slotCount - 1})`,
      );
    }
  }

  // ----------------------------------------------------- destinations --

  /**
   * Write destination entry `index` (global index, in this lane's slice).
   * Do it before the first descriptor naming it is submitted (the submit's
   * release store publishes it). Rewriting it while packets to it are queued
   * is safe: the entry's sequence lock (rf_dest.gen, reflector/dest.h) makes
   * the engine use one complete version for each packet, never a mix.
   */
  writeDest(index: number, d: Destination): void {
    if (!Number.isInteger(index) || index < this.destFirst || index >= this.destFirst + this.destCount) {
      throw invalidArg(
        `lane ${this.index}: destination ${String(index)} is not one of this lane's (accepted: ${this.destFirst}..${this.destFirst + this.destCount - 1})`,
      );
    }
    if (d === null || typeof d !== 'object') throw invalidArg('destination: expected an object');
    if (d.family !== 4 && d.family !== 6) throw invalidArg(`destination.family: ${String(d.family)} is not 4 or 6`);
    const isFamily = d.family === 4 ? isIPv4 : isIPv6;
    for (const k of ['srcAddr', 'dstAddr'] as const) {
      if (typeof d[k] !== 'string' || !isFamily(d[k])) {
        throw invalidArg(`destination.${k}: "${String(d[k])}" is not an IPv${d.family} address (family is ${d.family})`);
      }
    }
    for (const k of ['srcPort', 'dstPort'] as const) {
      const v = d[k];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
        throw invalidArg(`destination.${k}: ${String(v)} is not a port (accepted: 1..65535)`);
      }
    }
    for (const k of ['srcMac', 'dstMac'] as const) {
      if (typeof d[k] !== 'string' || !MAC_RE.test(d[k])) {
        throw invalidArg(`destination.${k}: "${String(d[k])}" is not a MAC address (expected "aa:bb:cc:dd:ee:ff")`);
      }
    }
    const ttl = d.ttl ?? 64;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) throw invalidArg(`destination.ttl: ${String(d.ttl)} is not in 1..255`);
    const dscp = d.dscp ?? 0;
    if (!Number.isInteger(dscp) || dscp < 0 || dscp > 63) throw invalidArg(`destination.dscp: ${String(d.dscp)} is not in 0..63`);

    const off = this.destOff + index * DEST.size;
    const b = this.bytes;
    const gen = (off + DEST.gen) >> 2;
    // the sequence lock: gen odd while the fields change, even again after
    const odd = (Atomics.load(this.u32, gen) | 1) >>> 0;
    Atomics.store(this.u32, gen, odd);
    // keeps the field stores after the odd gen: a seq-cst load after a
    // seq-cst store of the same word is ordered after it (arm64: ldar after
    // stlr), and the stores below after the load (pairs with the engine's
    // acquire fence before it reads gen again)
    Atomics.load(this.u32, gen);
    b.fill(0, off, off + DEST.gen);
    b.fill(0, off + DEST.gen + 4, off + DEST.size);
    b[off + DEST.family] = d.family;
    b[off + DEST.ttl] = ttl;
    b[off + DEST.dscp] = dscp;
    // ports in network byte order
    b[off + DEST.srcPort] = d.srcPort >> 8;
    b[off + DEST.srcPort + 1] = d.srcPort & 0xff;
    b[off + DEST.dstPort] = d.dstPort >> 8;
    b[off + DEST.dstPort + 1] = d.dstPort & 0xff;
    b.set(macBytes(d.dstMac), off + DEST.dstMac);
    b.set(macBytes(d.srcMac), off + DEST.srcMac);
    b.set(addressBytes(d.srcAddr), off + DEST.srcAddr);
    b.set(addressBytes(d.dstAddr), off + DEST.dstAddr);
    b[off + DEST.flags] = DEST_F_VALID;
    // the fields before the even gen (pairs with the engine's acquire load)
    Atomics.store(this.u32, gen, (odd + 1) >>> 0);
  }

  // ----------------------------------------------------------- submit --

  /**
   * Submit one aggregate: every descriptor is validated first (nothing is
   * submitted when one is bad), then ONE reservation and ONE submit cover
   * the batch and the last descriptor carries RF_DESC_F_AGG_END.
   *
   * A batch larger than the submit ring (ringEntries) cannot be one
   * submission: it goes as consecutive ring-sized submissions, each waiting
   * for the ring to have room for all of it (so the engine may start
   * sending the first part before the rest is queued).
   *
   * Waits (blocking the thread, native futex) while the ring is full, up to
   * timeoutMs, then throws ERR_RING_TIMEOUT. On the main thread use
   * submitAsync().
   */
  submit(descs: readonly PacketDesc[], timeoutMs = DEFAULT_TIMEOUT_MS): void {
    this.validate(descs);
    for (let done = 0; done < descs.length; ) {
      const n = Math.min(descs.length - done, this.ringEntries);
      this.waitRoom(n, timeoutMs);
      this.writeBatch(descs, done, n);
      done += n;
    }
  }

  /** submit() without blocking the thread while the ring is full: for the main thread. */
  async submitAsync(descs: readonly PacketDesc[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    this.validate(descs);
    for (let done = 0; done < descs.length; ) {
      const n = Math.min(descs.length - done, this.ringEntries);
      await this.waitRoomAsync(n, timeoutMs);
      this.writeBatch(descs, done, n);
      done += n;
    }
  }

  private async waitRoomAsync(n: number, timeoutMs: number): Promise<void> {
    if (this.submitRing.free(n) >= n) return;
    try {
      await this.submitRing.waitFreeAsync(n, timeoutMs);
    } catch (e) {
      throw this.ringFull(e, n, timeoutMs);
    }
  }

  private ringFull(e: unknown, n: number, timeoutMs: number): unknown {
    if (e instanceof ReflectorError && e.code === 'ERR_RING_TIMEOUT') {
      return new ReflectorError(
        'ERR_RING_TIMEOUT',
        `lane ${this.index}: submit ring full for ${timeoutMs} ms (${n} descriptors wanted; is the engine running?)`,
      );
    }
    return e;
  }

  private validate(descs: readonly PacketDesc[]): void {
    if (!Array.isArray(descs)) throw invalidArg('submit: expected an array of packet descriptors');
    if (this.open !== 0) throw new ReflectorError('ERR_ENGINE_STATE', `lane ${this.index}: submit() while a begin() batch is open`);
    const slotEnd = this.slotFirst + this.slotCount;
    const destEnd = this.destFirst + this.destCount;
    for (let i = 0; i < descs.length; i++) {
      const d = descs[i];
      if (!(d.slot >= this.slotFirst && d.slot < slotEnd && Number.isInteger(d.slot))) {
        throw invalidArg(`descs[${i}].slot: ${String(d.slot)} is not one of lane ${this.index}'s slots (accepted: ${this.slotFirst}..${slotEnd - 1})`);
      }
      if (!(d.dest >= this.destFirst && d.dest < destEnd && Number.isInteger(d.dest))) {
        throw invalidArg(`descs[${i}].dest: ${String(d.dest)} is not one of lane ${this.index}'s destinations (accepted: ${this.destFirst}..${destEnd - 1})`);
      }
      if (!(d.len >= 0 && d.len <= this.payloadSize && Number.isInteger(d.len))) {
        throw invalidArg(`descs[${i}].len: ${String(d.len)} is not in 0..${this.payloadSize} (the slot's payload size)`);
      }
      if (!(d.stream >= 0 && d.stream <= 0xffffffff && Number.isInteger(d.stream))) {
        throw invalidArg(`descs[${i}].stream: ${String(d.stream)} is not an integer in 0..4294967295`);
      }
      if (typeof d.txTime !== 'bigint' || d.txTime < 0n) {
        throw invalidArg(`descs[${i}].txTime: ${String(d.txTime)} is not a CLOCK_MONOTONIC time in ns (a bigint >= 0n)`);
      }
    }
  }

  private waitRoom(n: number, timeoutMs: number, verb = 'submit'): void {
    if (this.submitRing.free(n) >= n) return;
    if (isMainThread) throw wouldBlock(`lane ${this.index}: the submit ring has no room for ${n} descriptors now`, verb);
    try {
      this.submitRing.waitFree(n, timeoutMs);
    } catch (e) {
      throw this.ringFull(e, n, timeoutMs);
    }
  }

  private writeBatch(descs: readonly PacketDesc[], from: number, n: number): void {
    const ring = this.submitRing;
    ring.reserve(n);
    const u32 = this.u32;
    const u16 = this.u16;
    for (let k = 0; k < n; k++) {
      const d = descs[from + k];
      const off = ring.entryOffset(k);
      this.u64[off >> 3] = d.txTime;
      const w = off >> 2;
      u32[w + (DESC.slot >> 2)] = d.slot;
      u16[(off + DESC.len) >> 1] = d.len;
      u16[(off + DESC.flags) >> 1] = k === n - 1 ? DESC_F_AGG_END : 0;
      u32[w + (DESC.dest >> 2)] = d.dest;
      u32[w + (DESC.stream >> 2)] = d.stream;
      u32[w + (DESC.seq >> 2)] = ring.index(k);
      u32[w + 7] = 0;
    }
    this.publish();
  }

  /** Submit the reserved entries, then ring the TX doorbell if the engine sleeps. */
  private publish(): void {
    this.submitRing.submit();
    // Dekker pair with the engine's sleep: it stores doorbell.sleeping,
    // fences (rf_smp_mb) and re-checks the rings; we stored `producer`
    // (Atomics.store, seq-cst) and now read the flag. One of the two sees
    // the other, so a submission never waits for a sleeping engine.
    if (Atomics.load(this.u32, this.iTxSleeping) !== 0) native().ring(this.sab, THREAD_TX);
  }

  // ----------------------------------------------------------- cursor --

  /**
   * Low-level batch: reserve `n` (1..ringEntries) descriptor entries,
   * waiting (native futex) up to timeoutMs for room; then put(k, ...) each
   * of them and commit() once. No validation and no allocation: the engine
   * drops (and counts) bad slots, destinations and lengths.
   */
  begin(n: number, timeoutMs = DEFAULT_TIMEOUT_MS): void {
    this.checkBegin(n);
    this.waitRoom(n, timeoutMs, 'begin');
    this.openBatch(n);
  }

  /** begin() without blocking the thread while the ring is full: for the main thread. */
  async beginAsync(n: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    this.checkBegin(n);
    await this.waitRoomAsync(n, timeoutMs);
    // another begin() may have run while we waited
    this.checkBegin(n);
    this.openBatch(n);
  }

  private checkBegin(n: number): void {
    if (this.open !== 0) throw new ReflectorError('ERR_ENGINE_STATE', `lane ${this.index}: begin() while a batch is open`);
    if (!(n >= 1 && n <= this.ringEntries && Number.isInteger(n))) {
      throw invalidArg(`lane ${this.index}: begin(${String(n)}): accepted 1..${this.ringEntries} (the submit ring's size)`);
    }
  }

  private openBatch(n: number): void {
    this.submitRing.reserve(n);
    this.openFirst = this.submitRing.index(0);
    this.open = n;
  }

  /**
   * Write the k-th descriptor of the open batch (k in 0..n-1 of begin(n):
   * anything else would write entries the engine may be reading, and is
   * refused). txTimeNs is a number of CLOCK_MONOTONIC ns (exact below 2^53
   * ns, 104 days of uptime; 0 = now) so that no BigInt is made per packet.
   */
  put(k: number, slot: number, len: number, dest: number, stream: number, txTimeNs: number): void {
    const kk = k >>> 0;
    if (kk >= this.open || kk !== k) {
      if (this.open === 0) throw new ReflectorError('ERR_ENGINE_STATE', `lane ${this.index}: put() without begin()`);
      throw invalidArg(`lane ${this.index}: put(${String(k)}): accepted 0..${this.open - 1} (the entries begin() reserved)`);
    }
    const idx = (this.openFirst + kk) >>> 0;
    // rf_desc is 32 bytes: word index of the entry = byte offset / 4
    const w = (this.ringData + (idx & this.ringMask) * DESC.size) >> 2;
    const u32 = this.u32;
    u32[w] = txTimeNs % 0x100000000;
    u32[w + 1] = Math.floor(txTimeNs / 0x100000000);
    u32[w + (DESC.slot >> 2)] = slot;
    // len and flags share a word: len in the low half (little-endian)
    u32[w + (DESC.len >> 2)] = (len & 0xffff) | (kk === this.open - 1 ? DESC_F_AGG_END << 16 : 0);
    u32[w + (DESC.dest >> 2)] = dest;
    u32[w + (DESC.stream >> 2)] = stream;
    u32[w + (DESC.seq >> 2)] = idx;
    u32[w + 7] = 0;
  }

  /** Publish the open batch (one release store) and ring the doorbell if needed. */
  commit(): void {
    if (this.open === 0) throw new ReflectorError('ERR_ENGINE_STATE', `lane ${this.index}: commit() without begin()`);
    this.open = 0;
    this.publish();
  }
}

function macBytes(mac: string): number[] {
  return mac.split(':').map((h) => parseInt(h, 16));
}
