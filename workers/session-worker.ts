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
  const pump = new SessionPump(lane, { leadMs: task.leadMs, startDelayMs: task.startDelayMs, lateLimitMs: task.lateLimitMs });
  let stopping = false;
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;

  port.on('message', async (req: ControlRequest) => {
    try {
      let result: unknown;
      switch (req.op) {
        case 'start':
          // read the file off the thread first; start() then finds it parsed
          await loadMediaAsync(req.file, req.format, { bitrate: req.bitrate, pace: req.pace });
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
  post({ op: 'ready', lane: lane.index, destCount: lane.destCount });

  const windowMs = task.windowMs;
  while (!stopping) {
    const tickStart = Date.now();
    try {
      const r = pump.tick();
      for (const e of r.ended) post({ op: 'ended', name: e.name, counters: e.counters });
      for (const f of r.failed) post({ op: 'failed', name: f.name, code: f.error.code, message: f.error.message, counters: f.counters });
    } catch (e) {
      // a session's own errors are caught inside tick(); this is the lane (ring
      // timeout while the engine is stopped): keep serving, try again next window
      process.stderr.write(`session worker (lane ${lane.index}): ${(e as Error).message}\n`);
    }
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
