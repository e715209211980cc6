// SPDX-License-Identifier: MIT
// The addon's futex calls: results, a wake from another thread, and bad
// offsets refused with an error instead of a crash.
import t from 'tap';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { native } from '../../src/native';

const PEER = join(__dirname, '..', 'fixtures', 'ring-peer-worker.js');

t.test('futexWait results', async (t) => {
  const sab = new SharedArrayBuffer(64);
  const n = native();
  t.equal(n.futexWait(sab, 8, 1, 10), 'not-equal');
  const t0 = Date.now();
  t.equal(n.futexWait(sab, 8, 0, 30), 'timed-out');
  t.ok(Date.now() - t0 >= 25);
  new Uint32Array(sab)[3] = 0xffffffff;
  t.equal(n.futexWait(sab, 12, -1, 1), 'timed-out', 'expected is taken as uint32 (Int32Array values work)');
  t.equal(n.futexWake(sab, 8), 0, 'nobody waits');
});

t.test('futexWake from another thread ends a wait', async (t) => {
  const sab = new SharedArrayBuffer(64);
  const w = new Worker(PEER, { workerData: { sab, ringOff: 0, role: 'wake', count: 0, delayMs: 100, wordOff: 16 }, execArgv: [] });
  const woke = new Promise<{ woke: number }>((res) => w.once('message', res));
  const r = native().futexWait(sab, 16, 0, 30_000);
  // a wake between the worker's store and our wait shows as not-equal
  if (r === 'ok') t.equal((await woke).woke, 1, 'the waker saw one waiter');
  else t.equal(r, 'not-equal');
  await w.terminate();
});

t.test('bad offsets and arguments are errors, never crashes', async (t) => {
  const sab = new SharedArrayBuffer(64);
  const n = native();
  t.throws(() => n.futexWait(sab, 3, 0, 1), { message: 'futexWait: byteOffset 3 is not a 4-byte aligned offset in 0..60' });
  t.throws(() => n.futexWait(sab, 64, 0, 1), { message: /byteOffset 64 is not a 4-byte aligned offset in 0\.\.60/ });
  t.throws(() => n.futexWait(sab, -4, 0, 1), { message: /byteOffset -4 is not/ });
  t.throws(() => n.futexWait(sab, 1e20, 0, 1), { message: /is not a 4-byte aligned offset/ });
  t.throws(() => n.futexWait(sab, Number.NaN, 0, 1), { message: /byteOffset NaN/ });
  t.throws(() => n.futexWake(sab, 62), { message: /futexWake: byteOffset 62/ });
  t.throws(() => n.futexWait(new ArrayBuffer(64) as unknown as SharedArrayBuffer, 0, 0, 1), { message: 'futexWait: expected a SharedArrayBuffer' });
  t.throws(() => n.futexWait(sab, 0, 0, -1), { message: /timeoutMs: expected >= 0/ });
  // a finite value a cast to time_t cannot hold (undefined behaviour in C++), and NaN
  t.throws(() => n.futexWait(sab, 0, 0, 1e300), { message: 'futexWait: timeoutMs: expected >= 0 and at most 1e15 (Infinity = no limit)' });
  t.throws(() => n.futexWait(sab, 0, 0, Number.NaN), { message: /timeoutMs: expected >= 0/ });
  t.throws(() => n.ring(sab, 0), { message: /smaller than the region header/ });
  t.throws(() => n.ring(new SharedArrayBuffer(8192), 9), { message: 'thread: 9 is not in 0..3' });
});
