// SPDX-License-Identifier: MIT
// Control API client over gRPC (reflector.v1.Control): `reflector ctl`, the
// tests and programs that embed Reflector use it. Errors come back as
// ControlError with the server's ERR_* code; the client's own deadline is
// ControlError('ERR_TIMEOUT'); calls pending when the client is closed are
// rejected with ReflectorError('ERR_CLOSED').
import * as grpc from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { ReflectorError } from '../errors';
import type { ServerEventType, StampedEvent } from '../server/events';
import { packageDefinition, SERVICE } from './proto';
import { errorOf } from './status';
import { ControlError, type CaptureEnd, type CapturePacket, type CaptureRequest, type Command, type RelayInfo, type Result, type SessionInfo, type StatsResult } from './types';
import { capturedOf, eventOf, requestOf, resultOf } from './wire';

export interface ClientTls {
  /** PEM CA that signed the server's certificate (null: the system roots) */
  ca?: Buffer | null;
  /** PEM client certificate and key, when the server asks for one */
  cert?: Buffer | null;
  key?: Buffer | null;
  /** the name the server's certificate must carry, when it is not the host */
  servername?: string;
}

export type ControlTarget =
  | { socket: string; token?: string }
  | { host: string; port: number; token: string; tls?: ClientTls | null };

type RawClient = grpc.Client & Record<string, (...args: unknown[]) => grpc.ClientUnaryCall | grpc.ClientReadableStream<unknown>>;

let ctor: grpc.ServiceClientConstructor | null = null;
function clientClass(): grpc.ServiceClientConstructor {
  if (!ctor) {
    const pkg = grpc.loadPackageDefinition(packageDefinition()) as unknown as { reflector: { v1: { Control: grpc.ServiceClientConstructor } } };
    ctor = pkg.reflector.v1.Control;
  }
  return ctor;
}

/** The grpc-js channel address and credentials of a target. */
export function channelOf(target: ControlTarget): { address: string; credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  if ('socket' in target) return { address: `unix:${target.socket}`, credentials: grpc.credentials.createInsecure(), options: {} };
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const tls = target.tls;
  if (!tls) return { address: `${host}:${target.port}`, credentials: grpc.credentials.createInsecure(), options: {} };
  const options: grpc.ChannelOptions = tls.servername ? { 'grpc.ssl_target_name_override': tls.servername, 'grpc.default_authority': tls.servername } : {};
  return { address: `${host}:${target.port}`, credentials: grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null), options };
}

/** A Watch stream: 'event' for each event, 'end' with the error (null: the server ended it). */
export class ControlWatch extends EventEmitter {
  /** resolves once the server has the watch in place (its headers arrived) */
  readonly ready: Promise<void>;
  /** resolves when the stream ends: null when the server ended it, else its error */
  readonly ended: Promise<ControlError | null>;

  constructor(private readonly call: grpc.ClientReadableStream<unknown>) {
    super();
    let endedResolve!: (e: ControlError | null) => void;
    this.ended = new Promise((r) => (endedResolve = r));
    this.ready = new Promise((resolve, reject) => {
      call.once('metadata', () => resolve());
      call.once('error', (err: grpc.ServiceError) => reject(toControlError(err, 'watch')));
    });
    // a rejection nobody awaits is not a crash: `ended` says the same
    this.ready.catch(() => undefined);
    call.on('data', (m: Record<string, unknown>) => {
      const ev = eventOf(m);
      if (ev) this.emit('event', ev);
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (err.code === grpc.status.CANCELLED) endedResolve(null);
      else endedResolve(toControlError(err, 'watch'));
    });
    call.on('end', () => endedResolve(null));
  }

  /** The next event (of `type`, if given) within timeoutMs. */
  next(type?: ServerEventType, timeoutMs = 10000): Promise<StampedEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('event', on);
        reject(new ControlError('ERR_TIMEOUT', `watch: no ${type ?? 'event'} within ${timeoutMs} ms`));
      }, timeoutMs);
      const on = (ev: StampedEvent): void => {
        if (type && ev.type !== type) return;
        clearTimeout(timer);
        this.off('event', on);
        resolve(ev);
      };
      this.on('event', on);
    });
  }

  cancel(): void {
    this.call.cancel();
  }
}

/**
 * A Capture stream: 'packet' for each packet; `armed` once the server's
 * engine captures; `ended` with how it ended (rejects with ControlError;
 * cancel() ends it with `cancelled` true and the packets seen).
 */
export class ControlCapture extends EventEmitter {
  readonly armed: Promise<void>;
  readonly ended: Promise<CaptureEnd & { cancelled: boolean }>;
  private packets = 0;
  private cancelled = false;

  constructor(private readonly call: grpc.ClientReadableStream<unknown>, timeoutMs: number) {
    super();
    let endResolve!: (e: CaptureEnd & { cancelled: boolean }) => void;
    let endReject!: (e: Error) => void;
    this.ended = new Promise((res, rej) => {
      endResolve = res;
      endReject = rej;
    });
    this.armed = new Promise((resolve, reject) => {
      call.once('metadata', () => resolve());
      call.once('error', (err: grpc.ServiceError) => reject(toControlError(err, 'capture')));
    });
    this.armed.catch(() => undefined);
    let end: CaptureEnd | null = null;
    call.on('data', (m: Record<string, unknown>) => {
      const x = capturedOf(m);
      if ('end' in x) end = x.end;
      else {
        this.packets++;
        this.emit('packet', x.packet);
      }
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (err.code === grpc.status.CANCELLED && this.cancelled) return endResolve({ packets: this.packets, dropped: 0, cancelled: true });
      if (err.code === grpc.status.DEADLINE_EXCEEDED && !/^ERR_/.test(err.details ?? '')) {
        return endReject(new ControlError('ERR_TIMEOUT', `capture: not ended within ${timeoutMs} ms (${this.packets} packets received)`));
      }
      endReject(toControlError(err, 'capture'));
    });
    call.on('end', () => {
      if (end) endResolve({ ...(end as CaptureEnd), cancelled: false });
      else endReject(new ControlError('ERR_INTERNAL', `capture: the stream ended without its end message (${this.packets} packets received)`));
    });
  }

  /** Stop the capture (the server disarms); `ended` resolves with what arrived. */
  cancel(): void {
    this.cancelled = true;
    this.call.cancel();
  }

  override on(event: 'packet', fn: (p: CapturePacket) => void): this;
  override on(event: string, fn: (...args: any[]) => void): this;
  override on(event: string, fn: (...args: any[]) => void): this {
    return super.on(event, fn);
  }
}

export class ControlClient {
  private readonly pending = new Set<{ call: grpc.ClientUnaryCall; reject: (e: Error) => void }>();
  private closedError: ReflectorError | null = null;

  private constructor(
    private readonly raw: RawClient,
    private readonly metadata: grpc.Metadata,
    private readonly timeoutMs: number,
    readonly where: string,
  ) {}

  /** Connect (and wait until the channel is up); ERR_CONTROL "cannot connect to ..." when it is not within the timeout. */
  static async connect(target: ControlTarget, opts: { timeoutMs?: number } = {}): Promise<ControlClient> {
    const timeoutMs = opts.timeoutMs ?? 10000;
    const where = 'socket' in target ? target.socket : `${target.host}:${target.port}`;
    // grpc-js retries a refused connection until the deadline: ask the OS once first, for its reason
    await probe(target, where, timeoutMs);
    const { address, credentials, options } = channelOf(target);
    const Ctor = clientClass();
    const raw = new Ctor(address, credentials, { ...options, 'grpc.max_receive_message_length': 16 << 20 }) as unknown as RawClient;
    await new Promise<void>((resolve, reject) => {
      raw.waitForReady(Date.now() + timeoutMs, (err) => {
        if (!err) return resolve();
        raw.close();
        reject(new ReflectorError('ERR_CONTROL', `cannot connect to ${where}: ${err.message}`, { cause: err }));
      });
    });
    const md = new grpc.Metadata();
    if (target.token) md.set('authorization', `Bearer ${target.token}`);
    return new ControlClient(raw, md, timeoutMs, where);
  }

  /** Send one command; resolves with a non-error result, rejects with ControlError or ERR_CLOSED. */
  request(command: Command, timeoutMs = this.timeoutMs): Promise<Result> {
    if (this.closedError) return Promise.reject(this.closedError);
    const { method, request } = requestOf(command);
    return new Promise<Result>((resolve, reject) => {
      const entry = {
        call: null as unknown as grpc.ClientUnaryCall,
        reject,
      };
      entry.call = this.raw[method](request, this.metadata, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: Record<string, unknown>) => {
        this.pending.delete(entry);
        if (this.closedError) return reject(this.closedError);
        if (err) {
          if (err.code === grpc.status.DEADLINE_EXCEEDED && !/^ERR_/.test(err.details ?? '')) {
            return reject(new ControlError('ERR_TIMEOUT', `${command.type}: no reply within ${timeoutMs} ms`));
          }
          return reject(toControlError(err, command.type));
        }
        resolve(resultOf(method, res));
      }) as grpc.ClientUnaryCall;
      this.pending.add(entry);
    });
  }

  async list(): Promise<{ relays: RelayInfo[]; sessions: SessionInfo[] }> {
    const r = await this.request({ type: 'list' });
    if (r.type !== 'list') throw new ControlError('ERR_INTERNAL', `list: unexpected ${r.type} reply`);
    return { relays: r.relays, sessions: r.sessions };
  }

  async stats(): Promise<StatsResult> {
    const r = await this.request({ type: 'stats' });
    if (r.type !== 'stats') throw new ControlError('ERR_INTERNAL', `stats: unexpected ${r.type} reply`);
    return r.stats;
  }

  /** Events as they happen (only `types`, if given) until cancel() or the server ends the stream. */
  watch(types: ServerEventType[] = []): ControlWatch {
    if (this.closedError) throw this.closedError;
    return new ControlWatch(this.raw.Watch({ types }, this.metadata) as grpc.ClientReadableStream<unknown>);
  }

  /**
   * Capture relay or session `req.name` (count and/or seconds bound it).
   * The call's deadline is timeoutMs plus `seconds`.
   */
  capture(req: CaptureRequest, timeoutMs = this.timeoutMs): ControlCapture {
    if (this.closedError) throw this.closedError;
    const ms = timeoutMs + Math.ceil(req.seconds * 1000);
    const call = this.raw.Capture({ ...req }, this.metadata, { deadline: Date.now() + ms }) as grpc.ClientReadableStream<unknown>;
    return new ControlCapture(call, ms);
  }

  close(): void {
    if (!this.closedError) this.closedError = new ReflectorError('ERR_CLOSED', 'control client closed');
    for (const p of this.pending) {
      p.call.cancel();
      p.reject(this.closedError);
    }
    this.pending.clear();
    this.raw.close();
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  /** The service name on the wire (for raw calls in tests). */
  static readonly service = SERVICE;
}

/** A failed call -> ControlError with the server's ERR_* code (or the transport's status name). */
export function toControlError(err: grpc.ServiceError, what: string): ControlError {
  const { code, message } = errorOf(err);
  const e = new ControlError(code, code.startsWith('ERR_') ? message : `${what}: ${message}`);
  (e as ControlError & { grpcCode?: number }).grpcCode = err.code;
  return e;
}

/** One plain connection to the target: rejects at once with the OS's reason (ENOENT, ECONNREFUSED, ...). */
function probe(target: ControlTarget, where: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = 'socket' in target ? net.connect(target.socket) : net.connect(target.port, target.host);
    const t = setTimeout(() => {
      s.destroy();
      reject(new ReflectorError('ERR_CONTROL', `cannot connect to ${where}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve();
    });
    s.once('error', (err) => {
      clearTimeout(t);
      reject(new ReflectorError('ERR_CONTROL', `cannot connect to ${where}: ${err.message}`, { cause: err }));
    });
  });
}
