// SPDX-License-Identifier: MIT
// The main thread's side of the policy ring and the event ring: send one
// policy message and get a promise that settles with the engine's ack
// (RF_EVENT_POLICY_ACK, matched by seq), like mediasoup's Channel with its
// pending-request map. Acks are read by polling the event ring with a short
// timer backoff (the main thread never blocks); every pending request is
// rejected with ERR_CLOSED on close() and with ERR_RING_TIMEOUT when the
// engine does not answer in time.
//
// What a timeout means: the engine applies policy messages strictly in ring
// order, so a message that timed out is still ahead of everything sent
// after it. The caller undoes it by sending the opposite message at once
// (Relays does): whatever the engine does with the first, the second leaves
// the table as if it never came. Resources a message names (counter slots)
// are given back only once every message sent so far has been answered
// (whenSettled): until then the engine may still be using them.
//
// Events other than acks (RF_EVENT_ERROR from the RX thread, started,
// stopped) are read all the time, every IDLE_POLL_MS, and go to listeners.
import { ReflectorError } from '../errors';
import { native } from '../native';
import { DOORBELL, EVENT, EVENT_POLICY_ACK, HDR, THREAD_RX } from '../region/layout';
import type { Region } from '../region/region';
import type { RingConsumer, RingProducer } from '../region/ring';
import { ERRNO, PolicyWriter, type PolicyOp } from './policy';

export interface EngineEvent {
  type: number;
  a: bigint;
  b: bigint;
  c: bigint;
}

interface Pending {
  what: string;
  resolve: () => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** Polling while acks are awaited, while only timed-out ones are, and the rest of the time (events only). */
const POLL_MS = 1;
const LATE_POLL_MS = 10;
const IDLE_POLL_MS = 100;

export class PolicyChannel {
  private readonly region: Region;
  private readonly prod: RingProducer;
  private readonly cons: RingConsumer;
  private readonly writer: PolicyWriter;
  private readonly dv: DataView;
  private readonly u32: Uint32Array;
  private readonly iRxSleeping: number;
  private readonly pending = new Map<number, Pending>();
  /** seqs published and not answered yet, in ring (= answer) order; timed-out ones included */
  private readonly unanswered: number[] = [];
  /** messages answered so far (or passed by a later answer), and what waits for a count */
  private answered = 0;
  private published = 0;
  private readonly settled: Array<{ at: number; fn: () => void }> = [];
  private readonly listeners = new Set<(e: EngineEvent) => void>();
  private seq = 1;
  private poller: NodeJS.Timeout | null = null;
  private polling = false;
  private closed = false;
  readonly timeoutMs: number;

  constructor(region: Region, opts: { timeoutMs?: number } = {}) {
    this.region = region;
    this.prod = region.policyProducer();
    this.cons = region.eventConsumer();
    this.writer = new PolicyWriter(region.sab);
    this.dv = new DataView(region.sab);
    this.u32 = new Uint32Array(region.sab);
    this.iRxSleeping = (HDR.doorbell + THREAD_RX * DOORBELL.size + DOORBELL.sleeping) >> 2;
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.schedule(IDLE_POLL_MS);
  }

  /** Events that are not policy acks (started, stopped, error). */
  onEvent(fn: (e: EngineEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Messages published that the engine has not answered (timed-out ones included). */
  get unsettled(): number {
    return this.unanswered.length;
  }

  /**
   * Write one message (fill() writes its body at the given offset), publish
   * it and wait for the engine's ack. Rejects with ERR_POLICY naming `what`
   * and the errno when the engine refuses it, ERR_RING_TIMEOUT when the
   * policy ring stays full (nothing was published) or the engine does not
   * answer within timeoutMs (published: see the file comment).
   */
  async send(op: PolicyOp, what: string, fill: (w: PolicyWriter, body: number) => void): Promise<void> {
    if (this.closed) throw new ReflectorError('ERR_CLOSED', `${what}: the relay manager is stopped`);
    if (this.prod.reserve(1) === 0) {
      await this.prod.waitFreeAsync(1, this.timeoutMs).catch((e: unknown) => {
        throw new ReflectorError('ERR_RING_TIMEOUT', `${what}: the policy ring stayed full for ${this.timeoutMs} ms (is the engine running?); nothing was sent`, { cause: e });
      });
      if (this.closed) throw new ReflectorError('ERR_CLOSED', `${what}: the relay manager is stopped`);
      if (this.prod.reserve(1) === 0) throw new ReflectorError('ERR_RING_TIMEOUT', `${what}: the policy ring is full; nothing was sent`);
    }
    const seq = this.seq;
    this.seq = (this.seq + 1) >>> 0 || 1;
    const body = this.writer.header(this.prod.entryOffset(0), op, seq);
    fill(this.writer, body);
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        // stays in `unanswered`: its answer may still come, in order
        this.pending.delete(seq);
        reject(new ReflectorError('ERR_RING_TIMEOUT', `${what}: no answer from the engine within ${this.timeoutMs} ms (is it running?)`));
      }, this.timeoutMs);
      this.pending.set(seq, { what, resolve, reject, timer });
    });
    this.prod.submit();
    this.unanswered.push(seq);
    this.published++;
    // Dekker pair with the RX thread's sleep: it stores doorbell.sleeping,
    // fences, re-checks the policy ring; we stored `producer` (seq-cst) and
    // now read the flag. One of the two sees the other.
    if (Atomics.load(this.u32, this.iRxSleeping) !== 0) native().ring(this.region.sab, THREAD_RX);
    this.schedule(0);
    return done;
  }

  /**
   * Run `fn` once the engine has answered every message published so far
   * (at once when there is none), or when the channel closes. For giving
   * back what those messages named.
   */
  whenSettled(fn: () => void): void {
    if (this.unanswered.length === 0 || this.closed) {
      fn();
      return;
    }
    this.settled.push({ at: this.published, fn });
  }

  /** Read every event now (also called by the poller). */
  drain(): void {
    for (;;) {
      const n = this.cons.peek(64);
      if (n === 0) break;
      for (let k = 0; k < n; k++) {
        const off = this.cons.entryOffset(k);
        const ev: EngineEvent = {
          type: this.dv.getUint32(off + EVENT.type, true),
          a: this.dv.getBigUint64(off + EVENT.a, true),
          b: this.dv.getBigUint64(off + EVENT.b, true),
          c: this.dv.getBigUint64(off + EVENT.c, true),
        };
        if (ev.type === EVENT_POLICY_ACK) this.ack(Number(ev.a & 0xffffffffn), Number(BigInt.asIntN(64, ev.b)));
        else for (const fn of this.listeners) fn(ev);
      }
      this.cons.release(n);
    }
    this.runSettled();
  }

  /** Reject every pending request and stop polling. */
  close(): void {
    this.closed = true;
    if (this.poller) clearTimeout(this.poller);
    this.poller = null;
    for (const [seq, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(seq);
      p.reject(new ReflectorError('ERR_CLOSED', `${p.what}: the relay manager was stopped before the engine answered`));
    }
    for (const s of this.settled.splice(0)) s.fn();
  }

  private ack(seq: number, status: number): void {
    // answers come in ring order: every message before this one was answered
    // (or is a foreign seq, e.g. an earlier manager's, which we never sent)
    const i = this.unanswered.indexOf(seq);
    if (i >= 0) {
      this.unanswered.splice(0, i + 1);
      this.answered += i + 1;
    }
    const p = this.pending.get(seq);
    if (!p) return; // timed out already, or not ours
    this.pending.delete(seq);
    clearTimeout(p.timer);
    if (status === 0) {
      p.resolve();
      return;
    }
    const errno = Math.abs(status);
    p.reject(new ReflectorError('ERR_POLICY', `${p.what}: the engine refused it: ${ERRNO[errno] ?? `errno ${errno}`}`));
  }

  private runSettled(): void {
    if (this.settled.length === 0) return;
    const ready = this.settled.filter((s) => s.at <= this.answered);
    if (ready.length === 0) return;
    this.settled.splice(0, this.settled.length, ...this.settled.filter((s) => s.at > this.answered));
    for (const s of ready) s.fn();
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.poller) {
      if (ms > 0 || this.polling) return;
      clearTimeout(this.poller);
    }
    this.poller = setTimeout(() => this.tick(), ms);
    // the poll for events alone never keeps the process alive
    if (this.pending.size === 0) this.poller.unref();
  }

  private tick(): void {
    this.poller = null;
    this.polling = true;
    try {
      this.drain();
    } finally {
      this.polling = false;
    }
    this.schedule(this.pending.size > 0 ? POLL_MS : this.unanswered.length > 0 ? LATE_POLL_MS : IDLE_POLL_MS);
  }
}
