// SPDX-License-Identifier: MIT
// What is running (relays, their subscribers, sessions) and where each object
// came from, and the one place that changes it: every change goes through
// the relays/session managers first and is recorded only when they accepted
// it. Config reloads and control API requests both land here.
//
// The rule for the two coexisting (docs/server.md "Reloads and the control API"):
// - the config file owns the objects it names (relays and sessions by name,
//   and the subscribers it lists under a relay); a reload makes them match the
//   file again, even if the API changed or removed them in between;
// - objects made through the API are "runtime": reloads leave them alone,
//   unless the file names the same object, which then becomes config-owned;
// - removing a relay from the file removes it with all its subscribers.
//
// Truth under faults: a session that ended or failed leaves the state
// (sessionExited); a change that a caller's deadline overtook is undone
// before the caller hears ERR_TIMEOUT (the `signal` of the primitives), so
// a timed-out request is never applied later.
import { formatEndpoint, type Endpoint, type Prefix } from '../net/address';
import type { Config, SessionConfig } from '../config/schema';
import { diffConfig, type ConfigDiff } from '../config/diff';
import type { Logger } from '../log';
import { ControlError, type Origin, type RelayInfo, type SessionInfo } from '../control/types';
import type { ServerDeps } from './deps';

/** Changes waiting for their turn beyond this are refused (ERR_UNAVAILABLE), not queued. */
export const MAX_QUEUED_CHANGES = 256;

export interface RelayState {
  name: string;
  listen: Endpoint;
  sources: Prefix[];
  allowAnySource?: boolean;
  maxPps?: number;
  maxBps?: number;
  ssm?: boolean;
  multicastTtl?: number;
  origin: Origin;
  /** "addr:port" -> endpoint and origin */
  subscribers: Map<string, { endpoint: Endpoint; origin: Origin }>;
}

export interface SessionState {
  spec: SessionConfig;
  origin: Origin;
}

export interface ApplyReport {
  diff: ConfigDiff;
  errors: Array<{ what: string; err: unknown }>;
}

const prefixText = (p: Prefix): string => `${p.address}/${p.length}`;

export class RunningState {
  readonly relays = new Map<string, RelayState>();
  readonly sessions = new Map<string, SessionState>();
  // serialises changes: a reload and API requests never interleave
  private queue: Promise<unknown> = Promise.resolve();
  private queued = 0;
  /** sessions being started, and those of them that ended before start() returned */
  private readonly startingSessions = new Set<string>();
  private readonly exitedWhileStarting = new Set<string>();

  constructor(
    private readonly deps: ServerDeps,
    private readonly log: Logger,
  ) {}

  /**
   * Run `fn` after every change queued before it. With `signal`: a change
   * whose signal fired before its turn never runs (ERR_TIMEOUT: not applied).
   */
  serial<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal && this.queued >= MAX_QUEUED_CHANGES) {
      return Promise.reject(new ControlError('ERR_UNAVAILABLE', `${this.queued} changes are waiting already; not applied, try again`));
    }
    this.queued++;
    const guarded = async (): Promise<T> => {
      this.queued--;
      if (signal?.aborted) throw notApplied('it waited behind other changes until its deadline');
      return fn();
    };
    const run = this.queue.then(guarded, guarded);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * A session ended or failed on its own: it leaves the state. Returns false
   * when it was not ours (already stopped, or never started).
   */
  sessionExited(name: string): boolean {
    if (this.sessions.delete(name)) return true;
    if (this.startingSessions.has(name)) {
      this.exitedWhileStarting.add(name);
      return true;
    }
    return false;
  }

  // ---------------------------------------------------------- config --

  /** Make the running state match `config` for what it names (see the rule above). */
  applyConfig(config: Config): Promise<ApplyReport> {
    return this.serial(() => this.reconcile(config));
  }

  private async reconcile(config: Config): Promise<ApplyReport> {
    const actual = this.asConfig(config);
    const desired: Config = { ...config, relays: [], sessions: [] };
    const named = new Set(config.relays.map((r) => r.name));
    for (const r of config.relays) {
      // runtime subscribers of a relay the file names stay on it
      const cur = this.relays.get(r.name);
      const keep = cur ? [...cur.subscribers.values()].filter((s) => s.origin === 'runtime').map((s) => s.endpoint) : [];
      const subs = new Map(r.subscribers.map((e) => [formatEndpoint(e), e]));
      for (const e of keep) if (!subs.has(formatEndpoint(e))) subs.set(formatEndpoint(e), e);
      desired.relays.push({ ...r, subscribers: [...subs.values()] });
    }
    for (const r of this.relays.values()) {
      if (r.origin === 'runtime' && !named.has(r.name)) desired.relays.push(this.relayConfig(r));
    }
    const sessionNames = new Set(config.sessions.map((s) => s.name));
    desired.sessions = [...config.sessions, ...[...this.sessions.values()].filter((s) => s.origin === 'runtime' && !sessionNames.has(s.spec.name)).map((s) => s.spec)];
    const diff = diffConfig(actual, desired);
    const errors: ApplyReport['errors'] = [];
    const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push({ what, err });
        this.log.error('reload step failed', { step: what, err });
      }
    };
    // stop first, then change, then start: a replaced relay frees its listen address before the new one takes it
    for (const name of diff.sessionsRemoved) await attempt(`stop session ${name}`, () => this.stopSession(name));
    for (const name of diff.relaysRemoved) await attempt(`remove relay ${name}`, () => this.removeRelay(name));
    for (const ch of diff.relaysChanged) {
      const limit = ch.limit;
      if (limit) await attempt(`limit ${ch.name}`, () => this.setLimit(ch.name, limit));
      for (const s of ch.subscribersRemoved) await attempt(`unsubscribe ${ch.name} ${s}`, () => this.unsubscribe(ch.name, s));
      const wanted = desired.relays.find((r) => r.name === ch.name);
      for (const s of ch.subscribersAdded) {
        const e = wanted?.subscribers.find((x) => formatEndpoint(x) === s);
        if (e) await attempt(`subscribe ${ch.name} ${s}`, () => this.subscribe(ch.name, e, 'config'));
      }
    }
    for (const r of diff.relaysAdded) {
      const opts = { allowAnySource: r.allowAnySource, maxPps: r.maxPps, maxBps: r.maxBps, ssm: r.ssm, multicastTtl: r.multicastTtl };
      await attempt(`add relay ${r.name}`, () => this.addRelay(r.name, r.listen, r.sources, r.subscribers, named.has(r.name) ? 'config' : 'runtime', opts));
    }
    for (const s of diff.sessionsAdded) {
      await attempt(`start session ${s.name}`, () => this.startSession(s, sessionNames.has(s.name) ? 'config' : 'runtime'));
    }
    // what the file names is config-owned from now on, even where nothing had to change
    for (const r of config.relays) {
      const cur = this.relays.get(r.name);
      if (!cur) continue;
      cur.origin = 'config';
      const listed = new Set(r.subscribers.map(formatEndpoint));
      // anything on it the file does not list survived as a runtime subscriber
      for (const [k, s] of cur.subscribers) s.origin = listed.has(k) ? 'config' : 'runtime';
    }
    for (const s of config.sessions) {
      const cur = this.sessions.get(s.name);
      if (cur) cur.origin = 'config';
    }
    return { diff, errors };
  }

  /** The running state as a Config (for diffing against a new file). */
  private asConfig(base: Config): Config {
    return {
      ...base,
      relays: [...this.relays.values()].map((r) => this.relayConfig(r)),
      sessions: [...this.sessions.values()].map((s) => s.spec),
    };
  }

  private relayConfig(r: RelayState): Config['relays'][0] {
    return {
      name: r.name, listen: r.listen, sources: r.sources, subscribers: [...r.subscribers.values()].map((s) => s.endpoint),
      allowAnySource: r.allowAnySource, maxPps: r.maxPps ?? 0, maxBps: r.maxBps ?? 0,
      ...(r.ssm !== undefined ? { ssm: r.ssm } : {}), ...(r.multicastTtl !== undefined ? { multicastTtl: r.multicastTtl } : {}),
    };
  }

  async setLimit(relay: string, limit: { maxPps: number; maxBps: number }): Promise<void> {
    const r = this.relays.get(relay);
    if (!r) throw new ControlError('ERR_NOT_FOUND', `no relay named "${relay}" (have: ${[...this.relays.keys()].join(', ') || 'none'})`);
    if (!this.deps.relays.setLimit) throw new ControlError('ERR_INTERNAL', `relay "${relay}": this relays manager cannot change limits live`);
    await this.deps.relays.setLimit(relay, limit);
    r.maxPps = limit.maxPps;
    r.maxBps = limit.maxBps;
    this.log.info('relay limit changed', { relay, maxPps: limit.maxPps, maxBps: limit.maxBps });
  }

  // ----------------------------------------------------- primitives --
  // (callers hold the queue: applyConfig or the control handler's serial())

  async addRelay(
    name: string, listen: Endpoint, sources: Prefix[], subscribers: Endpoint[], origin: Origin,
    opts: { allowAnySource?: boolean; maxPps?: number; maxBps?: number; ssm?: boolean; multicastTtl?: number; signal?: AbortSignal } = {},
  ): Promise<void> {
    if (this.relays.has(name)) throw new ControlError('ERR_EXISTS', `relay "${name}" already exists`);
    const l = formatEndpoint(listen);
    for (const r of this.relays.values()) {
      if (formatEndpoint(r.listen) === l) throw new ControlError('ERR_EXISTS', `${l} is already the listen address of relay "${r.name}"`);
    }
    if (sources.length === 0) throw new ControlError('ERR_INVALID_ARG', `relay "${name}": at least one source prefix is required`);
    for (const s of subscribers) {
      if (formatEndpoint(s) === l) throw new ControlError('ERR_INVALID_ARG', `relay "${name}": subscriber ${l} is the relay's own listen address (a loop)`);
    }
    const limits = {
      allowAnySource: opts.allowAnySource, maxPps: opts.maxPps, maxBps: opts.maxBps,
      ...(opts.ssm !== undefined ? { ssm: opts.ssm } : {}), ...(opts.multicastTtl !== undefined ? { multicastTtl: opts.multicastTtl } : {}),
    };
    await this.deps.relays.addRelay({ name, listen, sources, subscribers, ...limits });
    if (opts.signal?.aborted) {
      await this.deps.relays.removeRelay(name);
      throw notApplied('it finished after its deadline and was undone');
    }
    const subs = new Map(subscribers.map((e) => [formatEndpoint(e), { endpoint: e, origin }]));
    this.relays.set(name, { name, listen, sources, ...limits, origin, subscribers: subs });
    this.log.info('relay added', { relay: name, listen: l, sources: sources.map(prefixText), subscribers: [...subs.keys()], origin });
  }

  async removeRelay(name: string): Promise<void> {
    if (!this.relays.has(name)) throw new ControlError('ERR_NOT_FOUND', `no relay named "${name}" (have: ${[...this.relays.keys()].join(', ') || 'none'})`);
    await this.deps.relays.removeRelay(name);
    this.relays.delete(name);
    this.log.info('relay removed', { relay: name });
  }

  async subscribe(relay: string, e: Endpoint, origin: Origin, signal?: AbortSignal): Promise<void> {
    const r = this.relays.get(relay);
    if (!r) throw new ControlError('ERR_NOT_FOUND', `no relay named "${relay}" (have: ${[...this.relays.keys()].join(', ') || 'none'})`);
    const k = formatEndpoint(e);
    if (r.subscribers.has(k)) throw new ControlError('ERR_EXISTS', `${k} already subscribes to relay "${relay}"`);
    if (k === formatEndpoint(r.listen)) throw new ControlError('ERR_INVALID_ARG', `${k} is relay "${relay}"'s own listen address (a loop)`);
    await this.deps.relays.addOutput(relay, e);
    if (signal?.aborted) {
      await this.deps.relays.removeOutput(relay, e);
      throw notApplied('it finished after its deadline and was undone');
    }
    r.subscribers.set(k, { endpoint: e, origin });
    this.log.info('subscriber added', { relay, subscriber: k, origin });
  }

  async unsubscribe(relay: string, subscriber: string): Promise<void> {
    const r = this.relays.get(relay);
    if (!r) throw new ControlError('ERR_NOT_FOUND', `no relay named "${relay}" (have: ${[...this.relays.keys()].join(', ') || 'none'})`);
    const s = r.subscribers.get(subscriber);
    if (!s) throw new ControlError('ERR_NOT_FOUND', `${subscriber} does not subscribe to relay "${relay}"`);
    await this.deps.relays.removeOutput(relay, s.endpoint);
    r.subscribers.delete(subscriber);
    this.log.info('subscriber removed', { relay, subscriber });
  }

  async startSession(spec: SessionConfig, origin: Origin, signal?: AbortSignal): Promise<void> {
    if (this.sessions.has(spec.name) || this.startingSessions.has(spec.name)) throw new ControlError('ERR_EXISTS', `session "${spec.name}" already exists`);
    this.startingSessions.add(spec.name);
    try {
      await this.deps.sessions.start(spec);
      if (this.exitedWhileStarting.has(spec.name)) return; // ended already (an empty pass): nothing runs
      if (signal?.aborted) {
        await this.deps.sessions.stop(spec.name);
        throw notApplied('it finished after its deadline and was undone');
      }
    } finally {
      this.startingSessions.delete(spec.name);
      this.exitedWhileStarting.delete(spec.name);
    }
    this.sessions.set(spec.name, { spec, origin });
    this.log.info('session started', { session: spec.name, file: spec.file, to: formatEndpoint(spec.to), format: spec.format, loop: spec.loop, origin });
  }

  async stopSession(name: string): Promise<void> {
    if (!this.sessions.has(name)) throw new ControlError('ERR_NOT_FOUND', `no session named "${name}" (have: ${[...this.sessions.keys()].join(', ') || 'none'})`);
    await this.deps.sessions.stop(name);
    // it may have ended on its own meanwhile (then it is gone already)
    if (this.sessions.delete(name)) this.log.info('session stopped', { session: name });
  }

  // ---------------------------------------------------------- views --


  relayInfos(): RelayInfo[] {
    return [...this.relays.values()].map((r) => ({
      name: r.name,
      listen: formatEndpoint(r.listen),
      sources: r.sources.map(prefixText),
      subscribers: [...r.subscribers.keys()],
      origin: r.origin,
    }));
  }

  sessionInfos(): SessionInfo[] {
    return [...this.sessions.values()].map((s) => ({
      name: s.spec.name,
      file: s.spec.file,
      to: formatEndpoint(s.spec.to),
      format: s.spec.format,
      loop: s.spec.loop,
      origin: s.origin,
    }));
  }
}

/** The one answer for a change that ran out of time: it is not in effect. */
export function notApplied(why: string): ControlError {
  return new ControlError('ERR_TIMEOUT', `not applied: ${why}`);
}
