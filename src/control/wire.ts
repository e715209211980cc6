// SPDX-License-Identifier: MIT
// The control API's messages as @grpc/proto-loader gives them (camelCase
// fields, 64-bit integers as decimal strings, enums by name) <-> the types
// of src/control/types.ts and src/server/events.ts. Both sides use it: the
// service (request -> Command, Result -> response, event -> Event) and the
// client (the reverse).
import type { ServerEvent, ServerEventType, StampedEvent } from '../server/events';
import type { CaptureEnd, CapturePacket, CaptureRequest, Command, CommandType, Origin, RelayInfo, Result, SessionInfo, StatsResult } from './types';

type Msg = Record<string, unknown>;

/** The unary methods of the service and the command each carries. */
export const METHOD_OF: Readonly<Record<CommandType, string>> = {
  list: 'List',
  addRelay: 'AddRelay',
  removeRelay: 'RemoveRelay',
  subscribe: 'Subscribe',
  unsubscribe: 'Unsubscribe',
  startSession: 'StartSession',
  stopSession: 'StopSession',
  stats: 'Stats',
};
export const COMMAND_OF: Readonly<Record<string, CommandType>> = Object.fromEntries(Object.entries(METHOD_OF).map(([c, m]) => [m, c as CommandType]));

/** The Event kinds, as named in the .proto (the `event` oneof's fields). */
export const EVENT_TYPES: readonly ServerEventType[] = [
  'session_ended', 'session_failed', 'relay_fault', 'reload_applied', 'reload_refused',
  'engine_stopped', 'worker_died', 'session_restarted', 'engine_error', 'lane_quarantined',
];

const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.map(str) : []);

/** A decoded request of method `method` -> the command the handler runs. */
export function commandOf(method: string, m: Msg): Command {
  const type = COMMAND_OF[method];
  switch (type) {
    case 'list':
    case 'stats':
      return { type };
    case 'subscribe':
    case 'unsubscribe':
      return { type, relay: str(m.relay), subscriber: str(m.subscriber) };
    case 'addRelay': {
      const c: Command = { type, name: str(m.name), listen: str(m.listen), sources: strs(m.sources), subscribers: strs(m.subscribers) };
      if (m.ssm === 'SSM_MODE_SOURCE_SPECIFIC' || m.ssm === 1) c.ssm = true;
      else if (m.ssm === 'SSM_MODE_ANY_SOURCE' || m.ssm === 2) c.ssm = false;
      const ttl = Number(m.multicastTtl ?? 0);
      if (ttl) c.multicastTtl = ttl;
      return c;
    }
    case 'removeRelay':
    case 'stopSession':
      return { type, name: str(m.name) };
    case 'startSession':
      return { type, name: str(m.name), file: str(m.file), to: str(m.to), format: str(m.format), loop: m.loop === true };
  }
  throw new Error(`no command for method ${method}`);
}

/** A command -> its method and request message (client side). */
export function requestOf(c: Command): { method: string; request: Msg } {
  const { type, ...body } = c;
  if (c.type === 'addRelay' && c.ssm !== undefined) (body as Msg).ssm = c.ssm ? 'SSM_MODE_SOURCE_SPECIFIC' : 'SSM_MODE_ANY_SOURCE';
  return { method: METHOD_OF[type], request: body };
}

/** A decoded CaptureRequest -> its TypeScript form. */
export function captureRequestOf(m: Msg): CaptureRequest {
  return { name: str(m.name), count: Number(m.count ?? 0), seconds: Number(m.seconds ?? 0), subscriber: str(m.subscriber) };
}

const DIRECTION_WIRE = { ingress: 'CAPTURE_DIRECTION_INGRESS', output: 'CAPTURE_DIRECTION_OUTPUT' } as const;

/** A captured packet -> a CapturedPacket message. */
export function capturedPacketMessage(p: CapturePacket): Msg {
  return { tsNs: p.tsNs.toString(), direction: DIRECTION_WIRE[p.direction], output: p.output, frame: Buffer.from(p.frame.buffer, p.frame.byteOffset, p.frame.byteLength), wireLength: p.wireLength };
}

/** The stream's last message. */
export function captureEndMessage(e: CaptureEnd): Msg {
  return { end: { packets: String(e.packets), dropped: String(e.dropped) } };
}

/** A CapturedPacket message -> a packet, or the end (client side). */
export function capturedOf(m: Msg): { packet: CapturePacket } | { end: CaptureEnd } {
  const end = m.end as Msg | null | undefined;
  if (end) return { end: { packets: Number(end.packets ?? 0), dropped: Number(end.dropped ?? 0) } };
  const frame = m.frame as Buffer | undefined;
  return {
    packet: {
      tsNs: BigInt(str(m.tsNs) || '0'),
      direction: m.direction === 'CAPTURE_DIRECTION_INGRESS' || m.direction === 1 ? 'ingress' : 'output',
      output: str(m.output),
      frame: frame ?? new Uint8Array(0),
      wireLength: Number(m.wireLength ?? 0),
    },
  };
}

const ORIGIN_WIRE: Record<Origin, string> = { config: 'ORIGIN_CONFIG', runtime: 'ORIGIN_RUNTIME' };
const originOf = (v: unknown): Origin => (v === 'ORIGIN_RUNTIME' || v === 2 ? 'runtime' : 'config');

/** A handler's result -> the response message of `method`. */
export function responseOf(method: string, r: Result): Msg {
  switch (r.type) {
    case 'list':
      return {
        relays: r.relays.map((x) => ({ ...x, origin: ORIGIN_WIRE[x.origin] })),
        sessions: r.sessions.map((x) => ({ ...x, origin: ORIGIN_WIRE[x.origin] })),
      };
    case 'stats':
      return {
        engineRunning: r.stats.engineRunning,
        ready: r.stats.ready,
        configReloads: r.stats.configReloads.toString(),
        configReloadFailures: r.stats.configReloadFailures.toString(),
        counters: r.stats.counters.map((c) => ({ name: c.name, labels: c.labels, value: c.value.toString() })),
      };
    case 'ok':
      return { applied: r.cluster ? 'APPLIED_CLUSTER' : 'APPLIED_LOCAL' };
    case 'error':
      throw new Error(`${method}: an error result has no response message`);
  }
}

/** A response message of `method` -> the result (client side). */
export function resultOf(method: string, m: Msg): Result {
  const type = COMMAND_OF[method];
  if (type === 'list') {
    const relays: RelayInfo[] = ((m.relays as Msg[]) ?? []).map((r) => ({
      name: str(r.name), listen: str(r.listen), sources: strs(r.sources), subscribers: strs(r.subscribers), origin: originOf(r.origin),
    }));
    const sessions: SessionInfo[] = ((m.sessions as Msg[]) ?? []).map((s) => ({
      name: str(s.name), file: str(s.file), to: str(s.to), format: str(s.format), loop: s.loop === true, origin: originOf(s.origin),
    }));
    return { type: 'list', relays, sessions };
  }
  if (type === 'stats') {
    const stats: StatsResult = {
      engineRunning: m.engineRunning === true,
      ready: m.ready === true,
      configReloads: BigInt(str(m.configReloads) || '0'),
      configReloadFailures: BigInt(str(m.configReloadFailures) || '0'),
      counters: ((m.counters as Msg[]) ?? []).map((c) => ({ name: str(c.name), labels: (c.labels ?? {}) as Record<string, string>, value: BigInt(str(c.value) || '0') })),
    };
    return { type: 'stats', stats };
  }
  return m.applied === 'APPLIED_CLUSTER' ? { type: 'ok', cluster: true } : { type: 'ok' };
}

const camel = (s: string): string => s.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** A server event -> an Event message. */
export function eventMessage(ev: StampedEvent): Msg {
  const { type, at, ...body } = ev as StampedEvent & Msg;
  const b: Msg = { ...body };
  if (type === 'relay_fault') b.subscriber = str(b.subscriber);
  if (type === 'worker_died') b.reclaimed = String(b.reclaimed ?? -1);
  return { atMs: String(at), [camel(type)]: b };
}

/** An Event message -> the server event (client side); null for a kind this client does not know. */
export function eventOf(m: Msg): StampedEvent | null {
  const field = m.event as string | undefined;
  if (!field) return null;
  const type = snake(field) as ServerEventType;
  if (!EVENT_TYPES.includes(type)) return null;
  const b = { ...((m[field] as Msg) ?? {}) };
  if (type === 'relay_fault' && b.subscriber === '') delete b.subscriber;
  if (type === 'worker_died') b.reclaimed = Number(b.reclaimed) < 0 ? null : Number(b.reclaimed);
  return { ...(b as object), type, at: Number(m.atMs) } as ServerEvent & { at: number };
}
