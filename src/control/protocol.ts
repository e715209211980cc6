// SPDX-License-Identifier: MIT
// The control messages as TypeScript types, and their encoding, from the one
// definition in src/control/control.proto (loaded by protobufjs at run time,
// no generated code). Frames: 4-byte big-endian length + one message.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { ReflectorError } from '../errors';

export const DEFAULT_MAX_FRAME = 64 * 1024;

export type Origin = 'config' | 'runtime';

export interface RelayInfo {
  name: string;
  listen: string;
  sources: string[];
  subscribers: string[];
  origin: Origin;
}

export interface SessionInfo {
  name: string;
  file: string;
  to: string;
  format: string;
  loop: boolean;
  origin: Origin;
}

export interface StatsCounter {
  name: string;
  labels: Record<string, string>;
  value: bigint;
}

export interface StatsResult {
  engineRunning: boolean;
  ready: boolean;
  configReloads: bigint;
  configReloadFailures: bigint;
  counters: StatsCounter[];
}

export type Command =
  | { type: 'auth'; token: string }
  | { type: 'list' }
  | { type: 'subscribe'; relay: string; subscriber: string }
  | { type: 'unsubscribe'; relay: string; subscriber: string }
  | { type: 'addRelay'; name: string; listen: string; sources: string[]; subscribers: string[] }
  | { type: 'removeRelay'; name: string }
  | { type: 'startSession'; name: string; file: string; to: string; format: string; loop: boolean }
  | { type: 'stopSession'; name: string }
  | { type: 'stats' }
  | { type: 'capture'; name: string; out: string; count: number; seconds: number; subscriber: string };

export type CommandType = Command['type'];
export const COMMAND_TYPES: readonly CommandType[] = [
  'auth', 'list', 'subscribe', 'unsubscribe', 'addRelay', 'removeRelay', 'startSession', 'stopSession', 'stats', 'capture',
];

export type ControlErrorCode =
  | 'ERR_INVALID_ARG'
  | 'ERR_NOT_FOUND'
  | 'ERR_EXISTS'
  | 'ERR_UNAUTHENTICATED'
  | 'ERR_BAD_FRAME'
  | 'ERR_UNKNOWN_COMMAND'
  | 'ERR_UNAVAILABLE'
  | 'ERR_TIMEOUT'
  | 'ERR_INTERNAL';

export type Result =
  | { type: 'ok' }
  | { type: 'list'; relays: RelayInfo[]; sessions: SessionInfo[] }
  | { type: 'stats'; stats: StatsResult }
  | { type: 'capture'; packets: number; dropped: number; file: string }
  | { type: 'error'; code: ControlErrorCode | string; message: string };

export interface Request {
  id: number;
  command: Command;
}
export interface Response {
  id: number;
  result: Result;
}

/** An error the control API reports to its client (a typed error reply). */
export class ControlError extends ReflectorError {
  readonly controlCode: ControlErrorCode | string;
  constructor(controlCode: ControlErrorCode | string, message: string) {
    super('ERR_CONTROL', message);
    this.controlCode = controlCode;
  }
}

let root: protobuf.Root | null = null;

/** The .proto ships in src/control; compiled code runs from dist/src/control. */
export function protoPath(): string {
  const candidates = [path.join(__dirname, 'control.proto'), path.resolve(__dirname, '../../../src/control/control.proto')];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new ReflectorError('ERR_CONTROL', `control.proto not found (looked in ${candidates.join(', ')})`);
  return found;
}

function types(): { req: protobuf.Type; res: protobuf.Type } {
  if (!root) root = protobuf.loadSync(protoPath());
  return { req: root.lookupType('reflector.control.Request'), res: root.lookupType('reflector.control.Response') };
}

const ORIGINS: Origin[] = ['config', 'runtime'];
const originToWire = (o: Origin): number => ORIGINS.indexOf(o) + 1;
const originFromWire = (n: unknown): Origin => (n === 2 || n === 'ORIGIN_RUNTIME' ? 'runtime' : 'config');

export function encodeRequest(r: Request): Uint8Array {
  const { req } = types();
  const { type, ...body } = r.command;
  return req.encode(req.fromObject({ id: r.id, [type]: body })).finish();
}

/** Decode a request; throws ControlError ERR_BAD_FRAME / ERR_UNKNOWN_COMMAND (with the id when known). */
export function decodeRequest(bytes: Uint8Array): Request {
  const { req } = types();
  let msg: Record<string, unknown>;
  try {
    msg = req.toObject(req.decode(bytes), { oneofs: true, defaults: true, longs: String }) as Record<string, unknown>;
  } catch (err) {
    throw new ControlError('ERR_BAD_FRAME', `malformed request frame: ${(err as Error).message}`);
  }
  const id = Number(msg.id ?? 0);
  const type = msg.command as CommandType | undefined;
  if (!type || !COMMAND_TYPES.includes(type)) {
    const e = new ControlError('ERR_UNKNOWN_COMMAND', `request ${id} carries no known command (accepted: ${COMMAND_TYPES.join(', ')})`);
    (e as ControlError & { requestId?: number }).requestId = id;
    throw e;
  }
  const body = (msg[type] ?? {}) as Record<string, unknown>;
  return { id, command: { type, ...body } as Command };
}

export function encodeResponse(r: Response): Uint8Array {
  const { res } = types();
  const result = r.result;
  let obj: Record<string, unknown>;
  switch (result.type) {
    case 'ok':
      obj = { ok: {} };
      break;
    case 'error':
      obj = { error: { code: result.code, message: result.message } };
      break;
    case 'capture':
      obj = { capture: { packets: String(result.packets), dropped: String(result.dropped), file: result.file } };
      break;
    case 'list':
      obj = {
        list: {
          relays: result.relays.map((x) => ({ ...x, origin: originToWire(x.origin) })),
          sessions: result.sessions.map((x) => ({ ...x, origin: originToWire(x.origin) })),
        },
      };
      break;
    case 'stats':
      obj = {
        stats: {
          ...result.stats,
          configReloads: result.stats.configReloads.toString(),
          configReloadFailures: result.stats.configReloadFailures.toString(),
          counters: result.stats.counters.map((c) => ({ ...c, value: c.value.toString() })),
        },
      };
      break;
  }
  return res.encode(res.fromObject({ id: r.id, ...obj })).finish();
}

export function decodeResponse(bytes: Uint8Array): Response {
  const { res } = types();
  let msg: Record<string, unknown>;
  try {
    msg = res.toObject(res.decode(bytes), { oneofs: true, defaults: true, longs: String, enums: Number }) as Record<string, unknown>;
  } catch (err) {
    throw new ControlError('ERR_BAD_FRAME', `malformed response frame: ${(err as Error).message}`);
  }
  const id = Number(msg.id ?? 0);
  const type = msg.result as string | undefined;
  const body = (type ? msg[type] : {}) as Record<string, unknown>;
  switch (type) {
    case 'ok':
      return { id, result: { type: 'ok' } };
    case 'error':
      return { id, result: { type: 'error', code: String(body.code), message: String(body.message) } };
    case 'capture':
      return { id, result: { type: 'capture', packets: Number(body.packets), dropped: Number(body.dropped), file: String(body.file) } };
    case 'list': {
      const relays = (body.relays as Array<Record<string, unknown>>).map((r) => ({
        name: String(r.name), listen: String(r.listen), sources: r.sources as string[], subscribers: r.subscribers as string[], origin: originFromWire(r.origin),
      }));
      const sessions = (body.sessions as Array<Record<string, unknown>>).map((s) => ({
        name: String(s.name), file: String(s.file), to: String(s.to), format: String(s.format), loop: Boolean(s.loop), origin: originFromWire(s.origin),
      }));
      return { id, result: { type: 'list', relays, sessions } };
    }
    case 'stats': {
      const counters = (body.counters as Array<Record<string, unknown>>).map((c) => ({
        name: String(c.name), labels: (c.labels ?? {}) as Record<string, string>, value: BigInt(String(c.value)),
      }));
      return {
        id,
        result: {
          type: 'stats',
          stats: {
            engineRunning: Boolean(body.engineRunning), ready: Boolean(body.ready),
            configReloads: BigInt(String(body.configReloads)), configReloadFailures: BigInt(String(body.configReloadFailures)), counters,
          },
        },
      };
    }
    default:
      throw new ControlError('ERR_BAD_FRAME', `response ${id} carries no result`);
  }
}

/** Prefix one encoded message with its 4-byte big-endian length. */
export function frame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

/**
 * Splits a byte stream into frames. Control traffic is small and rare, so
 * buffering by concatenation is fine here (never on the data path).
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly maxFrame: number) {}

  /** Returns the complete frames; throws ControlError ERR_BAD_FRAME on an oversize length. */
  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: Buffer[] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len > this.maxFrame) {
        throw new ControlError('ERR_BAD_FRAME', `frame of ${len} bytes exceeds the limit of ${this.maxFrame} bytes`);
      }
      if (this.buf.length < 4 + len) break;
      frames.push(this.buf.subarray(4, 4 + len));
      this.buf = this.buf.subarray(4 + len);
    }
    return frames;
  }
}
