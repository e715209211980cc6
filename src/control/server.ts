// SPDX-License-Identifier: MIT
// The control API listener: the gRPC service reflector.v1.Control
// (proto/reflector/v1/control.proto) served by @grpc/grpc-js on a Unix
// socket and optionally on TCP (TLS, or plain text on a loopback address).
//
// The listening sockets are our own net.Servers whose connections are
// handed to grpc-js (Server.createConnectionInjector), so that:
// - the Unix socket gets its mode and group before anyone can connect: it is
//   bound under a temporary name, chmod/chown'ed, then renamed into place,
//   and a connection that arrives before that is closed;
// - connections are capped (net.Server.maxConnections).
// Hardening on TCP: the bearer token is checked by an interceptor when the
// call's metadata arrives, before grpc-js reads (let alone decodes) the
// request: an unauthenticated peer gets UNAUTHENTICATED and none of its
// message bytes are accepted. Requests are decoded by us, after that, so a
// malformed one is INVALID_ARGUMENT (ERR_BAD_MESSAGE), not grpc-js's INTERNAL.
// Messages over control.max_message_bytes are RESOURCE_EXHAUSTED (grpc-js
// refuses them while reading); streams per connection are capped
// (control.max_streams). The Unix socket takes no token: its mode and group
// decide who may connect.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { ReflectorError } from '../errors';
import type { Logger } from '../log';
import type { ServerEvents, ServerEventType, StampedEvent } from '../server/events';
import { packageDefinition, serviceDefinition } from './proto';
import { errorStatus } from './status';
import { BearerToken } from './token';
import { ControlError, type ControlHandler, type Result } from './types';
import { COMMAND_OF, EVENT_TYPES, captureEndMessage, captureRequestOf, capturedPacketMessage, commandOf, eventMessage, responseOf } from './wire';

export const DEFAULT_MAX_MESSAGE = 64 * 1024;
export const DEFAULT_MAX_CONNECTIONS = 64;
export const DEFAULT_MAX_STREAMS = 16;
export const DEFAULT_IDLE_MS = 120_000;
/** Capture messages a stream may have queued before the capture waits for the client (at most ~2 KiB each). */
export const CAPTURE_BUFFERED = 2048;

export interface ControlTls {
  /** PEM certificate chain of the server */
  cert: Buffer;
  /** PEM private key */
  key: Buffer;
  /** PEM CA: when given, clients must present a certificate it signed */
  clientCa?: Buffer | null;
}

export interface ControlServerOptions {
  socket: string | null;
  /** mode of the Unix socket (default 0o660) */
  socketMode?: number;
  /** group of the Unix socket: a name from /etc/group or a gid; null = the server's */
  socketGroup?: string | number | null;
  tcp?: { host: string; port: number } | null;
  /** TLS on TCP; null only on a loopback address */
  tls?: ControlTls | null;
  /** bearer token every TCP call must carry (`authorization: Bearer TOKEN`) */
  token?: string | null;
  maxMessageBytes?: number;
  maxConnections?: number;
  maxStreams?: number;
  /** a connection with no call open this long is closed (it would hold one of maxConnections) */
  idleMs?: number;
  /** backstop: a call the handler has not answered by then gets ERR_TIMEOUT */
  requestTimeoutMs?: number;
  handler: ControlHandler;
  /** the server's events, for Watch (none: Watch is UNAVAILABLE) */
  events?: ServerEvents | null;
  log: Logger;
  /** hooks for metrics */
  onRequest?: (command: string, result: string) => void;
  onConnection?: (transport: 'unix' | 'tcp') => void;
  onBadRequest?: (reason: string) => void;
}

type Transport = 'unix' | 'tcp';

interface Listener {
  transport: Transport;
  grpc: grpc.Server;
  injector: grpc.ConnectionInjector;
  net: net.Server;
}

export class ControlServer {
  private readonly listeners: Listener[] = [];
  private readonly watches = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  /** running Capture streams: aborted on stop() */
  private readonly captures = new Set<AbortController>();
  private readonly token: BearerToken | null;
  private readonly sockets = new Set<net.Socket>();
  private tcpAddr: net.AddressInfo | null = null;
  private closing = false;

  constructor(private readonly opts: ControlServerOptions) {
    this.token = opts.token ? new BearerToken(opts.token) : null;
  }

  get tcpAddress(): net.AddressInfo | null {
    return this.tcpAddr;
  }

  /** Watch streams open now. */
  get watchCount(): number {
    return this.watches.size;
  }

  async start(): Promise<void> {
    const o = this.opts;
    if (o.tcp && !this.token) throw new ReflectorError('ERR_INVALID_ARG', 'control.tcp needs control.token (the bearer token every TCP call carries)');
    if (o.tcp && !o.tls && !isLoopback(o.tcp.host)) {
      throw new ReflectorError('ERR_INVALID_ARG', `control.tcp: ${o.tcp.host} is not a loopback address: set control.tls.cert and control.tls.key (the token must not cross a network in clear)`);
    }
    try {
      if (o.socket) await this.listenUnix(o.socket);
      if (o.tcp) await this.listenTcp(o.tcp.host, o.tcp.port);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Refuse new calls (UNAVAILABLE); Watch streams stay open until stop() so they see the engine stop. */
  beginStop(): void {
    this.closing = true;
  }

  /** End Watch streams, close every connection, remove the socket. */
  async stop(): Promise<void> {
    this.closing = true;
    for (const w of this.watches) w.end();
    this.watches.clear();
    for (const c of this.captures) c.abort();
    this.captures.clear();
    const ls = this.listeners.splice(0);
    // net.Server.close waits for its connections: stop accepting, then end them
    const closed = ls.map((l) => new Promise<void>((resolve) => l.net.close(() => resolve())));
    for (const l of ls) {
      l.injector.destroy();
      l.grpc.forceShutdown();
    }
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await Promise.all(closed);
    if (ls.some((l) => l.transport === 'unix') && this.opts.socket) fs.rmSync(this.opts.socket, { force: true });
  }

  private makeGrpc(transport: Transport, credentials: grpc.ServerCredentials): { server: grpc.Server; injector: grpc.ConnectionInjector } {
    const o = this.opts;
    const interceptors: grpc.ServerInterceptor[] = [];
    if (transport === 'tcp') interceptors.push(this.authenticate());
    const server = new grpc.Server({
      interceptors,
      'grpc.max_receive_message_length': o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE,
      'grpc.max_concurrent_streams': o.maxStreams ?? DEFAULT_MAX_STREAMS,
      'grpc.max_connection_idle_ms': o.idleMs ?? DEFAULT_IDLE_MS,
      // HTTP/2 buffers per connection beyond which new streams are refused
      'grpc-node.max_session_memory': 4,
    });
    server.addService(serverDefinition(), this.implementation());
    new ReflectionService(packageDefinition()).addToServer(server);
    return { server, injector: server.createConnectionInjector(credentials) };
  }

  private async listenUnix(socket: string): Promise<void> {
    const o = this.opts;
    const gid = o.socketGroup !== undefined && o.socketGroup !== null ? groupId(o.socketGroup) : null;
    await prepareSocketPath(socket, gid);
    const { server, injector } = this.makeGrpc('unix', grpc.ServerCredentials.createInsecure());
    let open = false;
    const ns = net.createServer((s) => {
      // bound under the temporary name, not yet given its mode and group
      if (!open) return s.destroy();
      this.track(s);
      o.onConnection?.('unix');
      injector.injectConnection(s);
    });
    ns.maxConnections = o.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.listeners.push({ transport: 'unix', grpc: server, injector, net: ns });
    const tmp = path.join(path.dirname(socket), `.${path.basename(socket)}.${process.pid}.tmp`);
    fs.rmSync(tmp, { force: true });
    await listen(ns, { path: tmp }, `control.socket: cannot listen on ${socket}`);
    try {
      fs.chmodSync(tmp, o.socketMode ?? 0o660);
      if (gid !== null) {
        try {
          fs.chownSync(tmp, -1, gid);
        } catch (err) {
          throw new ReflectorError('ERR_INVALID_ARG', `control.socket_group: cannot give ${socket} to group ${o.socketGroup} (gid ${gid}): ${(err as Error).message}`, { cause: err });
        }
      }
      fs.renameSync(tmp, socket);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    open = true;
  }

  private async listenTcp(host: string, port: number): Promise<void> {
    const o = this.opts;
    const creds = o.tls
      ? grpc.ServerCredentials.createSsl(o.tls.clientCa ?? null, [{ cert_chain: o.tls.cert, private_key: o.tls.key }], !!o.tls.clientCa)
      : grpc.ServerCredentials.createInsecure();
    const { server, injector } = this.makeGrpc('tcp', creds);
    const ns = net.createServer((s) => {
      this.track(s);
      o.onConnection?.('tcp');
      injector.injectConnection(s);
    });
    ns.maxConnections = o.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.listeners.push({ transport: 'tcp', grpc: server, injector, net: ns });
    await listen(ns, { host, port }, `control.tcp: cannot listen on ${host}:${port}`);
    this.tcpAddr = ns.address() as net.AddressInfo;
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    // grpc-js times out idle HTTP/2 sessions; a peer that never says a word
    // (no TLS hello, no HTTP/2 preface) is ours to close
    // (socket.setTimeout does not fire once HTTP/2 owns the socket: a timer)
    const timer = setTimeout(() => {
      if (s.bytesRead === 0) s.destroy();
    }, this.opts.idleMs ?? DEFAULT_IDLE_MS);
    timer.unref();
    s.once('close', () => clearTimeout(timer));
  }

  /** TCP: the token, checked on the call's metadata; a refused call is never read. */
  private authenticate(): grpc.ServerInterceptor {
    return (method, call) =>
      new grpc.ServerInterceptingCall(call, {
        start: (next) =>
          next({
            onReceiveMetadata: (md, nextMd) => {
              const values = md.get('authorization');
              const given = values.length === 1 && typeof values[0] === 'string' ? values[0] : null;
              if (given !== null && this.token!.matches(given)) return nextMd(md);
              // not passing the metadata on means the handler never starts and never asks for the message
              const [reason, message] = given === null ? ['unauthenticated', 'no authorization metadata (send "authorization: Bearer TOKEN")'] : ['bad_token', 'wrong token'];
              this.refused(call.getPeer(), method.path, reason, 'ERR_UNAUTHENTICATED', message);
              call.sendStatus(errorStatus('ERR_UNAUTHENTICATED', message));
            },
          }),
      });
  }

  private refused(peer: string, method: string, reason: string, code: string, message: string): void {
    this.opts.onBadRequest?.(reason);
    this.opts.log.warn('control request refused', { peer, method, reason, code, message });
  }

  private implementation(): grpc.UntypedServiceImplementation {
    const impl: grpc.UntypedServiceImplementation = {};
    const def = serviceDefinition();
    for (const [name, m] of Object.entries(def)) {
      const method = m.path.split('/').pop()!;
      const decode = m.requestDeserialize;
      if (method === 'Watch') {
        impl[name] = (call: grpc.ServerWritableStream<Buffer, unknown>) => this.watch(call, decode);
        continue;
      }
      if (method === 'Capture') {
        impl[name] = (call: grpc.ServerWritableStream<Buffer, unknown>) => void this.capture(call, decode);
        continue;
      }
      impl[name] = (call: grpc.ServerUnaryCall<Buffer, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        void this.unary(method, call, decode).then(
          (res) => cb(null, res),
          (status: grpc.StatusObject) => cb(status as grpc.ServiceError),
        );
      };
    }
    return impl;
  }

  private async unary(method: string, call: grpc.ServerUnaryCall<Buffer, unknown>, decode: (b: Buffer) => unknown): Promise<unknown> {
    const peer = call.getPeer();
    const type = COMMAND_OF[method];
    const fail = (code: string, message: string): Partial<grpc.StatusObject> => {
      this.opts.onRequest?.(type, code);
      return errorStatus(code, message);
    };
    if (this.closing) throw fail('ERR_UNAVAILABLE', 'the server is stopping');
    let msg: Record<string, unknown>;
    try {
      msg = decode(call.request) as Record<string, unknown>;
    } catch (err) {
      this.refused(peer, method, 'malformed', 'ERR_BAD_MESSAGE', (err as Error).message);
      throw fail('ERR_BAD_MESSAGE', `${method}: malformed request message: ${(err as Error).message}`);
    }
    const result = await this.run(type, commandOf(method, msg), peer);
    if (result.type === 'error') throw fail(result.code, result.message);
    this.opts.onRequest?.(type, 'ok');
    return responseOf(method, result);
  }

  private async run(type: string, command: Parameters<ControlHandler['handle']>[0], peer: string): Promise<Result> {
    const timeoutMs = this.opts.requestTimeoutMs ?? 15000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Result>((resolve) => {
      timer = setTimeout(() => resolve({ type: 'error', code: 'ERR_TIMEOUT', message: `${type} took longer than ${timeoutMs} ms` }), timeoutMs);
    });
    const work = this.opts.handler.handle(command).then(
      (r) => r,
      (err: unknown): Result => this.errorResult(err, peer, type),
    );
    const result = await Promise.race([work, timeout]);
    clearTimeout(timer);
    if (result.type === 'error') this.opts.log.info('control request failed', { peer, command: type, code: result.code, message: result.message });
    else if (type !== 'list' && type !== 'stats') this.opts.log.info('control request applied', { peer, command: type, cluster: result.type === 'ok' && result.cluster === true });
    return result;
  }

  private errorResult(err: unknown, peer: string, type: string): Result & { type: 'error' } {
    if (err instanceof ControlError) return { type: 'error', code: err.controlCode, message: err.message };
    // the pieces' typed errors keep their code (ERR_INVALID_ARG, ERR_MEDIA, ERR_NO_NEIGHBOUR, ERR_POLICY, ...)
    if (err instanceof ReflectorError) return { type: 'error', code: err.code, message: err.message };
    this.opts.log.error('control command failed', { peer, command: type, err });
    return { type: 'error', code: 'ERR_INTERNAL', message: (err as Error)?.message ?? String(err) };
  }

  /**
   * Capture: one CapturedPacket per packet, then one with `end`. Headers go
   * out once the engine is armed. A client that reads slower than packets
   * come is not waited for beyond HTTP/2's window: the engine's capture ring
   * fills and the engine drops (and counts) what it cannot take.
   */
  private async capture(call: grpc.ServerWritableStream<Buffer, unknown>, decode: (b: Buffer) => unknown): Promise<void> {
    const peer = call.getPeer();
    const end = (code: string, message: string): void => {
      this.opts.onRequest?.('capture', code);
      call.emit('error', errorStatus(code, message));
    };
    const h = this.opts.handler;
    if (this.closing) return end('ERR_UNAVAILABLE', 'the server is stopping');
    if (!h.capture) return end('ERR_UNAVAILABLE', 'this server cannot capture');
    let req: ReturnType<typeof captureRequestOf>;
    try {
      req = captureRequestOf(decode(call.request) as Record<string, unknown>);
    } catch (err) {
      this.refused(peer, 'Capture', 'malformed', 'ERR_BAD_MESSAGE', (err as Error).message);
      return end('ERR_BAD_MESSAGE', `Capture: malformed request message: ${(err as Error).message}`);
    }
    const ac = new AbortController();
    let gone = false;
    const abort = (): void => {
      gone = true;
      ac.abort();
    };
    call.on('cancelled', abort);
    call.on('close', () => ac.abort());
    this.captures.add(ac);
    let armed = false;
    try {
      const it = h.capture(req, {
        signal: ac.signal,
        onArmed: () => {
          armed = true;
          call.sendMetadata(new grpc.Metadata());
        },
      });
      for (;;) {
        const r = await it.next();
        if (r.done) {
          if (!gone) {
            if (!armed) call.sendMetadata(new grpc.Metadata());
            call.write(captureEndMessage(r.value));
            call.end();
          }
          this.opts.onRequest?.('capture', 'ok');
          this.opts.log.info('capture ended', { peer, name: req.name, packets: r.value.packets, dropped: r.value.dropped, cancelled: gone });
          return;
        }
        // a cancelled call: the generator sees the abort and ends; its packets go nowhere
        if (gone) continue;
        // grpc-js says "full" at 16 messages; up to CAPTURE_BUFFERED are ours to hold
        // (a few MiB), beyond that the capture waits and the engine's ring takes the slack
        if (!call.write(capturedPacketMessage(r.value)) && call.writableLength > CAPTURE_BUFFERED) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              call.off('drain', done);
              ac.signal.removeEventListener('abort', done);
              resolve();
            };
            call.on('drain', done);
            ac.signal.addEventListener('abort', done);
          });
        }
      }
    } catch (err) {
      const e = this.errorResult(err, peer, 'capture');
      this.opts.log.info('control request failed', { peer, command: 'capture', code: e.code, message: e.message });
      if (!gone) end(e.code, e.message);
    } finally {
      this.captures.delete(ac);
    }
  }

  private watch(call: grpc.ServerWritableStream<Buffer, unknown>, decode: (b: Buffer) => unknown): void {
    const events = this.opts.events;
    const end = (code: string, message: string): void => {
      this.opts.onRequest?.('watch', code);
      call.emit('error', errorStatus(code, message));
    };
    if (this.closing) return end('ERR_UNAVAILABLE', 'the server is stopping');
    if (!events) return end('ERR_UNAVAILABLE', 'this server publishes no events');
    let types: string[];
    try {
      const m = decode(call.request) as { types?: unknown };
      types = Array.isArray(m.types) ? m.types.map(String) : [];
    } catch (err) {
      this.refused(call.getPeer(), 'Watch', 'malformed', 'ERR_BAD_MESSAGE', (err as Error).message);
      return end('ERR_BAD_MESSAGE', `Watch: malformed request message: ${(err as Error).message}`);
    }
    const unknown = types.filter((x) => !EVENT_TYPES.includes(x as ServerEventType));
    if (unknown.length) return end('ERR_INVALID_ARG', `types: ${unknown.map((x) => `"${x}"`).join(', ')} is not an event kind (kinds: ${EVENT_TYPES.join(', ')})`);
    const wanted = new Set(types);
    const stop = events.subscribe((ev: StampedEvent) => {
      if (wanted.size && !wanted.has(ev.type)) return;
      call.write(eventMessage(ev));
    });
    this.watches.add(call);
    this.opts.onRequest?.('watch', 'ok');
    const done = (): void => {
      stop();
      this.watches.delete(call);
    };
    call.on('cancelled', done);
    call.on('close', done);
    call.on('finish', done);
    // the client knows the watch is in place once it has the headers
    call.sendMetadata(new grpc.Metadata());
  }
}

/** The service with requests left as bytes: we decode them after the call is authenticated. */
function serverDefinition(): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [k, m] of Object.entries(serviceDefinition())) out[k] = { ...m, requestDeserialize: (b: Buffer) => b };
  return out as grpc.ServiceDefinition;
}

function isLoopback(host: string): boolean {
  return host === '::1' || /^127\./.test(host) || host === 'localhost';
}

/** A group name (from /etc/group) or a numeric gid. */
export function groupId(g: string | number): number {
  if (typeof g === 'number') return g;
  if (/^\d+$/.test(g)) return Number(g);
  let text = '';
  try {
    text = fs.readFileSync('/etc/group', 'utf8');
  } catch {
    // no group file: only numeric gids
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === g && f.length >= 3) return Number(f[2]);
  }
  throw new ReflectorError('ERR_INVALID_ARG', `control.socket_group: no group named "${g}" in /etc/group (give a group name or a numeric gid)`);
}

/**
 * Create the socket's folder (mode 0750; with a socket group, the folder we
 * create gets it too, or the group could not reach the socket); remove a
 * stale socket, refuse when a live server owns it.
 */
async function prepareSocketPath(p: string, gid: number | null): Promise<void> {
  const created = fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o750 });
  if (created !== undefined && gid !== null) {
    try {
      fs.chownSync(path.dirname(p), -1, gid);
    } catch (err) {
      throw new ReflectorError('ERR_INVALID_ARG', `control.socket_group: cannot give ${path.dirname(p)} to gid ${gid}: ${(err as Error).message}`, { cause: err });
    }
  }
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new ReflectorError('ERR_INVALID_ARG', `control.socket: ${p} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const c = net.connect(p);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (live) throw new ReflectorError('ERR_INVALID_ARG', `control.socket: ${p} is in use by a running server`);
  fs.rmSync(p, { force: true });
}

function listen(server: net.Server, opts: net.ListenOptions, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new ReflectorError('ERR_INVALID_ARG', `${what}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(opts, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
