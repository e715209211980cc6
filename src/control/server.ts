// SPDX-License-Identifier: MIT
// The control API listener: length-prefixed protobuf frames over a Unix
// socket (mode 0660) and optionally TCP, where the first frame must be an
// Auth request with the bearer token. Bad input gets an error reply or a
// closed connection and a log line; the server keeps running.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import { ReflectorError } from '../errors';
import type { Logger } from '../log';
import {
  ControlError, DEFAULT_MAX_FRAME, FrameReader, decodeRequest, encodeResponse, frame,
  type Command, type Request, type Result,
} from './protocol';

/** How long a TCP client has to send its auth request. */
export const AUTH_TIMEOUT_MS = 5000;

export interface ControlHandler {
  /** Carry out one command (never 'auth'); throw ControlError for a typed error reply. */
  handle(command: Command): Promise<Result>;
}

export interface ControlServerOptions {
  socket: string | null;
  tcp?: { host: string; port: number } | null;
  token?: string | null;
  maxFrameBytes?: number;
  requestTimeoutMs?: number;
  /** TCP: close a connection that sends no auth request within this (default AUTH_TIMEOUT_MS) */
  authTimeoutMs?: number;
  handler: ControlHandler;
  log: Logger;
  /** hooks for metrics */
  onRequest?: (command: string, result: string) => void;
  onConnection?: (transport: 'unix' | 'tcp') => void;
  onBadFrame?: (reason: string) => void;
}

export class ControlServer {
  private unix: net.Server | null = null;
  private tcp: net.Server | null = null;
  private readonly conns = new Set<net.Socket>();
  private tcpAddr: net.AddressInfo | null = null;

  constructor(private readonly opts: ControlServerOptions) {}

  get tcpAddress(): net.AddressInfo | null {
    return this.tcpAddr;
  }

  async start(): Promise<void> {
    if (this.opts.tcp && !this.opts.token) {
      throw new ReflectorError('ERR_INVALID_ARG', 'control.tcp needs control.token (a bearer token clients send first)');
    }
    if (this.opts.socket) {
      await prepareSocketPath(this.opts.socket);
      this.unix = net.createServer((s) => this.accept(s, 'unix'));
      await listen(this.unix, { path: this.opts.socket }, `control.socket: cannot listen on ${this.opts.socket}`);
      // group may talk to the server; others may not
      fs.chmodSync(this.opts.socket, 0o660);
    }
    if (this.opts.tcp) {
      this.tcp = net.createServer((s) => this.accept(s, 'tcp'));
      await listen(this.tcp, { host: this.opts.tcp.host, port: this.opts.tcp.port }, `control.tcp: cannot listen on ${this.opts.tcp.host}:${this.opts.tcp.port}`);
      this.tcpAddr = this.tcp.address() as net.AddressInfo;
    }
  }

  /** Stop accepting and close every connection (pending requests get no reply). */
  async stop(): Promise<void> {
    const servers = [this.unix, this.tcp].filter((s): s is net.Server => s !== null);
    this.unix = this.tcp = null;
    for (const c of this.conns) c.destroy();
    this.conns.clear();
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    if (this.opts.socket) fs.rmSync(this.opts.socket, { force: true });
  }

  private accept(sock: net.Socket, transport: 'unix' | 'tcp'): void {
    this.conns.add(sock);
    this.opts.onConnection?.(transport);
    const peer = transport === 'tcp' ? `${sock.remoteAddress}:${sock.remotePort}` : 'unix';
    const reader = new FrameReader(this.opts.maxFrameBytes ?? DEFAULT_MAX_FRAME);
    let authed = transport === 'unix';
    // a TCP peer that never authenticates does not keep a connection open
    const authMs = this.opts.authTimeoutMs ?? AUTH_TIMEOUT_MS;
    const authTimer = authed
      ? null
      : setTimeout(() => {
          this.opts.onBadFrame?.('auth_timeout');
          this.opts.log.warn('control connection closed: no auth request in time', { peer, ms: authMs });
          sock.destroy();
        }, authMs);
    sock.on('close', () => {
      if (authTimer) clearTimeout(authTimer);
      this.conns.delete(sock);
    });
    sock.on('error', (err) => this.opts.log.warn('control connection error', { peer, err }));
    const reply = (id: number, result: Result): void => {
      if (!sock.destroyed) sock.write(frame(encodeResponse({ id, result })));
    };
    const refuse = (reason: string, code: string, message: string, close: boolean, id = 0): void => {
      this.opts.onBadFrame?.(reason);
      this.opts.log.warn('control request refused', { peer, reason, code, message });
      reply(id, { type: 'error', code, message });
      if (close) sock.end();
    };
    sock.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        // the stream cannot be resynchronised after a bad length: close it
        sock.pause();
        return refuse('oversize', 'ERR_BAD_FRAME', (err as Error).message, true);
      }
      for (const f of frames) {
        let req: Request;
        try {
          req = decodeRequest(f);
        } catch (err) {
          const e = err as ControlError & { requestId?: number };
          if (!authed) return refuse('unauthenticated', 'ERR_UNAUTHENTICATED', 'the first frame on TCP must be an auth request', true);
          refuse(e.controlCode === 'ERR_UNKNOWN_COMMAND' ? 'unknown_command' : 'malformed', e.controlCode, e.message, false, e.requestId ?? 0);
          continue;
        }
        if (req.command.type === 'auth') {
          if (!authed && !tokenMatches(req.command.token, this.opts.token ?? '')) {
            return refuse('bad_token', 'ERR_UNAUTHENTICATED', 'wrong token', true, req.id);
          }
          authed = true;
          if (authTimer) clearTimeout(authTimer);
          this.opts.onRequest?.('auth', 'ok');
          reply(req.id, { type: 'ok' });
          continue;
        }
        if (!authed) return refuse('unauthenticated', 'ERR_UNAUTHENTICATED', 'the first frame on TCP must be an auth request', true, req.id);
        void this.run(req, peer).then((result) => reply(req.id, result));
      }
    });
  }

  private async run(req: Request, peer: string): Promise<Result> {
    // a capture runs for its own bound (seconds) before it answers
    const captureMs = req.command.type === 'capture' && req.command.seconds > 0 ? req.command.seconds * 1000 : 0;
    const timeoutMs = (this.opts.requestTimeoutMs ?? 10000) + captureMs;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Result>((resolve) => {
      timer = setTimeout(() => resolve({ type: 'error', code: 'ERR_TIMEOUT', message: `${req.command.type} took longer than ${timeoutMs} ms` }), timeoutMs);
    });
    const work = this.opts.handler.handle(req.command).then(
      (r) => r,
      (err: unknown): Result => {
        if (err instanceof ControlError) return { type: 'error', code: err.controlCode, message: err.message };
        // the pieces' typed errors keep their code (ERR_INVALID_ARG, ERR_MEDIA, ERR_NO_NEIGHBOUR, ERR_POLICY, ...)
        if (err instanceof ReflectorError) return { type: 'error', code: err.code, message: err.message };
        this.opts.log.error('control command failed', { peer, command: req.command.type, err });
        return { type: 'error', code: 'ERR_INTERNAL', message: (err as Error)?.message ?? String(err) };
      },
    );
    const result = await Promise.race([work, timeout]);
    clearTimeout(timer);
    this.opts.onRequest?.(req.command.type, result.type === 'error' ? result.code : 'ok');
    if (result.type === 'error') this.opts.log.info('control request failed', { peer, command: req.command.type, code: result.code, message: result.message });
    else if (req.command.type !== 'list' && req.command.type !== 'stats') this.opts.log.info('control request applied', { peer, command: req.command.type });
    return result;
  }
}

function tokenMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && b.length > 0 && timingSafeEqual(a, b);
}

/** Create the socket's folder; remove a stale socket, refuse when a live server owns it. */
async function prepareSocketPath(p: string): Promise<void> {
  fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o750 });
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
