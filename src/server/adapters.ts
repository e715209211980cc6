// SPDX-License-Identifier: MIT
// Binds the server's small interfaces (deps.ts) to the real engine
// (src/engine), relays manager (src/relay) and session manager
// (src/session). The modules are loaded when the server starts, so a build
// that lacks one gives one clear error instead of a crash at import.
import type { Config } from '../config/schema';
import { ReflectorError } from '../errors';
import type { Logger } from '../log';
import { formatEndpoint } from '../net/address';
import { enableLoopbackDelivery } from '../net/loopback';
import { COUNTER_NAMES } from '../region/layout';
import type { SessionManager as SessionManagerType, SessionStats, WorkerDeath } from '../session/manager';
import type { RelaysEvent } from '../relay/relays';
import type { ServerDeps } from './deps';
import type { ServerEvent } from './events';
import { poolSample, ringSamples } from './occupancy';

/** What tests change about the real pieces (fault injection). */
export interface RealDepsOptions {
  /** session worker entry (default workers/session-worker.js) */
  sessionWorkerFile?: string;
  /** a session worker without a heartbeat this long is replaced (default 5000 ms) */
  hangMs?: number;
  /** the engine, once made (the soak reads its region to reconcile counters) */
  onEngine?: (engine: import('../engine/engine').Engine) => void;
}

/** Which pieces the real server needs and are missing from this build; tests skip with this. */
export function missingPieces(): string[] {
  const missing: string[] = [];
  for (const [what, mod] of [
    ['engine (src/engine/engine.ts)', '../engine/engine'],
    ['relays manager (src/relay/relays.ts)', '../relay/relays'],
    ['session manager (src/session/manager.ts)', '../session/manager'],
  ] as const) {
    try {
      require.resolve(mod);
    } catch {
      missing.push(what);
    }
  }
  return missing;
}

export async function realDeps(config: Config, log: Logger, opts: RealDepsOptions = {}): Promise<ServerDeps> {
  const missing = missingPieces();
  if (missing.length) throw new ReflectorError('ERR_ENGINE_START', `this build lacks: ${missing.join(', ')}`);
  const { Engine } = await import('../engine/engine');
  const { Relays } = await import('../relay/relays');
  const { SessionManager } = await import('../session/manager');
  const e = config.engine;
  const engine = new Engine({
    interface: e.interface,
    netns: e.netns ?? undefined,
    backend: e.backend,
    // lane 0 is the main thread's, one lane per session worker
    region: { ...e.region, lanes: e.workers + 1 },
    lateDropMs: e.latenessLimitMs,
    cpuTx: e.cpuTx,
    cpuRx: e.cpuRx,
    txPriority: e.txPriority,
    txWindowUs: e.txWindowUs,
    relayTier: e.relayTier,
    // in a cluster a dead node's kernel tier must stop before another node
    // takes its relays over (a multicast standby would double the stream):
    // etcd expires a dead node's lease 2/3 to 1 lease_s after its death, the
    // watchdog stops 3/4 to 1 kernel_orphan_s after it: half a lease is early enough
    kernelOrphanS: config.cluster.etcd.length ? Math.min(e.kernelOrphanS, Math.max(1, Math.floor(config.cluster.leaseS / 2))) : e.kernelOrphanS,
  });
  opts.onEngine?.(engine);
  const relays = new Relays(engine);
  let sessions: SessionManagerType | null = null;
  const listeners: Array<(e: ServerEvent) => void> = [];
  const emit = (e: ServerEvent): void => {
    for (const fn of listeners) fn(e);
  };
  relays.on('event', (e: RelaysEvent) => {
    if (e.type === 'fault') emit({ type: 'relay_fault', relay: e.relay, subscriber: e.subscriber, code: e.code, reason: e.reason });
    else if (e.type === 'lane') emit({ type: 'lane_quarantined', lane: e.lane, fault: e.fault, faults: e.faults, reason: e.reason });
    else emit({ type: 'engine_error', thread: e.thread, code: e.code, reason: e.reason });
  });
  const watch = (m: SessionManagerType): void => {
    m.on('ended', (name: string) => emit({ type: 'session_ended', session: name }));
    m.on('failed', (name: string, err: ReflectorError, _stats?: SessionStats) => emit({ type: 'session_failed', session: name, code: err.code, reason: err.message }));
    m.on('restarted', (name: string, err: ReflectorError) => emit({ type: 'session_restarted', session: name, reason: err.message }));
    m.on('workerdied', (d: WorkerDeath) => emit({ type: 'worker_died', lane: d.lane, reason: d.error.message, sessions: d.sessions, reclaimed: d.reclaimed }));
  };
  const region = engine.region;
  const sessionsNow = (): SessionManagerType => {
    if (!sessions) throw new ReflectorError('ERR_ENGINE_STATE', 'sessions: the engine is not running');
    return sessions;
  };
  return {
    engine: {
      get running() {
        return engine.running;
      },
      async start() {
        if (e.interface === 'lo') {
          const changed = await enableLoopbackDelivery(e.netns ?? undefined);
          if (changed.length) log.info('turned on loopback delivery for the engine on lo', { sysctls: changed });
        }
        await engine.start();
        const tier = engine.relayTier();
        // one line: which tier relays, and why not the one asked for
        if (tier.tier === e.relayTier) log.info('relay tier', { tier: tier.tier });
        else log.warn(`relay tier: ${tier.tier} instead of ${e.relayTier}: ${tier.why}`, { tier: tier.tier, asked: e.relayTier });
        try {
          await relays.start();
          sessions = await SessionManager.create({
            region,
            workers: e.workers,
            destination: { netns: e.netns ?? undefined, dev: e.interface },
            mediaRoot: config.mediaRoot,
            workerFile: opts.sessionWorkerFile,
            hangMs: opts.hangMs,
          });
          watch(sessions);
        } catch (err) {
          await relays.stop().catch(() => undefined);
          await engine.stop().catch(() => undefined);
          throw err;
        }
        log.debug('relays and session workers ready', { workers: e.workers });
      },
      async stop() {
        if (engine.running) await engine.stop();
      },
      counters: () => ({
        counterNames: () => [...COUNTER_NAMES],
        counter: (t, n) => region.counter(t, n),
        histogram: (t) => region.histogram(t),
      }),
      rings: () => ringSamples(region),
      pool: () => poolSample(region),
      lanes: () => region.laneSamples(),
    },
    onEvent: (fn) => void listeners.push(fn),
    relays: {
      addRelay: (spec) =>
        relays.addRelay({
          name: spec.name, listen: spec.listen, sources: spec.sources, subscribers: spec.subscribers,
          allowAnySource: spec.allowAnySource, maxPps: spec.maxPps, maxBps: spec.maxBps,
          ssm: spec.ssm, multicastTtl: spec.multicastTtl,
        }),
      setLimit: (relay, limit) => relays.setLimit(relay, limit),
      captureToFile: (relay, file, opts) => relays.captureToFile(relay, file, opts),
      capture: (relay, opts) => relays.capture(relay, opts),
      captureDropped: () => relays.captureDropped(),
      removeRelay: (name) => relays.removeRelay(name),
      addOutput: (relay, sub) => relays.addOutput(relay, sub),
      removeOutput: (relay, sub) => relays.removeOutput(relay, sub),
      outputStats: (relay, sub) => relays.outputStats(relay, formatEndpoint(sub)),
      relayStats: (relay) => relays.relayStats(relay),
      commit: () => relays.commit(),
      stop: () => relays.stop(),
    },
    sessions: {
      async start(spec) {
        await sessionsNow().start(spec.name, spec.file, spec.to, spec.format, spec.loop, { resume: spec.resume });
      },
      async stop(name) {
        const m = sessionsNow();
        // it ended on its own a moment ago: stopped already
        if (!m.names().includes(name)) return;
        await m.stop(name);
      },
      stats(name) {
        if (!sessions || !sessions.names().includes(name)) return null;
        return sessions.engineCounters(name);
      },
      async positions() {
        const all = sessions ? await sessions.stats() : {};
        return new Map(Object.entries(all).map(([name, s]) => [name, s.worker.position]));
      },
      async close() {
        await sessions?.close();
      },
      captureToFile: (name, file, opts) => sessionsNow().captureToFile(name, file, opts),
      capture: (name, opts) => sessionsNow().capture(name, opts),
    },
  };
}
