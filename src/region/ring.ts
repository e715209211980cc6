// SPDX-License-Identifier: MIT
// The ring verbs of engine/include/reflector/ring.h in TypeScript, with the
// same names (libxdp xsk.h): the producer reserves entries, fills them and
// submits; the consumer peeks, reads and releases. Each side keeps a private
// cursor with a cached copy of the peer's index and re-reads the peer's
// index only when the cache says full (producer) or empty (consumer).
//
// Indexes are free-running uint32 (masked on access): all index arithmetic
// is `>>> 0`, so wraparound at 2^32 needs no special case.
//
// Ordering: Atomics.load/Atomics.store are sequentially consistent, at least
// as strong as ring.h's acquire/release pairs (see barrier.h). Entries are
// written and read with plain typed-array accesses; the Atomics on the
// indexes order them.
//
// Waiting never burns a core: a producer on a full ring sets
// producer_waiting and sleeps on the futex word `consumer`; a consumer of an
// empty ring stores how many entries it wants (>= 1) in consumer_waiting and
// sleeps on `producer`; the peer (the engine, or another TypeScript thread)
// futex-wakes it when the word is non-zero: this file's producer at once,
// the engine once that many are ready or none will come (region.h).
// A futex wait blocks its thread, so the main thread uses the *Async waits
// (timer backoff) instead.
import { ReflectorError } from '../errors';
import { native } from '../native';
import { RING } from './layout';

/** How long the async waits sleep between checks (the main thread must not block). */
export const ASYNC_BACKOFF_MS = 1;

function ringTimeout(what: string, timeoutMs: number): ReflectorError {
  return new ReflectorError('ERR_RING_TIMEOUT', `${what} after ${timeoutMs} ms`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The constant part of an rf_ring, read once. */
class RingView {
  readonly sab: SharedArrayBuffer;
  /** Byte offset of the rf_ring header in the region. */
  readonly base: number;
  readonly entries: number;
  readonly mask: number;
  readonly entrySize: number;
  /** Byte offset of entry 0 in the region. */
  readonly data: number;
  protected readonly u32: Uint32Array;
  protected readonly iProducer: number;
  protected readonly iProducerWaiting: number;
  protected readonly iConsumer: number;
  protected readonly iConsumerWaiting: number;

  constructor(sab: SharedArrayBuffer, base: number, u32?: Uint32Array) {
    if (base % 64 !== 0 || base < 0 || base + RING.size > sab.byteLength) {
      throw new ReflectorError('ERR_INVALID_ARG', `ring: offset ${base} is not a ring header in this region`);
    }
    this.sab = sab;
    this.base = base;
    this.u32 = u32 ?? new Uint32Array(sab);
    this.iProducer = (base + RING.producer) >> 2;
    this.iProducerWaiting = (base + RING.producerWaiting) >> 2;
    this.iConsumer = (base + RING.consumer) >> 2;
    this.iConsumerWaiting = (base + RING.consumerWaiting) >> 2;
    // constant after rf_region_init(); the version load in Region ordered them
    this.entries = this.u32[(base + RING.entries) >> 2];
    this.mask = this.u32[(base + RING.mask) >> 2];
    this.entrySize = this.u32[(base + RING.entrySize) >> 2];
    this.data = base + this.u32[(base + RING.dataOff) >> 2];
    if (this.entries === 0 || (this.entries & this.mask) !== 0 || this.mask !== this.entries - 1) {
      throw new ReflectorError('ERR_INVALID_ARG', `ring: offset ${base} holds no initialised ring`);
    }
  }

  /** Entries published and not yet released, as the peer would see them (rf_ring_count). */
  count(): number {
    return (Atomics.load(this.u32, this.iProducer) - Atomics.load(this.u32, this.iConsumer)) >>> 0;
  }
}

export class RingProducer extends RingView {
  /** Next index to reserve (ring.h rf_ring_cursor.local). */
  private local: number;
  /** Consumer index + entries, as last read. */
  private cachedPeer: number;
  /** First index of the last reservation. */
  private first: number;

  constructor(sab: SharedArrayBuffer, base: number, u32?: Uint32Array) {
    super(sab, base, u32);
    // we are the only writer of `producer`: no ordering needed
    this.local = Atomics.load(this.u32, this.iProducer);
    // pairs with the consumer's release of `consumer` (rf_ring_release)
    this.cachedPeer = (Atomics.load(this.u32, this.iConsumer) + this.entries) >>> 0;
    this.first = this.local;
  }

  /** rf_ring_prod_nb_free: free entries, re-reading the consumer only when the cache has fewer than `want`. */
  free(want: number): number {
    const free = (this.cachedPeer - this.local) >>> 0;
    if (free >= want) return free;
    // the consumer is done reading entries before we overwrite them: pairs
    // with rf_ring_release()'s release store of `consumer`
    this.cachedPeer = (Atomics.load(this.u32, this.iConsumer) + this.entries) >>> 0;
    return (this.cachedPeer - this.local) >>> 0;
  }

  /** rf_ring_reserve: reserve up to `want` entries; returns how many (entryOffset(0) is the first). */
  reserve(want: number): number {
    let n = this.free(want);
    if (n > want) n = want;
    this.first = this.local;
    this.local = (this.local + n) >>> 0;
    return n;
  }

  /** Ring index of the k-th entry of the last reservation (free-running, uint32). */
  index(k: number): number {
    return (this.first + k) >>> 0;
  }

  /** Byte offset in the region of the k-th entry of the last reservation. */
  entryOffset(k: number): number {
    return this.data + ((this.first + k) & this.mask) * this.entrySize;
  }

  /** rf_ring_submit: publish every reserved entry, then wake a sleeping consumer. */
  submit(): void {
    // entries are visible before the index that covers them: pairs with the
    // consumer's acquire load of `producer` (rf_ring_peek)
    Atomics.store(this.u32, this.iProducer, this.local);
    // Dekker with a sleeping consumer: it stores consumer_waiting, then
    // re-reads `producer`; we store `producer`, then read the flag. Both
    // are seq-cst, so one of the two sees the other.
    if (Atomics.load(this.u32, this.iConsumerWaiting) !== 0) native().futexWake(this.sab, this.iProducer << 2);
  }

  /**
   * Wait (blocking this thread on the native futex) until `want` entries are
   * free; throws ERR_RING_TIMEOUT after timeoutMs. For worker threads.
   */
  waitFree(want: number, timeoutMs: number): void {
    if (want > this.entries) throw new ReflectorError('ERR_INVALID_ARG', `ring: ${want} entries wanted, the ring has ${this.entries}`);
    if (this.free(want) >= want) return;
    const deadline = Date.now() + timeoutMs;
    const n = native();
    for (;;) {
      const seen = Atomics.load(this.u32, this.iConsumer);
      // announce the sleep, then re-check: pairs with the consumer's
      // store of `consumer` then load of producer_waiting (rf_ring_release
      // and the engine's wake path)
      Atomics.store(this.u32, this.iProducerWaiting, 1);
      if (this.free(want) >= want) break;
      const left = deadline - Date.now();
      if (left <= 0) {
        Atomics.store(this.u32, this.iProducerWaiting, 0);
        throw ringTimeout(`ring full: ${want} entries wanted, ${this.free(want)} free`, timeoutMs);
      }
      // sleeps only while `consumer` still equals what we saw
      n.futexWait(this.sab, this.iConsumer << 2, seen, left);
    }
    Atomics.store(this.u32, this.iProducerWaiting, 0);
  }

  /** waitFree for the main thread: polls with a short timer backoff instead of blocking. */
  async waitFreeAsync(want: number, timeoutMs: number): Promise<void> {
    if (want > this.entries) throw new ReflectorError('ERR_INVALID_ARG', `ring: ${want} entries wanted, the ring has ${this.entries}`);
    const deadline = Date.now() + timeoutMs;
    while (this.free(want) < want) {
      if (Date.now() >= deadline) throw ringTimeout(`ring full: ${want} entries wanted, ${this.free(want)} free`, timeoutMs);
      await sleep(ASYNC_BACKOFF_MS);
    }
  }
}

export class RingConsumer extends RingView {
  /** Next index to peek (ring.h rf_ring_cursor.local). */
  private local: number;
  /** Producer index, as last read. */
  private cachedPeer: number;

  constructor(sab: SharedArrayBuffer, base: number, u32?: Uint32Array) {
    super(sab, base, u32);
    this.local = Atomics.load(this.u32, this.iConsumer);
    // pairs with the producer's release of `producer` (rf_ring_submit)
    this.cachedPeer = Atomics.load(this.u32, this.iProducer);
  }

  /**
   * rf_ring_peek: how many entries are ready, up to `want` (entryOffset(0) is
   * the first). Re-reads the producer only when the cache holds fewer than
   * `want`, so peek(ring size) is the exact count and peek(1) stays a plain
   * read while entries are cached.
   */
  peek(want: number): number {
    let avail = (this.cachedPeer - this.local) >>> 0;
    if (avail < want) {
      // see the entries the producer wrote before publishing `producer`:
      // pairs with rf_ring_submit()'s release store
      this.cachedPeer = Atomics.load(this.u32, this.iProducer);
      avail = (this.cachedPeer - this.local) >>> 0;
    }
    return avail > want ? want : avail;
  }

  /** Byte offset in the region of the k-th entry from the last peek. */
  entryOffset(k: number): number {
    return this.data + ((this.local + k) & this.mask) * this.entrySize;
  }

  /** rf_ring_release: give back `n` entries read since the last release, then wake a sleeping producer. */
  release(n: number): void {
    this.local = (this.local + n) >>> 0;
    // our reads of the entries are done before the producer may reuse them:
    // pairs with the producer's acquire load of `consumer`
    Atomics.store(this.u32, this.iConsumer, this.local);
    // Dekker with a sleeping producer (see RingProducer.submit)
    if (Atomics.load(this.u32, this.iProducerWaiting) !== 0) native().futexWake(this.sab, this.iConsumer << 2);
  }

  /**
   * Wait (blocking this thread on the native futex) until an entry is ready;
   * throws ERR_RING_TIMEOUT after timeoutMs. For worker threads.
   *
   * `want` (an integer >= 1, at most the ring's size) is how many entries the
   * caller would like before it is woken: it goes into consumer_waiting
   * (region.h), and a producer may hold the wake until that many are ready
   * (the engine does, on the lanes' free rings), so a consumer that takes
   * entries in bulk sleeps once per `want` entries, not once per submit.
   * It returns as soon as it sees any entry ready, and after any wake: the
   * producer also wakes it early when no more entries will come.
   */
  waitAvailable(timeoutMs: number, want = 1): void {
    if (!Number.isInteger(want) || want < 1) {
      throw new ReflectorError('ERR_INVALID_ARG', `ring: waitAvailable want = ${String(want)} is not an integer >= 1`);
    }
    if (this.peek(1) > 0) return;
    const wanted = want > this.entries ? this.entries : want;
    const deadline = Date.now() + timeoutMs;
    const n = native();
    for (;;) {
      const seen = Atomics.load(this.u32, this.iProducer);
      // announce the sleep (with how many we want), then re-check: pairs
      // with the producer's store of `producer` then load of
      // consumer_waiting (RingProducer.submit and the engine's free_submit)
      Atomics.store(this.u32, this.iConsumerWaiting, wanted);
      if (this.peek(1) > 0) break;
      const left = deadline - Date.now();
      if (left <= 0) {
        Atomics.store(this.u32, this.iConsumerWaiting, 0);
        throw ringTimeout('ring empty', timeoutMs);
      }
      n.futexWait(this.sab, this.iProducer << 2, seen, left);
    }
    Atomics.store(this.u32, this.iConsumerWaiting, 0);
  }

  /** waitAvailable for the main thread: polls with a short timer backoff instead of blocking. */
  async waitAvailableAsync(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.peek(1) === 0) {
      if (Date.now() >= deadline) throw ringTimeout('ring empty', timeoutMs);
      await sleep(ASYNC_BACKOFF_MS);
    }
  }
}
