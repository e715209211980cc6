// SPDX-License-Identifier: MIT
// Control API client: request ids, a pending map rejected with
// ReflectorError('ERR_CLOSED') when the connection closes, per-request
// timeouts, typed ControlError for error replies.
import * as net from 'node:net';
import { ReflectorError } from '../errors';
import {
  ControlError, DEFAULT_MAX_FRAME, FrameReader, decodeResponse, encodeRequest, frame,
  type Command, type Result, type RelayInfo, type SessionInfo, type StatsResult,
} from './protocol';

export type ControlTarget = { socket: string } | { host: string; port: number; token: string };

interface Pending {
  resolve: (r: Result) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class ControlClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedError: ReflectorError | null = null;

  private constructor(
    private readonly sock: net.Socket,
    private readonly timeoutMs: number,
  ) {
    const reader = new FrameReader(DEFAULT_MAX_FRAME * 16);
    sock.on('data', (chunk: Buffer) => {
      try {
        for (const f of reader.push(chunk)) this.dispatch(f);
      } catch (err) {
        this.fail(new ReflectorError('ERR_CLOSED', `control connection dropped: ${(err as Error).message}`));
        sock.destroy();
      }
    });
    sock.on('error', (err) => this.fail(new ReflectorError('ERR_CLOSED', `control connection failed: ${err.message}`, { cause: err })));
    sock.on('close', () => this.fail(new ReflectorError('ERR_CLOSED', 'control connection closed')));
  }

  static async connect(target: ControlTarget, opts: { timeoutMs?: number } = {}): Promise<ControlClient> {
    const timeoutMs = opts.timeoutMs ?? 10000;
    const where = 'socket' in target ? target.socket : `${target.host}:${target.port}`;
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = 'socket' in target ? net.connect(target.socket) : net.connect(target.port, target.host);
      const t = setTimeout(() => {
        s.destroy();
        reject(new ReflectorError('ERR_CONTROL', `cannot connect to ${where}: timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(t);
        reject(new ReflectorError('ERR_CONTROL', `cannot connect to ${where}: ${err.message}`, { cause: err }));
      });
    });
    const client = new ControlClient(sock, timeoutMs);
    if ('token' in target) await client.request({ type: 'auth', token: target.token });
    return client;
  }

  /** Send one command; resolves with a non-error result, rejects with ControlError or ERR_CLOSED. */
  request(command: Command, timeoutMs = this.timeoutMs): Promise<Result> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    if (this.nextId > 0xffffffff) this.nextId = 1;
    return new Promise<Result>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ControlError('ERR_TIMEOUT', `${command.type}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.sock.write(frame(encodeRequest({ id, command })));
    });
  }

  /** Write raw bytes (tests of bad input). */
  writeRaw(bytes: Uint8Array): void {
    this.sock.write(bytes);
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

  close(): void {
    this.sock.end();
    this.fail(new ReflectorError('ERR_CLOSED', 'control client closed'));
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  /** Unsolicited error replies (id 0) the server sent before closing. */
  readonly unsolicited: Result[] = [];

  private dispatch(bytes: Buffer): void {
    const res = decodeResponse(bytes);
    const p = this.pending.get(res.id);
    if (!p) {
      this.unsolicited.push(res.result);
      return;
    }
    this.pending.delete(res.id);
    clearTimeout(p.timer);
    if (res.result.type === 'error') p.reject(new ControlError(res.result.code, res.result.message));
    else p.resolve(res.result);
  }

  private fail(err: ReflectorError): void {
    if (!this.closedError) this.closedError = err;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err);
    }
  }
}
