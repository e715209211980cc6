// SPDX-License-Identifier: MIT
// Control API commands -> the running state. Validates every argument with
// a message naming it; changes are serialised with config reloads.
import * as path from 'node:path';
import * as fs from 'node:fs';
import { parseEndpoint, parsePrefix, type Endpoint } from '../net/address';
import { ReflectorError } from '../errors';
import { ControlError, type Command, type Result, type StatsCounter } from '../control/protocol';
import type { ControlHandler } from '../control/server';
import type { SessionFormat } from '../config/schema';
import type { RunningState } from './state';

const FORMATS: readonly SessionFormat[] = ['mpegts', 'rtp', 'pcap'];

export interface HandlerContext {
  state: RunningState;
  /** folder that relative session files are resolved against (the config's) */
  baseDir: () => string;
  stats: () => Promise<{ engineRunning: boolean; ready: boolean; configReloads: bigint; configReloadFailures: bigint; counters: StatsCounter[] }>;
}

export class CommandHandler implements ControlHandler {
  constructor(private readonly ctx: HandlerContext) {}

  async handle(c: Command): Promise<Result> {
    const st = this.ctx.state;
    switch (c.type) {
      case 'list':
        return { type: 'list', relays: st.relayInfos(), sessions: st.sessionInfos() };
      case 'stats':
        return { type: 'stats', stats: await this.ctx.stats() };
      case 'subscribe': {
        const e = endpoint(c.subscriber, 'subscriber');
        await st.serial(() => st.subscribe(name(c.relay, 'relay'), e, 'runtime'));
        return { type: 'ok' };
      }
      case 'unsubscribe': {
        const e = endpoint(c.subscriber, 'subscriber');
        const key = e.family === 6 ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
        await st.serial(() => st.unsubscribe(name(c.relay, 'relay'), key));
        return { type: 'ok' };
      }
      case 'addRelay': {
        const n = name(c.name, 'name');
        const listen = endpoint(c.listen, 'listen');
        if (!c.sources.length) throw new ControlError('ERR_INVALID_ARG', 'sources: at least one source prefix is required (who may send to this relay)');
        const sources = c.sources.map((s, i) => wrap(() => parsePrefix(s, `sources[${i}]`)));
        const subs = c.subscribers.map((s, i) => endpoint(s, `subscribers[${i}]`));
        await st.serial(() => st.addRelay(n, listen, sources, subs, 'runtime'));
        return { type: 'ok' };
      }
      case 'removeRelay':
        await st.serial(() => st.removeRelay(name(c.name, 'name')));
        return { type: 'ok' };
      case 'startSession': {
        const n = name(c.name, 'name');
        if (!c.file) throw new ControlError('ERR_INVALID_ARG', 'file: a media file path is required');
        const file = path.resolve(this.ctx.baseDir(), c.file);
        if (!fs.existsSync(file)) throw new ControlError('ERR_INVALID_ARG', `file: media file ${file} does not exist`);
        const to = endpoint(c.to, 'to');
        const format = (c.format || 'mpegts') as SessionFormat;
        if (!FORMATS.includes(format)) throw new ControlError('ERR_INVALID_ARG', `format: "${c.format}" is not one of ${FORMATS.join(' | ')}`);
        await st.serial(() => st.startSession({ name: n, file, to, format, loop: c.loop }, 'runtime'));
        return { type: 'ok' };
      }
      case 'stopSession':
        await st.serial(() => st.stopSession(name(c.name, 'name')));
        return { type: 'ok' };
      case 'auth':
        return { type: 'ok' };
    }
  }
}

function name(v: string, what: string): string {
  if (!v || !v.trim()) throw new ControlError('ERR_INVALID_ARG', `${what}: a non-empty name is required`);
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
