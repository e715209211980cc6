// SPDX-License-Identifier: MIT
// The long-running server: engine + relays + sessions from the config, live
// reload (SIGHUP or file change), metrics HTTP, control socket, orderly stop.
// The pieces it does not own are behind src/server/deps.ts.
//
// Lifecycle: new -> starting -> running -> stopping -> stopped. stop() during
// start() (SIGTERM while the engine opens) makes start() give up at its next
// step (ERR_CLOSED) and then tears down what was built; stop() twice is one
// stop. What happens to the objects it runs is published on `events` (and
// logged): sessions that end or fail leave the state, workers that die,
// reloads, relay and engine faults.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig, ConfigError, formatProblem } from '../config/validate';
import type { Config } from '../config/schema';
import { diffConfig } from '../config/diff';
import { createLogger, type Logger } from '../log';
import { createMetrics, seriesOf, type MetricsSource, type ServerMetrics } from '../metrics/registry';
import { MetricsHttp } from '../metrics/http';
import { ControlServer } from '../control/server';
import type { StatsCounter } from '../control/types';
import { ReflectorError } from '../errors';
import type { ServerDeps } from './deps';
import { RunningState } from './state';
import { CommandHandler, TRANSPORT_MARGIN_MS } from './handler';
import { ServerEvents, type ServerEvent } from './events';
import { ConfigWatcher } from './watch';
import type { DesiredStateSource } from '../cluster/source';
import { startClusterMode } from './cluster-mode';
import { systemdNotifier, type Notifier } from './systemd';

export type DepsFactory = (config: Config, log: Logger) => Promise<ServerDeps>;

export interface ServerOptions {
  configFile: string;
  deps: DepsFactory;
  log?: Logger;
  version?: string;
  /** watch the config file (default true) */
  watch?: boolean;
  /** keep the given logger's level (e.g. set from the environment) instead of log.level */
  fixedLogLevel?: boolean;
  /** prom-client default process metrics (default true) */
  processMetrics?: boolean;
  /** cluster mode: something retrying cannot fix (this node's name is taken); the caller stops the server */
  onFatal?: (err: Error) => void;
  /** the service manager's notify protocol; default: systemd's when NOTIFY_SOCKET is set (src/server/systemd.ts), null = none */
  notify?: Notifier | null;
  /** where the default notifier reads NOTIFY_SOCKET and WATCHDOG_* (default process.env; they are removed from it) */
  notifyEnv?: NodeJS.ProcessEnv;
}

export type ReloadOutcome = 'applied' | 'unchanged' | 'invalid' | 'failed';

type Phase = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

export class Server {
  /** What happened to the objects this server runs (the control API's Watch reads it). */
  readonly events: ServerEvents;
  private phase: Phase = 'new';
  private stopRequested = false;
  private starting: Promise<void> | null = null;
  private stopping_: Promise<void> | null = null;
  private config!: Config;
  private configText = '';
  private deps: ServerDeps | null = null;
  private state: RunningState | null = null;
  private metrics: ServerMetrics | null = null;
  private http: MetricsHttp | null = null;
  private control: ControlServer | null = null;
  private watcher: ConfigWatcher | null = null;
  /** cluster mode: relays and sessions come from etcd */
  private cluster: DesiredStateSource | null = null;
  private applied = false;
  private stopping = false;
  private log: Logger;
  private reloads = 0n;
  private reloadFailures = 0n;
  private readonly notify: Notifier | null;

  constructor(private readonly opts: ServerOptions) {
    this.log = opts.log ?? createLogger();
    this.events = new ServerEvents((err, ev) => this.log.error('server event listener failed', { event: ev.type, err }));
    // the watchdog stops while a running server has lost its engine: the manager restarts it
    this.notify = opts.notify !== undefined ? opts.notify : systemdNotifier({ env: opts.notifyEnv, log: () => this.log, healthy: () => this.phase !== 'running' || (this.deps?.engine.running ?? false) });
  }

  get ready(): boolean {
    return !this.stopping && this.applied && (this.deps?.engine.running ?? false) && !this.cluster?.notReady();
  }

  /** Why /readyz says 503, or null. */
  notReadyReason(): string | null {
    if (this.stopping) return 'stopping';
    if (!(this.deps?.engine.running ?? false)) return 'the engine is not running';
    if (!this.applied) return 'the config is not applied yet';
    return this.cluster?.notReady() ?? null;
  }

  get metricsAddress(): { host: string; port: number } | null {
    const a = this.http?.address;
    return a ? { host: a.address, port: a.port } : null;
  }

  get controlTcpAddress(): { host: string; port: number } | null {
    const a = this.control?.tcpAddress;
    return a ? { host: a.address, port: a.port } : null;
  }

  get running(): RunningState | null {
    return this.state;
  }

  get currentConfig(): Config {
    return this.config;
  }

  /** Start once; rejects with ERR_CLOSED when stop() was called meanwhile (what was built is torn down by that stop). */
  start(): Promise<void> {
    if (this.phase !== 'new') return Promise.reject(new ReflectorError('ERR_ENGINE_STATE', `server: start() while ${this.phase}`));
    this.phase = 'starting';
    this.starting = this.startSteps().then(
      () => {
        this.phase = 'running';
      },
      (err: unknown) => {
        if (this.stopRequested) throw new ReflectorError('ERR_CLOSED', 'server: stopped while starting', { cause: err });
        throw err;
      },
    );
    return this.starting;
  }

  /** Between start steps: give up when a stop came in. */
  private checkStop(): void {
    if (this.stopRequested) throw new ReflectorError('ERR_CLOSED', 'server: stopped while starting');
  }

  private async startSteps(): Promise<void> {
    const file = path.resolve(this.opts.configFile);
    this.configText = readText(file);
    this.config = loadConfig(file);
    if (!this.opts.log) this.log = createLogger({ level: this.config.log.level });
    else if (!this.opts.fixedLogLevel) this.log.setLevel(this.config.log.level);
    const c = this.config;
    this.log.info('server starting', { config: file, pid: process.pid, version: this.opts.version, interface: c.engine.interface, netns: c.engine.netns });
    this.deps = await this.opts.deps(c, this.log);
    this.checkStop();
    this.state = new RunningState(this.deps, this.log);
    this.deps.onEvent?.((e) => this.onPieceEvent(e));
    this.metrics = createMetrics(this.source(), { defaults: this.opts.processMetrics ?? true, version: this.opts.version });
    if (c.metrics.listen) {
      this.http = new MetricsHttp({ host: c.metrics.listen.address, port: c.metrics.listen.port, registry: this.metrics.registry, ready: () => this.ready, notReadyReason: () => this.notReadyReason(), log: this.log });
      await this.http.start();
      const a = this.http.address!;
      this.log.info('metrics listening', { address: `${a.address}:${a.port}`, paths: ['/metrics', '/healthz', '/readyz'] });
    }
    this.checkStop();
    await this.deps.engine.start();
    this.log.info('engine started', { interface: c.engine.interface, backend: c.engine.backend });
    this.checkStop();
    const report = await this.state.applyConfig(c);
    this.checkStop();
    if (report.errors.length) {
      // the next file change retries what failed
      this.configText = '';
      this.log.error('config applied with errors', { errors: report.errors.map((e) => `${e.what}: ${(e.err as Error)?.message ?? String(e.err)}`) });
    }
    this.applied = true;
    // a kernel tier adopted from a crashed server switched to this table in one step per relay
    await this.deps.relays.commit?.().catch((err) => this.log.error('kernel tier commit failed', { err }));
    this.metrics.configLastReload.setToCurrentTime();
    if (c.cluster.etcd.length) {
      const fatal = (err: Error): void => (this.opts.onFatal ? this.opts.onFatal(err) : this.log.error('cluster: fatal', { err }));
      this.cluster = await startClusterMode({ config: c, state: this.state, deps: this.deps, log: this.log, version: this.opts.version ?? 'unknown', onFatal: fatal });
    }
    this.control = this.makeControl(c);
    await this.control.start();
    this.checkStop();
    if (c.control.socket) this.log.info('control listening', { socket: c.control.socket });
    if (this.control.tcpAddress) this.log.info('control listening', { tcp: `${this.control.tcpAddress.address}:${this.control.tcpAddress.port}` });
    if (this.opts.watch ?? true) {
      this.watcher = new ConfigWatcher(file, () => void this.reload('file changed'), this.log);
      this.watcher.start();
    }
    this.log.info('server ready', { relays: this.state.relays.size, sessions: this.state.sessions.size });
    this.notify?.ready(this.statusLine());
  }

  private statusLine(): string {
    return `serving ${this.state?.relays.size ?? 0} relays, ${this.state?.sessions.size ?? 0} sessions`;
  }

  /** Re-read the file; apply only the difference. An invalid file keeps the running config. */
  async reload(reason: string): Promise<ReloadOutcome> {
    if (!this.state || !this.metrics || this.stopping || this.phase !== 'running') return 'failed';
    this.notify?.reloading();
    try {
      return await this.reloadNow(reason);
    } finally {
      // READY=1 whatever the outcome: the server keeps serving (the old config when refused)
      if (!this.stopping) this.notify?.ready(this.statusLine());
    }
  }

  private async reloadNow(reason: string): Promise<ReloadOutcome> {
    if (!this.state || !this.metrics) return 'failed';
    const file = this.config.file;
    let text: string;
    try {
      text = readText(file);
    } catch (err) {
      return this.reloadFailed(reason, [(err as Error).message]);
    }
    if (text === this.configText && reason === 'file changed') {
      this.log.info('config file unchanged since the last applied load', { reason });
      return 'unchanged';
    }
    let next: Config;
    try {
      next = loadConfig(file);
    } catch (err) {
      const lines = err instanceof ConfigError ? err.problems.map(formatProblem) : [(err as Error).message];
      return this.reloadFailed(reason, lines);
    }
    // keys outside relays/sessions: compared with the file as last loaded
    const outside = diffConfig(this.config, next);
    // in cluster mode relays and sessions come from etcd, not from the file;
    // media_root is read at start (the workers have it): sessions are checked against the running one
    const report = this.cluster ? { diff: diffConfig(next, next), errors: [] } : await this.state.applyConfig({ ...next, mediaRoot: this.config.mediaRoot });
    if (outside.restartRequired.length) {
      this.log.warn('config keys changed that take effect only after a restart', { keys: outside.restartRequired });
    }
    if (outside.logLevelChanged && !this.opts.fixedLogLevel) this.log.setLevel(next.log.level);
    // a partly failed apply is retried by the next change or SIGHUP
    this.configText = report.errors.length ? '' : text;
    // what changes at run time is taken from the new file; the rest stays as started
    this.config = { ...this.config, relays: next.relays, sessions: next.sessions, log: next.log };
    const d = report.diff;
    const summary = {
      reason,
      relaysAdded: d.relaysAdded.map((r) => r.name),
      relaysRemoved: d.relaysRemoved,
      relaysChanged: d.relaysChanged,
      sessionsAdded: d.sessionsAdded.map((s) => s.name),
      sessionsRemoved: d.sessionsRemoved,
    };
    const errors = report.errors.map((e) => `${e.what}: ${(e.err as Error)?.message ?? String(e.err)}`);
    this.events.emit({ type: 'reload_applied', reason, errors });
    if (report.errors.length) {
      this.reloadFailures++;
      this.metrics.configReloadFailures.inc();
      this.log.error('config reload applied with errors', { ...summary, errors });
      return 'failed';
    }
    this.reloads++;
    this.metrics.configReloads.inc();
    this.metrics.configLastReload.setToCurrentTime();
    this.log.info('config reloaded', summary);
    return 'applied';
  }

  private reloadFailed(reason: string, problems: string[]): ReloadOutcome {
    this.reloadFailures++;
    this.metrics?.configReloadFailures.inc();
    this.log.error('config reload refused, keeping the running config', { reason, file: this.config.file, problems });
    this.events.emit({ type: 'reload_refused', reason, problems });
    return 'invalid';
  }

  /** What a piece reported on its own: the state follows, then a log line and an event. */
  private onPieceEvent(e: ServerEvent): void {
    switch (e.type) {
      case 'session_ended':
      case 'session_failed': {
        if (!this.state?.sessionExited(e.session)) return;
        // cluster mode: an ended session is recorded in etcd and not run again;
        // file mode: the next reload (any reason) starts it again when the file still names it
        if (this.cluster && e.type === 'session_ended') this.cluster.sessionEnded?.(e.session);
        else this.configText = '';
        if (e.type === 'session_ended') this.log.info('session ended', { session: e.session });
        else this.log.warn('session failed', { session: e.session, code: e.code, reason: e.reason });
        break;
      }
      case 'session_restarted':
        this.log.warn('session restarted on a new worker', { session: e.session, reason: e.reason });
        break;
      case 'worker_died':
        this.log.error('session worker died', { lane: e.lane, reason: e.reason, sessions: e.sessions, reclaimedSlots: e.reclaimed });
        break;
      case 'relay_fault':
        this.log.warn('relay fault', { relay: e.relay, subscriber: e.subscriber, code: e.code, reason: e.reason });
        break;
      case 'engine_error':
        this.log.error('engine error', { thread: e.thread, code: e.code, reason: e.reason });
        break;
      case 'lane_quarantined':
        this.log.error('lane quarantined', { lane: e.lane, fault: e.fault, faults: e.faults, reason: e.reason });
        break;
      default:
        break;
    }
    this.events.emit(e);
  }

  /**
   * Orderly stop: no more control requests or reloads, sessions stop
   * producing, packets already due within the drain window go out, then the
   * engine stops.
   */
  stop(): Promise<void> {
    if (this.stopping_) return this.stopping_;
    if (this.phase === 'new') {
      this.notify?.close();
      this.phase = 'stopped';
      this.stopping_ = Promise.resolve();
      return this.stopping_;
    }
    this.stopRequested = true;
    this.stopping = true;
    this.notify?.stopping();
    this.stopping_ = (async () => {
      // start() gives up at its next step; what it built is torn down here
      if (this.starting) await this.starting.catch(() => undefined);
      this.phase = 'stopping';
      await this.teardown();
      this.phase = 'stopped';
    })();
    return this.stopping_;
  }

  private async teardown(): Promise<void> {
    const t0 = Date.now();
    this.log.info('server stopping');
    this.watcher?.stop();
    // leave the cluster first: the nodes taking over resume from the last checkpoint
    await this.cluster?.stop().catch((err) => this.log.error('cluster stop failed', { err }));
    // new calls are refused from here; Watch streams stay to see the engine stop
    this.control?.beginStop();
    const st = this.state;
    const hadSessions = (st?.sessions.size ?? 0) > 0;
    if (st) {
      for (const name of [...st.sessions.keys()]) {
        await st.serial(() => st.stopSession(name)).catch((err) => this.log.error('session stop failed', { session: name, err }));
      }
    }
    if (hadSessions && this.config.engine.drainMs > 0) await sleep(this.config.engine.drainMs);
    if (this.deps) {
      // relays are removed while the engine still acks policy messages
      await this.deps.relays.stop?.().catch((err) => this.log.error('relays stop failed', { err }));
      const wasRunning = this.deps.engine.running;
      await this.deps.engine.stop().catch((err) => this.log.error('engine stop failed', { err }));
      if (wasRunning) this.events.emit({ type: 'engine_stopped', reason: 'server stop' });
      await this.deps.sessions.close?.().catch((err) => this.log.error('sessions close failed', { err }));
    }
    await this.control?.stop().catch((err) => this.log.error('control stop failed', { err }));
    await this.http?.stop();
    this.notify?.close();
    this.log.info('server stopped', { ms: Date.now() - t0 });
  }

  private makeControl(c: Config): ControlServer {
    const handler = new CommandHandler({
      state: this.state!,
      mediaRoot: () => this.config.mediaRoot,
      stats: async () => this.stats(),
      requestTimeoutMs: c.control.requestTimeoutMs,
      cluster: this.cluster?.writer?.() ?? null,
      capture: this.deps?.relays.capture ? (relay, o) => this.deps!.relays.capture!(relay, o) : undefined,
      captureSession: this.deps?.sessions.capture ? (s, o) => this.deps!.sessions.capture!(s, o) : undefined,
    });
    const m = this.metrics!;
    const k = c.control;
    return new ControlServer({
      socket: k.socket,
      socketMode: k.socketMode,
      socketGroup: k.socketGroup,
      tcp: k.tcp ? { host: k.tcp.address, port: k.tcp.port } : null,
      tls: k.tls.cert && k.tls.key ? { cert: readPem(k.tls.cert, 'control.tls.cert'), key: readPem(k.tls.key, 'control.tls.key'), clientCa: k.tls.clientCa ? readPem(k.tls.clientCa, 'control.tls.client_ca') : null } : null,
      token: k.token,
      maxMessageBytes: k.maxMessageBytes,
      maxConnections: k.maxConnections,
      maxStreams: k.maxStreams,
      idleMs: k.idleTimeoutMs,
      // the handler answers at request_timeout_ms with the truth (applied or
      // not, changes undone); the transport's timer is only a backstop
      requestTimeoutMs: k.requestTimeoutMs + TRANSPORT_MARGIN_MS,
      handler,
      events: this.events,
      log: this.log,
      onRequest: (command, result) => m.controlRequests.inc({ command, result }),
      onConnection: (transport) => m.controlConnections.inc({ transport }),
      onBadRequest: (reason) => m.controlBadFrames.inc({ reason }),
    });
  }

  /** The control API's Stats: the registry's reflector_* series, the names /metrics uses. */
  private async stats(): Promise<{ engineRunning: boolean; ready: boolean; configReloads: bigint; configReloadFailures: bigint; counters: StatsCounter[] }> {
    const counters: StatsCounter[] = this.metrics ? await seriesOf(this.metrics.registry) : [];
    return { engineRunning: this.deps?.engine.running ?? false, ready: this.ready, configReloads: this.reloads, configReloadFailures: this.reloadFailures, counters };
  }

  private source(): MetricsSource {
    return {
      interfaceName: () => this.config.engine.interface,
      engine: () => (this.deps?.engine.running ? this.deps.engine.counters() : null),
      relayOutputs: () => {
        const out = [];
        for (const r of this.state?.relays.values() ?? []) {
          for (const [k, s] of r.subscribers) {
            const c = this.deps?.relays.outputStats(r.name, s.endpoint);
            if (c) out.push({ relay: r.name, subscriber: k, ...c });
          }
        }
        return out;
      },
      relays: () => {
        const out = [];
        for (const name of this.state?.relays.keys() ?? []) {
          const c = this.deps?.relays.relayStats?.(name);
          if (c) out.push({ relay: name, ...c });
        }
        return out;
      },
      sessions: () => {
        const out = [];
        for (const name of this.state?.sessions.keys() ?? []) {
          const c = this.deps?.sessions.stats(name);
          if (c) out.push({ session: name, ...c });
        }
        return out;
      },
      rings: () => (this.deps?.engine.running ? this.deps.engine.rings() : []),
      pool: () => (this.deps?.engine.running ? this.deps.engine.pool() : null),
      lanes: () => (this.deps?.engine.running ? (this.deps.engine.lanes?.() ?? []) : []),
      relayCount: () => this.state?.relays.size ?? 0,
      sessionCount: () => this.state?.sessions.size ?? 0,
      ready: () => this.ready,
      clusterConnected: () => (this.cluster ? this.cluster.connected : null),
      captureDropped: () => (this.deps?.engine.running && this.deps.relays.captureDropped ? this.deps.relays.captureDropped() : null),
    };
  }
}

function readPem(file: string, key: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new ReflectorError('ERR_CONFIG', `${key}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ReflectorError('ERR_CONFIG', `cannot read config file ${file}: ${(err as Error).message}`, { cause: err });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
