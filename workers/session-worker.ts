// SPDX-License-Identifier: MIT
// Piscina worker entry of the session pool. Piscina tasks are request/reply,
// but a session worker lives as long as the pool: the manager runs ONE long
// task per worker (this function), which claims the worker's lane, then
// serves control requests on the MessagePort it was handed (start, stop,
// stats, shutdown) and ticks the pump every window until shutdown. The task
// resolves with the final counters when the manager shuts it down.
//
// Packet bytes never leave this thread except through the lane: the pump
// writes them into pool slots and submits one aggregate per window.
//
// Liveness: every loop and every request bumps task.heartbeat; a manager
// that sees it stand still declares the worker hung and replaces it
// (src/session/manager.ts). A worker that takes over a dead one's lane gets
// the slots nobody holds any more (task.spares) and uses them first.
import { threadId } from 'node:worker_threads';
import { returnSlot } from '../src/aggregate/aggregate';
import { ReflectorError } from '../src/errors';
import { clearMediaCache, loadMediaAsync } from '../src/media/load';
import { Region } from '../src/region/region';
import type { ControlRequest, PumpTask, SessionCounters, WorkerMessage } from '../src/session/protocol';
import { SessionPump } from '../src/session/pump';

export default async function sessionWorker(task: PumpTask): Promise<Record<string, SessionCounters>> {
  const { port } = task;
  const post = (m: WorkerMessage): void => port.postMessage(m);
  const region = Region.fromShared(task.sab);
  const lane = task.lane !== undefined ? region.lane(task.lane) : region.claimWorkerLane();
  for (const s of task.spares ?? []) returnSlot(lane, s);
  const beat = new Int32Array(task.heartbeat);
  const alive = (): void => void Atomics.add(beat, 0, 1);
  const pump = new SessionPump(lane, { leadMs: task.leadMs, startDelayMs: task.startDelayMs, lateLimitMs: task.lateLimitMs, mediaRoot: task.mediaRoot });
  let stopping = false;
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;

  port.on('message', async (req: ControlRequest) => {
    alive();
    try {
      let result: unknown;
      switch (req.op) {
        case 'start':
          // read the file off the thread first; start() then finds it parsed
          await loadMediaAsync(req.file, req.format, { bitrate: req.bitrate, pace: req.pace, root: task.mediaRoot });
          result = pump.start(req);
          break;
        case 'stop':
          result = pump.stop(req.name);
          break;
        case 'stats':
          result = pump.stats();
          break;
        case 'shutdown':
          stopping = true;
          result = pump.stats();
          break;
      }
      post({ op: 'reply', id: req.id, ok: true, result });
      // a new session's first packets are due soon: tick now rather than at the next window
      if (req.op === 'start' || stopping) wake?.();
    } catch (e) {
      const err = e instanceof ReflectorError ? e : new ReflectorError('ERR_CONTROL', (e as Error).message ?? String(e));
      post({ op: 'reply', id: req.id, ok: false, code: err.code, message: err.message });
    }
  });
  post({ op: 'ready', lane: lane.index, destCount: lane.destCount, threadId });

  const windowMs = task.windowMs;
  while (!stopping) {
    const tickStart = Date.now();
    alive();
    const r = pump.tick();
    for (const e of r.ended) post({ op: 'ended', name: e.name, counters: e.counters });
    for (const f of r.failed) post({ op: 'failed', name: f.name, code: f.error.code, message: f.error.message, counters: f.counters });
    // the lane refused an aggregate (ring timeout while the engine is
    // stopped): its packets were given back; keep serving, next window again
    if (r.error) process.stderr.write(`session worker (lane ${lane.index}): ${r.error.message}\n`);
    // sleep one window (or until a control request wakes us); messages are served meanwhile
    await new Promise<void>((resolve) => {
      wake = resolve;
      // one tick per window, however long the tick took (the lead covers the rest)
      timer = setTimeout(resolve, pump.size > 0 ? Math.max(1, tickStart + windowMs - Date.now()) : windowMs * 5);
    });
    clearTimeout(timer);
    wake = undefined;
  }
  const final = pump.stats();
  port.close();
  clearMediaCache();
  return final;
}
