// SPDX-License-Identifier: MIT
// Control API commands -> the running state: the one seam every control
// transport calls. It decides what a request may do:
// - every name passes src/names.ts, every address src/net/address.ts;
// - a relay made through the API may not take any source (0.0.0.0/0, ::/0):
//   only the config file can, with allow_any_source; its listen address must
//   be one of the engine namespace's own (checked by the relays manager);
// - a session may open only files inside media_root, symbolic links
//   resolved (src/media/root.ts), and no error says anything about a file
//   outside it or shows a byte of one inside it;
// - changes are serialised with config reloads, and every request has a
//   deadline (control.request_timeout_ms) that tells the truth: a change
//   that could not start before it is never run, one that finished after it
//   is undone, and both answer ERR_TIMEOUT ("not applied"); what answers ok
//   is in effect. A transport's own request timer must be a backstop above
//   the deadline (the server gives it TRANSPORT_MARGIN_MS more);
// - in cluster mode (a `cluster` writer) a change, once validated by the same
//   rules, is written to the cluster's desired state in etcd instead of
//   applied here (src/cluster/writer.ts); it answers ok { cluster } once etcd
//   took it, and the node that runs the object applies it through its watch.
//   List and Stats stay this node's own.
import * as path from 'node:path';
import { parseEndpoint, parsePrefix, type Endpoint } from '../net/address';
import { ReflectorError } from '../errors';
import { nameProblem, type NameKind } from '../names';
import { checkMediaPath } from '../media/root';
import { anySourceProblem } from '../relay/guards';
import { ControlError, type CaptureEnd, type CapturePacket, type CaptureRequest, type Command, type ControlHandler, type Result, type StatsCounter } from '../control/types';
import type { SessionFormat } from '../config/schema';
import type { RunningState } from './state';
import { ClusterWriteError, type ClusterWriter } from '../cluster/writer';
import { formatEndpoint } from '../net/address';
import type { CaptureOptions, CaptureResult, CapturedPacket } from '../capture/capture';

const FORMATS: readonly SessionFormat[] = ['mpegts', 'rtp', 'pcap'];

/** How much longer than the handler's deadline a transport waits before it answers ERR_TIMEOUT itself. */
export const TRANSPORT_MARGIN_MS = 5000;

export interface HandlerContext {
  state: RunningState;
  /** media_root: the folder session files must be inside; relative files are resolved against it */
  mediaRoot: () => string;
  stats: () => Promise<{ engineRunning: boolean; ready: boolean; configReloads: bigint; configReloadFailures: bigint; counters: StatsCounter[] }>;
  /** control.request_timeout_ms: the deadline of every change (default 10000) */
  requestTimeoutMs?: number;
  /** cluster mode: changes are written through to etcd */
  cluster?: ClusterWriter | null;
  /** Relays.capture (absent: Capture of a relay answers ERR_UNAVAILABLE) */
  capture?: (relay: string, opts: CaptureOptions) => AsyncGenerator<CapturedPacket, CaptureResult>;
  /** SessionManager.capture */
  captureSession?: (session: string, opts: CaptureOptions) => AsyncGenerator<CapturedPacket, CaptureResult>;
}

const REFUSAL_CODE: Record<ClusterWriteError['reason'], string> = { exists: 'ERR_EXISTS', not_found: 'ERR_NOT_FOUND', invalid: 'ERR_INVALID_ARG', conflict: 'ERR_CONFLICT' };

export class CommandHandler implements ControlHandler {
  private readonly timeoutMs: number;

  constructor(private readonly ctx: HandlerContext) {
    this.timeoutMs = ctx.requestTimeoutMs ?? 10_000;
  }

  async handle(c: Command): Promise<Result> {
    const st = this.ctx.state;
    switch (c.type) {
      case 'list':
        return { type: 'list', relays: st.relayInfos(), sessions: st.sessionInfos() };
      case 'stats':
        return { type: 'stats', stats: await this.ctx.stats() };
      case 'subscribe': {
        const relay = name('relay', c.relay, 'relay');
        const e = endpoint(c.subscriber, 'subscriber');
        const w = this.ctx.cluster;
        if (w) return this.write(() => w.subscribe(relay, formatEndpoint(e)));
        return this.change((signal) => st.subscribe(relay, e, 'runtime', signal));
      }
      case 'unsubscribe': {
        const relay = name('relay', c.relay, 'relay');
        const e = endpoint(c.subscriber, 'subscriber');
        const key = e.family === 6 ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
        const w = this.ctx.cluster;
        if (w) return this.write(() => w.unsubscribe(relay, key));
        return this.change(() => st.unsubscribe(relay, key));
      }
      case 'addRelay': {
        const n = name('relay', c.name, 'name');
        const listen = endpoint(c.listen, 'listen');
        if (!c.sources.length) throw new ControlError('ERR_INVALID_ARG', 'sources: at least one source prefix is required (who may send to this relay)');
        const sources = c.sources.map((s, i) => {
          const p = wrap(() => parsePrefix(s, `sources[${i}]`));
          const any = anySourceProblem(p, false);
          // only the operator's file may open a relay to anyone
          if (any) throw new ControlError('ERR_INVALID_ARG', `sources[${i}]: ${p.address}/0 is not accepted through the control API (an open relay); list the senders' prefixes, or name the relay in the config file with allow_any_source: true`);
          return p;
        });
        const subs = c.subscribers.map((s, i) => endpoint(s, `subscribers[${i}]`));
        const mc: { ssm?: boolean; multicastTtl?: number } = {};
        if (c.ssm !== undefined) mc.ssm = c.ssm;
        if (c.multicastTtl) {
          if (!Number.isInteger(c.multicastTtl) || c.multicastTtl < 1 || c.multicastTtl > 255) {
            throw new ControlError('ERR_INVALID_ARG', `multicast_ttl: ${c.multicastTtl} is not in 1..255 (0 = the default, 16)`);
          }
          mc.multicastTtl = c.multicastTtl;
        }
        const w = this.ctx.cluster;
        if (w) {
          if (mc.ssm !== undefined || mc.multicastTtl !== undefined) {
            throw new ControlError('ERR_INVALID_ARG', 'ssm, multicast_ttl: not written through to the cluster\'s desired state (set them in the relay\'s entry in etcd)');
          }
          return this.write(() => w.addRelay({ name: n, listen: formatEndpoint(listen), sources: sources.map((p) => `${p.address}/${p.length}`), subscribers: subs.map(formatEndpoint) }));
        }
        return this.change((signal) => st.addRelay(n, listen, sources, subs, 'runtime', { ...mc, signal }));
      }
      case 'removeRelay': {
        const n = name('relay', c.name, 'name');
        const w = this.ctx.cluster;
        if (w) return this.write(() => w.removeRelay(n));
        return this.change(() => st.removeRelay(n));
      }
      case 'startSession': {
        const n = name('session', c.name, 'name');
        if (!c.file) throw new ControlError('ERR_INVALID_ARG', 'file: a media file path is required');
        const root = this.ctx.mediaRoot();
        const file = path.resolve(root, c.file);
        wrap(() => checkMediaPath(root, file, 'file'));
        const to = endpoint(c.to, 'to');
        const format = (c.format || 'mpegts') as SessionFormat;
        if (!FORMATS.includes(format)) throw new ControlError('ERR_INVALID_ARG', `format: "${c.format}" is not one of ${FORMATS.join(' | ')}`);
        const w = this.ctx.cluster;
        if (w) return this.write(() => w.startSession({ name: n, file, to: formatEndpoint(to), format, loop: c.loop }));
        return this.change((signal) => st.startSession({ name: n, file, to, format, loop: c.loop }, 'runtime', signal));
      }
      case 'stopSession': {
        const n = name('session', c.name, 'name');
        const w = this.ctx.cluster;
        if (w) return this.write(() => w.stopSession(n));
        return this.change(() => st.stopSession(n));
      }
    }
  }

  /**
   * Capture: what relay or session `req.name` receives and sends. A read of
   * the data path, not serialised with changes, bounded by count / seconds.
   * A name both kinds have is the relay's.
   */
  async *capture(req: CaptureRequest, opts: { signal: AbortSignal; onArmed: () => void }): AsyncGenerator<CapturePacket, CaptureEnd> {
    const st = this.ctx.state;
    const isSession = !st.relays.has(req.name) && st.sessions.has(req.name);
    const n = name(isSession ? 'session' : 'relay', req.name, 'name');
    if (!st.relays.has(n) && !isSession) {
      throw new ControlError('ERR_NOT_FOUND', `name: no relay or session named "${n}" (relays: ${[...st.relays.keys()].join(', ') || 'none'}; sessions: ${[...st.sessions.keys()].join(', ') || 'none'})`);
    }
    const count = req.count || undefined;
    const seconds = req.seconds || undefined;
    if (count === undefined && seconds === undefined) throw new ControlError('ERR_INVALID_ARG', 'count, seconds: give count or seconds (a capture is bounded)');
    const o: CaptureOptions = { ...(count ? { count } : {}), ...(seconds ? { seconds } : {}), signal: opts.signal, onArmed: opts.onArmed };
    let it: AsyncGenerator<CapturedPacket, CaptureResult>;
    let to = '';
    if (isSession) {
      if (req.subscriber) throw new ControlError('ERR_INVALID_ARG', `subscriber: "${req.subscriber}": session "${n}" has one destination; --subscriber applies to relays`);
      if (!this.ctx.captureSession) throw new ControlError('ERR_UNAVAILABLE', 'capture: this server cannot capture sessions');
      const s = st.sessions.get(n);
      if (s) to = formatEndpoint(s.spec.to);
      it = this.ctx.captureSession(n, o);
    } else {
      if (!this.ctx.capture) throw new ControlError('ERR_UNAVAILABLE', 'capture: this server has no relay engine to capture from');
      if (req.subscriber) o.subscriber = formatEndpoint(endpoint(req.subscriber, 'subscriber'));
      it = this.ctx.capture(n, o);
    }
    return yield* capturePackets(it, to);
  }

  /** Run one change in turn, within the deadline (see the file comment). */
  private async change(fn: (signal: AbortSignal) => Promise<void>): Promise<Result> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), this.timeoutMs);
    try {
      await this.ctx.state.serial(() => fn(ac.signal), ac.signal);
    } finally {
      clearTimeout(timer);
    }
    return { type: 'ok' };
  }

  /** Cluster mode: one edit of the desired state in etcd; its refusals keep their reason. */
  private async write(fn: () => Promise<void>): Promise<Result> {
    let timer: NodeJS.Timeout | undefined;
    // etcd3 retries an unreachable cluster on its own: the deadline bounds it
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      await Promise.race([fn(), late]);
    } catch (err) {
      if (err instanceof ClusterWriteError) throw new ControlError(REFUSAL_CODE[err.reason], err.message);
      if (err instanceof ReflectorError) throw err;
      // etcd unreachable or refusing: the change was not written
      throw new ReflectorError('ERR_CLUSTER', `etcd: ${(err as Error)?.message ?? String(err)} (the change may not have been written: ctl --etcd URL status shows the desired state)`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    return { type: 'ok', cluster: true };
  }
}

function name(kind: NameKind, v: string, what: string): string {
  const p = nameProblem(kind, v);
  if (p !== null) throw new ControlError('ERR_INVALID_ARG', `${what}: ${p}`);
  return v;
}

function endpoint(v: string, what: string): Endpoint {
  return wrap(() => parseEndpoint(v, what));
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ReflectorError) throw new ControlError('ERR_INVALID_ARG', err.message);
    throw err;
  }
}

/**
 * A capture's packets (src/capture) as the control API's CapturePackets:
 * kind -> direction, the output's name (a session's: `sessionTo`); its
 * typed errors as ControlError. Also what bench/relay-mcast.ts serves.
 */
export async function* capturePackets(it: AsyncGenerator<CapturedPacket, CaptureResult>, sessionTo = ''): AsyncGenerator<CapturePacket, CaptureEnd> {
  let packets = 0;
  for (;;) {
    let r: IteratorResult<CapturedPacket, CaptureResult>;
    try {
      r = await it.next();
    } catch (err) {
      if (err instanceof ControlError) throw err;
      if (err instanceof ReflectorError) throw new ControlError(err.code, err.message);
      throw err;
    }
    if (r.done) return { packets, dropped: r.value.dropped };
    const p = r.value;
    packets++;
    yield {
      tsNs: p.tsNs, direction: p.kind === 'ingress' ? 'ingress' : 'output', output: p.kind === 'ingress' ? '' : p.kind === 'session' ? sessionTo : p.what,
      frame: p.data, wireLength: p.wireLen,
    };
  }
}
