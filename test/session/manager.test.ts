// SPDX-License-Identifier: MIT
// Session manager options: every mistake named, before any thread starts.
import t from 'tap';
import { SessionManager } from '../../src/session/manager';
import type { Region } from '../../src/region/region';

const region = { sab: new SharedArrayBuffer(8), laneCount: 3, maxStreams: 16 } as unknown as Region;

t.test('bad options are refused with the key and the accepted values', async (t) => {
  await t.rejects(SessionManager.create({ region, workers: 3 }), {
    code: 'ERR_INVALID_ARG',
    message: 'sessions.workers: 3 workers need 4 lanes, the region has 3 (region.lanes)',
  });
  await t.rejects(SessionManager.create({ region, windowMs: 0 }), { message: 'sessions.windowMs: 0 is not in 1..1000' });
  await t.rejects(SessionManager.create({ region, leadMs: 5, windowMs: 20 }), { message: 'sessions.leadMs: 5 is not in 20..10000' });
  await t.rejects(SessionManager.create({ region, pool: 3 } as never), {
    message: 'sessions.pool is not an option (accepted: region, workers, windowMs, leadMs, startDelayMs, lateLimitMs, resolveDestination, destination, requestTimeoutMs, mediaRoot, hangMs, restartLimit, restartWindowMs, workerFile)',
  });
  await t.rejects(SessionManager.create({ region: {} as Region }), { message: "sessions.region: expected the engine's Region (engine.region)" });
  await t.rejects(SessionManager.create({ region, workers: 1.5 }), { message: 'sessions.workers: 1.5 is not an integer' });
});
