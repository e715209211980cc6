// SPDX-License-Identifier: MIT
// The TypeScript ring verbs (ring.ts, mirror of ring.h): single-thread
// behaviour, 32-bit index wraparound, and backpressure (a full ring times
// out when nobody consumes, resumes when a consumer releases).
import t from 'tap';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { HDR, RING } from '../../src/region/layout';
import { Region } from '../../src/region/region';
import { RingConsumer, RingProducer } from '../../src/region/ring';
import type { RingPeerTask } from '../fixtures/ring-peer-worker';

const PEER = join(__dirname, '..', 'fixtures', 'ring-peer-worker.js');

/** A fresh 16-entry ring (the policy ring of a small region), its indexes preset to `start`. */
function freshRing(start = 0): { sab: SharedArrayBuffer; off: number; u32: Uint32Array } {
  const r = Region.create({ lanes: 1, policyEntries: 16 });
  const u32 = new Uint32Array(r.sab);
  const off = u32[HDR.policyOff >> 2];
  u32[(off + RING.producer) >> 2] = start;
  u32[(off + RING.consumer) >> 2] = start;
  return { sab: r.sab, off, u32 };
}

function peer(task: RingPeerTask): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    // execArgv []: no tap loader hooks in the worker (seconds of start-up under load)
    const w = new Worker(PEER, { workerData: task, execArgv: [] });
    w.once('message', (m: Record<string, number>) => {
      resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
  });
}

t.test('single thread: reserve/submit, peek/release, counts and caches', async (t) => {
  const { sab, off, u32 } = freshRing();
  const p = new RingProducer(sab, off);
  const c = new RingConsumer(sab, off);
  t.equal(p.entries, 16);
  t.equal(c.peek(8), 0, 'empty ring: nothing to peek');
  t.equal(p.reserve(5), 5);
  for (let k = 0; k < 5; k++) u32[p.entryOffset(k) >> 2] = 100 + k;
  t.equal(c.peek(8), 0, 'reserved but not submitted: invisible');
  p.submit();
  t.equal(p.count(), 5);
  t.equal(c.peek(3), 3, 'peek is capped at want');
  t.equal(c.peek(8), 5);
  t.same([0, 1, 2, 3, 4].map((k) => u32[c.entryOffset(k) >> 2]), [100, 101, 102, 103, 104]);
  c.release(2);
  t.equal(Atomics.load(u32, (off + RING.consumer) >> 2), 2, 'release publishes the consumer index');
  t.equal(c.peek(8), 3);
  t.equal(u32[c.entryOffset(0) >> 2], 102);
  // the producer only re-reads the consumer when its cache says full
  t.equal(p.reserve(20), 13, 'partial reservation up to the free space');
  p.submit();
  t.equal(p.reserve(1), 0, 'full');
  c.release(3);
  t.equal(p.reserve(4), 3, 'a full cache re-reads the consumer index');
  t.throws(() => new RingProducer(sab, off + 8), { code: 'ERR_INVALID_ARG' });
});

t.test('peek re-reads the producer when its cache holds fewer than wanted', async (t) => {
  // Lane.freeSlots() is peek(ring size): with a cache re-read only once
  // empty it reported the count at its last re-read, shrinking to 0 while
  // the engine kept returning slots (workers then skipped a window)
  const { sab, off } = freshRing();
  const p = new RingProducer(sab, off);
  const c = new RingConsumer(sab, off);
  p.reserve(4);
  p.submit();
  t.equal(c.peek(16), 4);
  c.release(1);
  p.reserve(6);
  p.submit();
  t.equal(c.peek(16), 9, 'entries submitted after a partial peek are counted');
  t.equal(c.peek(2), 2, 'a cache that holds enough still caps at want');
  t.throws(() => new RingProducer(sab, 4096 * 10 + 64), { code: 'ERR_INVALID_ARG', message: /holds no initialised ring/ });
});

t.test('free-running 32-bit indexes wrap around 2^32 without a special case', async (t) => {
  const start = 2 ** 32 - 5;
  const { sab, off, u32 } = freshRing(start);
  const p = new RingProducer(sab, off);
  const c = new RingConsumer(sab, off);
  let next = 0;
  let expect = 0;
  for (let round = 0; round < 10; round++) {
    const n = p.reserve(7);
    t.equal(n, 7);
    for (let k = 0; k < n; k++) u32[p.entryOffset(k) >> 2] = next++;
    p.submit();
    const m = c.peek(16);
    t.equal(m, 7);
    for (let k = 0; k < m; k++) t.equal(u32[c.entryOffset(k) >> 2], expect++);
    c.release(m);
  }
  t.equal(Atomics.load(u32, (off + RING.producer) >> 2), (start + 70) >>> 0, 'producer wrapped');
  t.equal(Atomics.load(u32, (off + RING.consumer) >> 2), 65, 'consumer wrapped');
  t.equal(p.count(), 0);
  // a full ring across the wrap point
  const q = new RingProducer(sab, off);
  t.equal(q.reserve(16), 16);
  q.submit();
  t.equal(q.reserve(1), 0);
  t.equal(c.peek(32), 16);
});

t.test('backpressure: a full ring times out when nobody consumes', async (t) => {
  const { sab, off } = freshRing();
  const p = new RingProducer(sab, off);
  t.equal(p.reserve(16), 16);
  p.submit();
  const t0 = Date.now();
  t.throws(() => p.waitFree(1, 60), { code: 'ERR_RING_TIMEOUT', message: 'ring full: 1 entries wanted, 0 free after 60 ms' });
  t.ok(Date.now() - t0 >= 55, 'waited for the deadline');
  t.equal(new Uint32Array(sab)[(off + RING.producerWaiting) >> 2], 0, 'producer_waiting cleared');
  await t.rejects(p.waitFreeAsync(1, 30), { code: 'ERR_RING_TIMEOUT' });
  t.throws(() => p.waitFree(17, 10), { code: 'ERR_INVALID_ARG', message: 'ring: 17 entries wanted, the ring has 16' });
});

t.test('backpressure: a blocked producer resumes when a consumer in another thread releases', async (t) => {
  const { sab, off, u32 } = freshRing(2 ** 32 - 3);
  const p = new RingProducer(sab, off);
  t.equal(p.reserve(16), 16);
  p.submit();
  const released = peer({ sab, ringOff: off, role: 'consume', count: 6, delayMs: 150 });
  const t0 = Date.now();
  // blocks this thread on the native futex until the worker releases
  // (a timeout would throw ERR_RING_TIMEOUT: 30 s is only a bound for a stuck test)
  p.waitFree(4, 30_000);
  const waited = Date.now() - t0;
  t.ok(waited >= 100, `woke after the release, not before (${waited} ms)`);
  t.same(await released, { released: 6 });
  t.equal(p.reserve(8), 6);
  t.equal(u32[(off + RING.producerWaiting) >> 2], 0, 'producer_waiting cleared');
});

t.test('a blocked consumer resumes when a producer in another thread submits', async (t) => {
  const { sab, off, u32 } = freshRing();
  const c = new RingConsumer(sab, off);
  t.throws(() => c.waitAvailable(40), { code: 'ERR_RING_TIMEOUT', message: 'ring empty after 40 ms' });
  const published = peer({ sab, ringOff: off, role: 'produce', count: 3, delayMs: 100 });
  c.waitAvailable(30_000);
  t.equal(c.peek(8), 3);
  t.equal(u32[c.entryOffset(2) >> 2], 1002);
  t.same(await published, { published: 3 });
  t.equal(u32[(off + RING.consumerWaiting) >> 2], 0, 'consumer_waiting cleared');
});

t.test('a blocked consumer publishes how many entries it wants (consumer_waiting), at most the ring size', async (t) => {
  const { sab, off, u32 } = freshRing();
  const c = new RingConsumer(sab, off);
  t.throws(() => c.waitAvailable(10, 0), { code: 'ERR_INVALID_ARG', message: 'ring: waitAvailable want = 0 is not an integer >= 1' });
  // a worker reads the word while this thread sleeps, then submits one entry
  const code = `
    const { workerData: d, parentPort } = require('node:worker_threads');
    const { RingProducer } = require(d.ring);
    const u32 = new Uint32Array(d.sab);
    const nap = new Int32Array(new SharedArrayBuffer(4));
    let w = 0;
    for (let k = 0; k < 30000 && (w = Atomics.load(u32, d.word)) === 0; k++) Atomics.wait(nap, 0, 0, 1);
    const p = new RingProducer(d.sab, d.off);
    p.reserve(1);
    u32[p.entryOffset(0) >> 2] = 7;
    p.submit();
    parentPort.postMessage(w);`;
  const ring = join(__dirname, '..', '..', 'src', 'region', 'ring.js');
  const seen = new Promise<number>((resolve, reject) => {
    const w = new Worker(code, { eval: true, execArgv: [], workerData: { sab, off, ring, word: (off + RING.consumerWaiting) >> 2 } });
    w.once('message', (m: number) => {
      resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
  });
  c.waitAvailable(30_000, 100);
  t.equal(await seen, 16, 'want 100 on a 16-entry ring is published as 16');
  t.equal(c.peek(8), 1, 'a TypeScript producer wakes it at once: it takes what is there');
  t.equal(u32[(off + RING.consumerWaiting) >> 2], 0, 'consumer_waiting cleared');
});

t.test('main-thread waits poll asynchronously and resume', async (t) => {
  const { sab, off } = freshRing();
  const p = new RingProducer(sab, off);
  p.reserve(16);
  p.submit();
  const c = new RingConsumer(sab, off);
  setTimeout(() => c.release(c.peek(2)), 20);
  await p.waitFreeAsync(2, 5000);
  t.equal(p.reserve(2), 2);
  const c2 = new RingConsumer(sab, off);
  t.equal(c2.peek(32), 14);
  c2.release(14);
  await t.rejects(c2.waitAvailableAsync(20), { code: 'ERR_RING_TIMEOUT' });
});
