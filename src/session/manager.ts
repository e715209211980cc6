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
// ids and a pending map (rejected with ERR_CLOSED on close()).
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { ReflectorError, invalidArg, type ReflectorErrorCode } from '../errors';
import { MEDIA_FORMATS, type MediaFormat } from '../media/load';
import { parseEndpoint, type Endpoint } from '../net/address';
import { destinationFromHop, type DestinationOptions } from '../net/destination';
import { resolveNextHop, type NextHop } from '../net/neighbour';
import type { Destination } from '../region/lane';
import type { Region } from '../region/region';
import type { ControlRequest, PumpTask, SessionCounters, SessionInfo, WorkerMessage } from './protocol';

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
  /** How destinations are resolved; default: next hop from the kernel (src/net/neighbour.ts), cached per address. */
  resolveDestination?: (to: Endpoint) => Promise<Destination>;
  /** Options of the default resolver: the engine's namespace and interface, the UDP source port. */
  destination?: DestinationOptions;
  /** Control request timeout; default 5 s. */
  requestTimeoutMs?: number;
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

interface WorkerHandle {
  port: MessagePort;
  lane: number;
  destCount: number;
  sessions: number;
  done: Promise<unknown>;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface Entry {
  info: SessionInfo;
  worker: WorkerHandle;
  base: { packets: bigint; bytes: bigint; late: bigint; dropped: bigint };
}

const WORKER_FILE = join(__dirname, '..', '..', 'workers', 'session-worker.js');
const OPTION_KEYS = ['region', 'workers', 'windowMs', 'leadMs', 'startDelayMs', 'lateLimitMs', 'resolveDestination', 'destination', 'requestTimeoutMs'];
const STREAM_QUARANTINE_MS = 2000;

// Lanes are claimed for a region's life (rf_region_hdr.lane_claim only
// grows): the lanes of a closed manager go back here, for the next manager
// of the same region (an engine restart, a reload), after the quarantine.
const idleLanes = new WeakMap<SharedArrayBuffer, { lanes: number[]; until: number }>();

export class SessionManager extends EventEmitter {
  private readonly region: Region;
  private readonly opts: Required<Pick<SessionManagerOptions, 'workers' | 'windowMs' | 'leadMs' | 'startDelayMs' | 'lateLimitMs' | 'requestTimeoutMs'>>;
  private readonly resolver: (to: Endpoint) => Promise<Destination>;
  private pool: Piscina | undefined;
  private workers: WorkerHandle[] = [];
  private readonly sessions = new Map<string, Entry>();
  private readonly starting = new Set<string>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly freeStreams: number[] = [];
  private readonly quarantinedStreams: Array<{ stream: number; until: number }> = [];
  private closed = false;

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
    };
    if (!Number.isInteger(this.opts.workers)) throw invalidArg(`sessions.workers: ${this.opts.workers} is not an integer`);
    if (this.opts.workers + 1 > this.region.laneCount) {
      throw invalidArg(`sessions.workers: ${this.opts.workers} workers need ${this.opts.workers + 1} lanes, the region has ${this.region.laneCount} (region.lanes)`);
    }
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
    this.pool = new Piscina({ filename: WORKER_FILE, minThreads: n, maxThreads: n, idleTimeout: Infinity, concurrentTasksPerWorker: 1 });
    const ready: Array<Promise<void>> = [];
    for (let i = 0; i < n; i++) {
      const { port1, port2 } = new MessageChannel();
      const task: PumpTask = {
        sab: this.region.sab,
        port: port2 as unknown as PumpTask['port'],
        lane: reuse[i],
        windowMs: this.opts.windowMs,
        leadMs: this.opts.leadMs,
        startDelayMs: this.opts.startDelayMs,
        lateLimitMs: this.opts.lateLimitMs,
      };
      const handle: WorkerHandle = { port: port1, lane: -1, destCount: 0, sessions: 0, done: Promise.resolve() };
      ready.push(
        new Promise<void>((resolve, reject) => {
          const onFirst = (m: WorkerMessage): void => {
            if (m.op === 'ready') {
              handle.lane = m.lane;
              handle.destCount = m.destCount;
              resolve();
            }
          };
          port1.on('message', (m: WorkerMessage) => {
            onFirst(m);
            this.onMessage(handle, m);
          });
          handle.done = this.pool!.run(task, { transferList: [port2] }).catch((e: Error) => {
            reject(new ReflectorError('ERR_ENGINE_START', `session worker ${i}: ${e.message}`, { cause: e }));
            // a worker that died takes its sessions with it: tell whoever listens
            if (this.listenerCount('error') > 0) this.emit('error', e);
          });
        }),
      );
      this.workers.push(handle);
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  /** Shut every worker down (sessions stop; packets already handed over still leave) and end the pool. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      this.workers.filter((w) => w.lane >= 0).map((w) => this.request(w, { op: 'shutdown', id: 0 }).catch(() => undefined)),
    );
    await Promise.all(this.workers.map((w) => w.done));
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ReflectorError('ERR_CLOSED', `sessions: closed while request ${id} was pending`));
    }
    this.pending.clear();
    for (const w of this.workers) w.port.close();
    this.sessions.clear();
    await this.pool?.destroy();
    const lanes = this.workers.filter((w) => w.lane >= 0).map((w) => w.lane);
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

  /**
   * Start streaming `file` to `to` ("ADDR:PORT" or an Endpoint) as `format`.
   * Rejects with ERR_MEDIA (naming the file and byte offset) for a bad file,
   * ERR_NO_NEIGHBOUR when the destination cannot be resolved, ERR_INVALID_ARG
   * for a bad argument or a name already running.
   */
  async start(name: string, file: string, to: Endpoint | string, format: MediaFormat = 'mpegts', loop = false, extra: SessionStartOptions = {}): Promise<SessionInfo> {
    this.checkOpen();
    if (typeof name !== 'string' || name === '') throw invalidArg(`session name: ${JSON.stringify(name)} is not a non-empty string`);
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
      worker.sessions++;
      let info: SessionInfo;
      try {
        info = (await this.request(worker, {
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
        })) as SessionInfo;
      } catch (e) {
        worker.sessions--;
        throw e;
      }
      this.sessions.set(name, { info, worker, base });
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
    const e = this.sessions.get(name);
    if (!e) throw invalidArg(`session "${name}" is not running (running: ${this.names().slice(0, 10).join(', ') || 'none'})`);
    const worker = (await this.request(e.worker, { op: 'stop', id: 0, name })) as SessionCounters;
    const stats = { info: e.info, engine: this.engineDelta(e), worker };
    this.forget(name, e);
    return stats;
  }

  /** Stats of every running session (engine counters since its start + the worker's). */
  async stats(): Promise<Record<string, SessionStats>> {
    this.checkOpen();
    const per = await Promise.all(this.workers.map((w) => this.request(w, { op: 'stats', id: 0 }) as Promise<Record<string, SessionCounters>>));
    const out: Record<string, SessionStats> = {};
    for (const counters of per) {
      for (const [name, worker] of Object.entries(counters)) {
        const e = this.sessions.get(name);
        if (e) out[name] = { info: e.info, engine: this.engineDelta(e), worker };
      }
    }
    return out;
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
      if (w.lane < 0 || w.sessions >= w.destCount) continue;
      if (!best || w.sessions < best.sessions) best = w;
    }
    if (!best) {
      const total = this.workers.reduce((a, w) => a + w.destCount, 0);
      throw invalidArg(`sessions: all ${total} destination entries of the ${this.workers.length} workers are in use (region destsPerLane)`);
    }
    return best;
  }

  private checkOpen(): void {
    if (this.closed) throw new ReflectorError('ERR_CLOSED', 'sessions: the session manager is closed');
  }

  private request(w: WorkerHandle, req: ControlRequest): Promise<unknown> {
    const id = this.nextId++;
    const msg = { ...req, id };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ReflectorError('ERR_CONTROL', `session worker (lane ${w.lane}): no reply to "${req.op}" within ${this.opts.requestTimeoutMs} ms`));
      }, this.opts.requestTimeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      w.port.postMessage(msg);
    });
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
        const stats: SessionStats | undefined = e ? { info: e.info, engine: this.engineDelta(e), worker: m.counters } : undefined;
        if (e) this.forget(m.name, e);
        if (m.op === 'ended') this.emit('ended', m.name, stats);
        else this.emit('failed', m.name, new ReflectorError(m.code, m.message), stats);
        return;
      }
      case 'ready':
        void w;
        return;
    }
  }
}

/** Next hops resolved once per address (thousands of sessions often share a few). */
function cachedResolver(opts: DestinationOptions): (to: Endpoint) => Promise<Destination> {
  const hops = new Map<string, Promise<NextHop>>();
  return async (to: Endpoint): Promise<Destination> => {
    let hop = hops.get(to.address);
    if (!hop) {
      hop = resolveNextHop(to.address, { netns: opts.netns, probeTimeoutMs: opts.probeTimeoutMs }).then((h) => {
        if (opts.dev !== undefined && h.dev !== opts.dev) {
          throw new ReflectorError('ERR_NO_NEIGHBOUR', `route to ${to.address} leaves through ${h.dev}, not through the engine's interface ${opts.dev}`);
        }
        return h;
      });
      hops.set(to.address, hop);
      hop.catch(() => hops.delete(to.address));
    }
    return destinationFromHop(to, await hop, { srcPort: opts.srcPort, ttl: opts.ttl, dscp: opts.dscp });
  };
}
