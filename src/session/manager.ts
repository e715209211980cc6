// SPDX-License-Identifier: MIT
// On-demand sessions on the main thread: spreads sessions over a Piscina pool
// of session workers, resolves each destination here (neighbour tables, one
// lookup per next hop) and hands it to the worker as small control data.
// The workers read the files, packetize into pool slots and submit one
// aggregate per window; this thread never touches a packet.
//
// Design: Piscina tasks are request/reply, a session worker runs for the
// pool's life. So each worker runs ONE long task (workers/session-worker.ts)
// that owns a MessagePort; start/stop/stats are requests on that port with
// ids and a pending map (rejected with ERR_CLOSED on close(), ERR_WORKER when
// the worker dies), as mediasoup's Channel does.
//
// Supervision (mediasoup's Worker 'died', piscina's crash handling): a
// worker whose task fails (an uncaught error, process.exit in the worker) or
// whose heartbeat stands still for hangMs (it is then terminated) is dead.
// Its pending requests are rejected, `workerdied` is emitted, its lane's
// slots are reclaimed once the engine has given back everything in flight
// (src/session/reclaim.ts), and a new worker takes the lane over. Its
// sessions start again there from the top of their files (same stream ids,
// so their counters go on), `restarted` each; a session whose worker died
// more than restartLimit times within restartWindowMs fails instead
// (`failed`, ERR_WORKER, with the reason). Sessions that end or fail on
// their own leave with `ended` / `failed`.
import { captureSession, captureSessionToFile } from '../capture/session-capture';
import type { CaptureOptions, CaptureResult, CaptureSummary, CapturedPacket } from '../capture/capture';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { adoptChild, disownChild } from '../engine/children';
import { ReflectorError, invalidArg, type ReflectorErrorCode } from '../errors';
import { MEDIA_FORMATS, type MediaFormat } from '../media/load';
import { checkName } from '../names';
import { parseEndpoint, type Endpoint } from '../net/address';
import { destinationFromHop, hopOf, type DestinationOptions } from '../net/destination';
import { NEXT_HOP_TTL_MS, type NextHop } from '../net/neighbour';
import type { Destination } from '../region/lane';
import type { Region } from '../region/region';
import type { ControlRequest, PumpTask, SessionCounters, SessionInfo, StartRequest, WorkerMessage } from './protocol';
import { reclaimLane } from './reclaim';

export type { SessionCounters, SessionInfo };

export interface SessionManagerOptions {
  /** The engine's region (engine.region). It needs workers + 1 lanes. */
  region: Region;
  /** Session workers (Piscina threads); default 2. */
  workers?: number;
  /** Each worker gathers this window of packets of all its sessions into one aggregate; default 20 ms. */
  windowMs?: number;
  /** How far ahead packets are handed to the engine; default 2 windows. */
  leadMs?: number;
  /** A session's first packet leaves this long after start(); default 50 ms. */
  startDelayMs?: number;
  /** A worker later than this moves the session's schedule instead of bursting; default 20 ms. */
  lateLimitMs?: number;
  /** How destinations are resolved; default: next hop from the kernel (src/net/neighbour.ts), cached per address for NEXT_HOP_TTL_MS. */
  resolveDestination?: (to: Endpoint) => Promise<Destination>;
  /** Options of the default resolver: the engine's namespace and interface, the UDP source port. */
  destination?: DestinationOptions;
  /** Control request timeout; default 5 s. */
  requestTimeoutMs?: number;
  /** media_root: workers open only files whose real path is inside this folder; default: any file. */
  mediaRoot?: string;
  /** A worker whose heartbeat stands still this long is hung: terminated and replaced; default 5000 ms. */
  hangMs?: number;
  /** A session is restarted after at most this many worker deaths within restartWindowMs, then fails; default 2. */
  restartLimit?: number;
  restartWindowMs?: number;
  /** The worker entry (tests pass fault-injecting fixtures); default workers/session-worker.js. */
  workerFile?: string;
}

export interface SessionStartOptions {
  format?: MediaFormat;
  loop?: boolean;
  /** bits/s, for MPEG-TS without PCR (or with pace 'bitrate') */
  bitrate?: number;
  pace?: 'pcr' | 'bitrate';
  /** CLOCK_MONOTONIC ns of the first packet */
  startAt?: bigint;
  /** RTP SSRC (random by default) */
  ssrc?: number;
  /** continue from this packet and pass (a checkpoint: SessionCounters.position) instead of the beginning */
  resume?: { packet: number; pass: number };
}

export interface SessionStats {
  info: SessionInfo;
  /** the engine's counters of the session's stream (sent, late, dropped) since the session started */
  engine: { packets: bigint; bytes: bigint; late: bigint; dropped: bigint };
  /** the worker's counters */
  worker: SessionCounters;
}

/** What `workerdied` carries. */
export interface WorkerDeath {
  lane: number;
  error: ReflectorError;
  /** sessions it ran: each is then `restarted` or `failed` */
  sessions: string[];
  /** slots its lane got back (null: the engine did not give everything back in time, none reclaimed) */
  reclaimed: number | null;
}

interface WorkerHandle {
  port: MessagePort;
  lane: number;
  destCount: number;
  sessions: number;
  threadId: number;
  beat: Int32Array;
  lastBeat: number;
  lastBeatAt: number;
  state: 'starting' | 'ready' | 'dead';
  done: Promise<unknown>;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  worker: WorkerHandle;
}

interface Entry {
  info: SessionInfo;
  worker: WorkerHandle;
  base: { packets: bigint; bytes: bigint; late: bigint; dropped: bigint };
  /** the start request, to start it again on another worker */
  req: StartRequest;
  /** times its worker died */
  deaths: number[];
  /** set while it moves to a new worker */
  moving?: Promise<void>;
}

const WORKER_FILE = join(__dirname, '..', '..', 'workers', 'session-worker.js');
const OPTION_KEYS = [
  'region', 'workers', 'windowMs', 'leadMs', 'startDelayMs', 'lateLimitMs', 'resolveDestination', 'destination', 'requestTimeoutMs',
  'mediaRoot', 'hangMs', 'restartLimit', 'restartWindowMs', 'workerFile',
];
const STREAM_QUARANTINE_MS = 2000;
/** close(): how long workers get to shut down before they are terminated */
const SHUTDOWN_GRACE_MS = 2000;

// Lanes are claimed for a region's life (rf_region_hdr.lane_claim only
// grows): the lanes of a closed manager go back here, for the next manager
// of the same region (an engine restart, a reload), after the quarantine.
const idleLanes = new WeakMap<SharedArrayBuffer, { lanes: number[]; until: number }>();

export class SessionManager extends EventEmitter {
  private readonly region: Region;
  private readonly opts: Required<Pick<SessionManagerOptions, 'workers' | 'windowMs' | 'leadMs' | 'startDelayMs' | 'lateLimitMs' | 'requestTimeoutMs' | 'hangMs' | 'restartLimit' | 'restartWindowMs'>>;
  private readonly resolver: (to: Endpoint) => Promise<Destination>;
  private readonly mediaRoot: string | undefined;
  private readonly workerFile: string;
  private pool: Piscina | undefined;
  private workers: WorkerHandle[] = [];
  private readonly sessions = new Map<string, Entry>();
  private readonly starting = new Set<string>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly freeStreams: number[] = [];
  private readonly quarantinedStreams: Array<{ stream: number; until: number }> = [];
  private hangTimer: NodeJS.Timeout | null = null;
  private readonly recoveries = new Set<Promise<void>>();
  private closed = false;
  private closing: Promise<void> | null = null;

  private constructor(opts: SessionManagerOptions) {
    super();
    if (opts === null || typeof opts !== 'object') throw invalidArg('sessions: expected an options object');
    for (const k of Object.keys(opts)) {
      if (!OPTION_KEYS.includes(k)) throw invalidArg(`sessions.${k} is not an option (accepted: ${OPTION_KEYS.join(', ')})`);
    }
    if (!opts.region || !(opts.region.sab instanceof SharedArrayBuffer)) throw invalidArg('sessions.region: expected the engine\'s Region (engine.region)');
    const int = (k: string, v: number | undefined, def: number, lo: number, hi: number): number => {
      const x = v ?? def;
      if (typeof x !== 'number' || !Number.isFinite(x) || x < lo || x > hi) throw invalidArg(`sessions.${k}: ${String(v)} is not in ${lo}..${hi}`);
      return x;
    };
    this.region = opts.region;
    const windowMs = int('windowMs', opts.windowMs, 20, 1, 1000);
    this.opts = {
      workers: int('workers', opts.workers, 2, 1, 63),
      windowMs,
      leadMs: int('leadMs', opts.leadMs, 2 * windowMs, windowMs, 10_000),
      startDelayMs: int('startDelayMs', opts.startDelayMs, 50, 0, 10_000),
      lateLimitMs: int('lateLimitMs', opts.lateLimitMs, 20, 1, 10_000),
      requestTimeoutMs: int('requestTimeoutMs', opts.requestTimeoutMs, 5000, 1, 600_000),
      hangMs: int('hangMs', opts.hangMs, 5000, 10 * windowMs, 600_000),
      restartLimit: int('restartLimit', opts.restartLimit, 2, 0, 1000),
      restartWindowMs: int('restartWindowMs', opts.restartWindowMs, 60_000, 0, 86_400_000),
    };
    if (!Number.isInteger(this.opts.workers)) throw invalidArg(`sessions.workers: ${this.opts.workers} is not an integer`);
    if (this.opts.workers + 1 > this.region.laneCount) {
      throw invalidArg(`sessions.workers: ${this.opts.workers} workers need ${this.opts.workers + 1} lanes, the region has ${this.region.laneCount} (region.lanes)`);
    }
    if (opts.mediaRoot !== undefined && (typeof opts.mediaRoot !== 'string' || opts.mediaRoot === '')) throw invalidArg('sessions.mediaRoot: expected a folder path');
    this.mediaRoot = opts.mediaRoot;
    this.workerFile = opts.workerFile ?? WORKER_FILE;
    this.resolver = opts.resolveDestination ?? cachedResolver(opts.destination ?? {});
    for (let s = this.region.maxStreams - 1; s >= 0; s--) this.freeStreams.push(s);
  }

  /** Start the worker pool; resolves when every worker has claimed its lane. */
  static async create(opts: SessionManagerOptions): Promise<SessionManager> {
    const m = new SessionManager(opts);
    await m.open();
    return m;
  }

  private async open(): Promise<void> {
    const n = this.opts.workers;
    const idle = idleLanes.get(this.region.sab);
    const reuse = idle ? idle.lanes.splice(0, n) : [];
    // descriptors of the previous manager may still name these lanes' destinations
    if (reuse.length > 0 && idle!.until > Date.now()) await new Promise((r) => setTimeout(r, idle!.until - Date.now()));
    // slots the previous manager's workers still held when they stopped
    const spares = await Promise.all(reuse.map((l) => reclaimLane(this.region, l, 1000)));
    this.pool = new Piscina({ filename: this.workerFile, minThreads: n, maxThreads: n, idleTimeout: Infinity, concurrentTasksPerWorker: 1 });
    // a worker that dies with no task is Piscina's to replace; ours report through their task
    this.pool.on('error', () => undefined);
    const ready: Array<Promise<void>> = [];
    for (let i = 0; i < n; i++) {
      const h = this.spawn(reuse[i], spares[i] ?? undefined);
      this.workers.push(h.handle);
      ready.push(h.ready);
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await this.close();
      throw e;
    }
    adoptChild(this.region.sab, this, 'sessions');
    this.hangTimer = setInterval(() => this.checkHeartbeats(), Math.max(10, Math.min(1000, this.opts.hangMs / 4)));
    this.hangTimer.unref();
  }

  /** Run one worker task on `lane` (undefined: the worker claims a new one). */
  private spawn(lane: number | undefined, spares: number[] | undefined): { handle: WorkerHandle; ready: Promise<void> } {
    const { port1, port2 } = new MessageChannel();
    const heartbeat = new SharedArrayBuffer(4);
    const task: PumpTask = {
      sab: this.region.sab,
      port: port2 as unknown as PumpTask['port'],
      lane,
      windowMs: this.opts.windowMs,
      leadMs: this.opts.leadMs,
      startDelayMs: this.opts.startDelayMs,
      lateLimitMs: this.opts.lateLimitMs,
      spares,
      heartbeat,
      mediaRoot: this.mediaRoot,
    };
    const handle: WorkerHandle = {
      port: port1, lane: -1, destCount: 0, sessions: 0, threadId: -1, beat: new Int32Array(heartbeat), lastBeat: 0, lastBeatAt: Date.now(),
      state: 'starting', done: Promise.resolve(),
    };
    const ready = new Promise<void>((resolve, reject) => {
      port1.on('message', (m: WorkerMessage) => {
        if (m.op === 'ready') {
          handle.lane = m.lane;
          handle.destCount = m.destCount;
          handle.threadId = m.threadId;
          handle.lastBeatAt = Date.now();
          handle.state = 'ready';
          resolve();
        }
        this.onMessage(handle, m);
      });
      handle.done = this.pool!.run(task, { transferList: [port2] }).then(
        () => undefined,
        (e: Error) => {
          const err = new ReflectorError('ERR_WORKER', `session worker${handle.lane >= 0 ? ` (lane ${handle.lane})` : ''} died: ${e.message}`, { cause: e });
          if (handle.state === 'starting') reject(new ReflectorError('ERR_ENGINE_START', err.message, { cause: e }));
          this.onDeath(handle, err);
        },
      );
    });
    return { handle, ready };
  }

  /** Shut every worker down (sessions stop; packets already handed over still leave) and end the pool. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    if (this.hangTimer) clearInterval(this.hangTimer);
    this.hangTimer = null;
    disownChild(this.region.sab, this);
    await Promise.allSettled([...this.recoveries]);
    const live = this.workers.filter((w) => w.state === 'ready');
    await Promise.all(live.map((w) => this.request(w, { op: 'shutdown', id: 0 }, SHUTDOWN_GRACE_MS).catch(() => undefined)));
    // a hung worker never finishes its task: the pool's destroy() ends it
    await Promise.race([Promise.allSettled(this.workers.map((w) => w.done)), new Promise((r) => setTimeout(r, SHUTDOWN_GRACE_MS).unref())]);
    this.rejectPending(() => true, (id) => new ReflectorError('ERR_CLOSED', `sessions: closed while request ${id} was pending`));
    for (const w of this.workers) {
      w.port.close();
      w.state = 'dead';
    }
    this.sessions.clear();
    await this.pool?.destroy();
    const lanes = [...new Set(this.workers.filter((w) => w.lane >= 0).map((w) => w.lane))];
    if (lanes.length > 0) {
      const idle = idleLanes.get(this.region.sab) ?? { lanes: [], until: 0 };
      idle.lanes.push(...lanes);
      idle.until = Date.now() + STREAM_QUARANTINE_MS;
      idleLanes.set(this.region.sab, idle);
    }
  }

  /** Names of the running sessions. */
  names(): string[] {
    return [...this.sessions.keys()];
  }

  /** Workers that run now (a dead one counts until its replacement is ready). */
  get workerCount(): number {
    return this.workers.filter((w) => w.state === 'ready').length;
  }

  /**
   * Start streaming `file` to `to` ("ADDR:PORT" or an Endpoint) as `format`.
   * Rejects with ERR_MEDIA (naming the file and byte offset) for a bad file,
   * ERR_NO_NEIGHBOUR when the destination cannot be resolved, ERR_INVALID_ARG
   * for a bad argument or a name already running.
   */
  async start(name: string, file: string, to: Endpoint | string, format: MediaFormat = 'mpegts', loop = false, extra: SessionStartOptions = {}): Promise<SessionInfo> {
    this.checkOpen();
    checkName('session', name, 'session name');
    if (this.sessions.has(name) || this.starting.has(name)) throw invalidArg(`session "${name}" is already running`);
    if (typeof file !== 'string' || file === '') throw invalidArg(`session "${name}": file ${JSON.stringify(file)} is not a path`);
    if (!MEDIA_FORMATS.includes(format)) throw invalidArg(`session "${name}": format "${String(format)}" is not one of ${MEDIA_FORMATS.join(', ')}`);
    if (typeof loop !== 'boolean') throw invalidArg(`session "${name}": loop ${JSON.stringify(loop)} is not true or false`);
    const endpoint = typeof to === 'string' ? parseEndpoint(to, `session "${name}" to`) : to;
    this.starting.add(name);
    let stream = -1;
    try {
      const dest = await this.resolver(endpoint);
      this.checkOpen();
      const worker = this.pickWorker();
      stream = this.takeStream();
      const base = this.region.streamCounters(stream);
      const req: StartRequest = {
        op: 'start',
        id: 0,
        name,
        stream,
        file,
        format,
        loop,
        dest,
        bitrate: extra.bitrate,
        pace: extra.pace,
        startAt: extra.startAt === undefined ? undefined : Number(extra.startAt),
        ssrc: extra.ssrc,
        resume: extra.resume,
      };
      worker.sessions++;
      let info: SessionInfo;
      try {
        info = (await this.request(worker, req)) as SessionInfo;
      } catch (e) {
        worker.sessions--;
        throw e;
      }
      this.sessions.set(name, { info, worker, base, req: { ...req, startAt: undefined }, deaths: [] });
      // its worker died while it started: it moves with the others
      if (worker.state === 'dead') this.move(this.sessions.get(name)!, worker);
      return info;
    } catch (e) {
      if (stream >= 0) this.freeStreams.push(stream); // never used by a packet
      throw e;
    } finally {
      this.starting.delete(name);
    }
  }

  /** Stop a session; resolves with its final stats. */
  async stop(name: string): Promise<SessionStats> {
    this.checkOpen();
    let e = this.sessions.get(name);
    if (!e) throw invalidArg(`session "${name}" is not running (running: ${this.names().slice(0, 10).join(', ') || 'none'})`);
    // on its way to a new worker: stop it there
    while (e?.moving) {
      await e.moving;
      e = this.sessions.get(name);
    }
    if (!e) throw invalidArg(`session "${name}" is not running (it failed while its worker was replaced)`);
    const entry = e;
    let worker: SessionCounters;
    try {
      worker = (await this.request(entry.worker, { op: 'stop', id: 0, name })) as SessionCounters;
    } catch (err) {
      // it ended on its own while the stop was on its way: stopped all the same
      if (this.sessions.get(name) !== entry) return { info: entry.info, engine: this.engineDelta(entry), worker: emptyCounters() };
      throw err;
    }
    const stats = { info: entry.info, engine: this.engineDelta(entry), worker };
    if (this.sessions.get(name) === entry) this.forget(name, entry);
    return stats;
  }

  /** Stats of every running session (engine counters since its start + the worker's). */
  async stats(): Promise<Record<string, SessionStats>> {
    this.checkOpen();
    const live = this.workers.filter((w) => w.state === 'ready');
    const per = await Promise.all(live.map((w) => (this.request(w, { op: 'stats', id: 0 }) as Promise<Record<string, SessionCounters>>).catch(() => ({}))));
    const out: Record<string, SessionStats> = {};
    for (const counters of per) {
      for (const [name, worker] of Object.entries(counters)) {
        const e = this.sessions.get(name);
        if (e) out[name] = { info: e.info, engine: this.engineDelta(e), worker };
      }
    }
    return out;
  }

  /**
   * Capture the frames session `name` sends (as the engine hands them to the
   * port) into a nanosecond pcap file, bounded by count / seconds; ends
   * early when the session does (src/capture/session-capture.ts).
   */
  captureToFile(name: string, file: string, opts: CaptureOptions): Promise<CaptureSummary> {
    const e = this.sessions.get(name);
    if (!e) return Promise.reject(invalidArg(`session "${name}" is not running (sessions: ${this.names().join(', ') || 'none'})`));
    return captureSessionToFile(this.region, name, e.info.stream, file, opts, () => this.sessions.get(name) === e);
  }

  /** The frames session `name` sends, as an async generator (captureToFile's source; the control API's Capture). */
  async *capture(name: string, opts: CaptureOptions): AsyncGenerator<CapturedPacket, CaptureResult> {
    const e = this.sessions.get(name);
    if (!e) throw invalidArg(`session "${name}" is not running (sessions: ${this.names().join(', ') || 'none'})`);
    return yield* captureSession(this.region, name, e.info.stream, opts, () => this.sessions.get(name) === e);
  }

  /** The engine's counters of a running session's stream since the session started. */
  engineCounters(name: string): SessionStats['engine'] {
    const e = this.sessions.get(name);
    if (!e) throw invalidArg(`session "${name}" is not running`);
    return this.engineDelta(e);
  }

  private engineDelta(e: Entry): SessionStats['engine'] {
    const now = this.region.streamCounters(e.info.stream);
    return {
      packets: now.packets - e.base.packets,
      bytes: now.bytes - e.base.bytes,
      late: now.late - e.base.late,
      dropped: now.dropped - e.base.dropped,
    };
  }

  private forget(name: string, e: Entry): void {
    this.sessions.delete(name);
    e.worker.sessions--;
    // packets of this stream may still be in flight: its counters are not reused at once
    this.quarantinedStreams.push({ stream: e.info.stream, until: Date.now() + STREAM_QUARANTINE_MS });
  }

  private takeStream(): number {
    const now = Date.now();
    while (this.quarantinedStreams.length > 0 && this.quarantinedStreams[0].until <= now) {
      this.freeStreams.push((this.quarantinedStreams.shift() as { stream: number }).stream);
    }
    const s = this.freeStreams.pop();
    if (s === undefined) {
      throw invalidArg(`sessions: all ${this.region.maxStreams} stream ids are in use (region maxStreams)`);
    }
    return s;
  }

  private pickWorker(): WorkerHandle {
    let best: WorkerHandle | undefined;
    for (const w of this.workers) {
      if (w.state !== 'ready' || w.sessions >= w.destCount) continue;
      if (!best || w.sessions < best.sessions) best = w;
    }
    if (!best) {
      const ready = this.workers.filter((w) => w.state === 'ready');
      if (ready.length === 0) throw new ReflectorError('ERR_WORKER', 'sessions: no session worker is running (a replacement is starting)');
      const total = ready.reduce((a, w) => a + w.destCount, 0);
      throw invalidArg(`sessions: all ${total} destination entries of the ${ready.length} workers are in use (region destsPerLane)`);
    }
    return best;
  }

  private checkOpen(): void {
    if (this.closed) throw new ReflectorError('ERR_CLOSED', 'sessions: the session manager is closed');
  }

  private request(w: WorkerHandle, req: ControlRequest, timeoutMs = this.opts.requestTimeoutMs): Promise<unknown> {
    if (w.state === 'dead') return Promise.reject(new ReflectorError('ERR_WORKER', `session worker (lane ${w.lane}) is dead`));
    const id = this.nextId++;
    const msg = { ...req, id };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ReflectorError('ERR_CONTROL', `session worker (lane ${w.lane}): no reply to "${req.op}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, worker: w });
      w.port.postMessage(msg);
    });
  }

  private rejectPending(which: (p: Pending) => boolean, error: (id: number) => Error): void {
    for (const [id, p] of this.pending) {
      if (!which(p)) continue;
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(error(id));
    }
  }

  private onMessage(w: WorkerHandle, m: WorkerMessage): void {
    switch (m.op) {
      case 'reply': {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.ok) p.resolve(m.result);
        else p.reject(new ReflectorError(m.code as ReflectorErrorCode, m.message));
        return;
      }
      case 'ended':
      case 'failed': {
        const e = this.sessions.get(m.name);
        // only the session this worker runs (a name started again elsewhere is another one)
        if (!e || e.worker !== w) return;
        const stats: SessionStats = { info: e.info, engine: this.engineDelta(e), worker: m.counters };
        this.forget(m.name, e);
        if (m.op === 'ended') this.emit('ended', m.name, stats);
        else this.emit('failed', m.name, new ReflectorError(m.code, m.message), stats);
        return;
      }
      case 'ready':
        return;
    }
  }

  // ------------------------------------------------------- supervision --

  private checkHeartbeats(): void {
    const now = Date.now();
    for (const w of this.workers) {
      if (w.state !== 'ready') continue;
      const b = Atomics.load(w.beat, 0);
      if (b !== w.lastBeat) {
        w.lastBeat = b;
        w.lastBeatAt = now;
        continue;
      }
      if (now - w.lastBeatAt < this.opts.hangMs) continue;
      this.onDeath(w, new ReflectorError('ERR_WORKER', `session worker (lane ${w.lane}) hung: no heartbeat for ${now - w.lastBeatAt} ms`));
      // its task then fails; onDeath() has already taken over
      const thread = this.pool?.threads.find((t) => t.threadId === w.threadId);
      void thread?.terminate();
    }
  }

  /** A worker is dead: fail its requests, reclaim its lane, move its sessions to a replacement. */
  private onDeath(w: WorkerHandle, error: ReflectorError): void {
    if (w.state === 'dead') return;
    const wasReady = w.state === 'ready';
    w.state = 'dead';
    this.rejectPending((p) => p.worker === w, () => error);
    if (this.closed || !wasReady) return;
    const affected = [...this.sessions.values()].filter((e) => e.worker === w);
    const recovery = this.recover(w, error, affected);
    this.recoveries.add(recovery);
    void recovery.finally(() => this.recoveries.delete(recovery));
  }

  private async recover(w: WorkerHandle, error: ReflectorError, affected: Entry[]): Promise<void> {
    let release!: () => void;
    const moved = new Promise<void>((r) => (release = r));
    for (const e of affected) e.moving = moved;
    try {
      const lost = await reclaimLane(this.region, w.lane);
      this.emit('workerdied', { lane: w.lane, error, sessions: affected.map((e) => e.info.name), reclaimed: lost === null ? null : lost.length } satisfies WorkerDeath);
      if (this.closed) return;
      const next = this.spawn(w.lane, lost ?? undefined);
      this.workers = this.workers.map((x) => (x === w ? next.handle : x));
      try {
        await next.ready;
      } catch (e) {
        for (const s of affected) this.failMoved(s, e instanceof ReflectorError ? e : error);
        return;
      }
      for (const s of affected) await this.restartOn(s, next.handle, error);
    } finally {
      for (const e of affected) if (e.moving === moved) e.moving = undefined;
      release();
    }
  }

  /** A session that started on a worker that died meanwhile: it joins that worker's recovery. */
  private move(e: Entry, w: WorkerHandle): void {
    void (async () => {
      await Promise.allSettled([...this.recoveries]);
      const next = this.workers.find((x) => x.lane === w.lane && x.state === 'ready');
      if (next && this.sessions.get(e.info.name) === e) await this.restartOn(e, next, new ReflectorError('ERR_WORKER', `session worker (lane ${w.lane}) died`));
      else if (this.sessions.get(e.info.name) === e) this.failMoved(e, new ReflectorError('ERR_WORKER', `session worker (lane ${w.lane}) died`));
    })();
  }

  private async restartOn(e: Entry, w: WorkerHandle, error: ReflectorError): Promise<void> {
    const name = e.info.name;
    if (this.sessions.get(name) !== e || this.closed) return;
    const now = Date.now();
    e.deaths = [...e.deaths.filter((t) => now - t < this.opts.restartWindowMs), now];
    if (e.deaths.length > this.opts.restartLimit) {
      this.failMoved(e, new ReflectorError('ERR_WORKER', `${error.message}; its worker died ${e.deaths.length} times within ${this.opts.restartWindowMs} ms, not restarted again`));
      return;
    }
    try {
      w.sessions++;
      const info = (await this.request(w, { ...e.req, id: 0 })) as SessionInfo;
      e.worker.sessions--;
      e.worker = w;
      e.info = info;
      this.emit('restarted', name, error);
    } catch (err) {
      w.sessions--;
      this.failMoved(e, err instanceof ReflectorError ? err : new ReflectorError('ERR_WORKER', String(err)));
    }
  }

  private failMoved(e: Entry, error: ReflectorError): void {
    const name = e.info.name;
    if (this.sessions.get(name) !== e) return;
    const stats: SessionStats = { info: e.info, engine: this.engineDelta(e), worker: emptyCounters() };
    this.forget(name, e);
    this.emit('failed', name, error, stats);
  }
}

function emptyCounters(): SessionCounters {
  return { packets: 0, bytes: 0, passes: 0, rebases: 0, slotWaits: 0, oversize: 0, media: {}, position: { packet: 0, pass: 0 } };
}

/**
 * Next hops resolved once per address (thousands of sessions often share a
 * few) and used for NEXT_HOP_TTL_MS: a neighbour that changed is picked up by
 * the next session that starts after that.
 */
function cachedResolver(opts: DestinationOptions): (to: Endpoint) => Promise<Destination> {
  const hops = new Map<string, { hop: Promise<NextHop>; at: number }>();
  return async (to: Endpoint): Promise<Destination> => {
    const now = Date.now();
    let known = hops.get(to.address);
    if (!known || now - known.at >= NEXT_HOP_TTL_MS) {
      const hop = hopOf(to, opts).then((h) => {
        if (opts.dev !== undefined && h.dev !== opts.dev) {
          throw new ReflectorError('ERR_NO_NEIGHBOUR', `route to ${to.address} leaves through ${h.dev}, not through the engine's interface ${opts.dev}`);
        }
        return h;
      });
      known = { hop, at: now };
      hops.set(to.address, known);
      const mine = known;
      hop.catch(() => {
        if (hops.get(to.address) === mine) hops.delete(to.address);
      });
      // expired entries of addresses nobody asks for again
      for (const [a, k] of hops) if (now - k.at >= NEXT_HOP_TTL_MS) hops.delete(a);
    }
    return destinationFromHop(to, await known.hop, { srcPort: opts.srcPort, ttl: opts.ttl, dscp: opts.dscp });
  };
}
