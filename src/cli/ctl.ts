// SPDX-License-Identifier: MIT
// `reflector ctl`: a client of the gRPC control API (reflector.v1.Control):
// one request per invocation, or `watch` to print events until interrupted.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseEndpoint, parsePrefix } from '../net/address';
import { ReflectorError } from '../errors';
import { loadConfig } from '../config/validate';
import { ControlClient, type ClientTls, type ControlTarget } from '../control/client';
import { ControlError, type CaptureRequest, type Command, type StatsResult } from '../control/types';
import { PcapFileSync } from '../capture/pcap-writer';
import { EVENT_TYPES } from '../control/wire';
import type { ServerEventType } from '../server/events';
import { optionHelp, UsageError, type OptionSpec, type Parsed } from './args';
import type { Io } from './main';

export const DEFAULT_SOCKET = '/run/reflector/control.sock';

export const CTL_OPTIONS: Record<string, OptionSpec> = {
  socket: { value: 'PATH', help: `control socket (default: control.socket of --config, else ${DEFAULT_SOCKET})` },
  config: { value: 'FILE', help: 'take the socket path from this config file' },
  tcp: { value: 'ADDR:PORT', help: 'connect over TCP instead (needs --token or REFLECTOR_TOKEN)' },
  token: { value: 'TOKEN', help: 'bearer token for --tcp (default: $REFLECTOR_TOKEN)' },
  'tls-ca': { value: 'FILE', help: '--tcp over TLS: PEM CA of the server\'s certificate' },
  'tls-cert': { value: 'FILE', help: '--tcp over TLS: PEM client certificate (when the server asks for one)' },
  'tls-key': { value: 'FILE', help: '--tcp over TLS: PEM key of --tls-cert' },
  'tls-name': { value: 'NAME', help: '--tcp over TLS: the name the server\'s certificate carries, when not ADDR' },
  timeout: { value: 'MS', help: 'give up after this many milliseconds (default 10000)' },
  json: { help: 'print results as JSON' },
  source: { value: 'PREFIX', repeat: true, help: 'add-relay: a source prefix allowed to send (at least one)' },
  subscriber: { value: 'ADDR:PORT', repeat: true, help: 'add-relay: an initial subscriber' },
  format: { value: 'FORMAT', help: 'start-session: mpegts | rtp | pcap (default mpegts)' },
  loop: { help: 'start-session: start again at the end of the file' },
  type: { value: 'KIND', repeat: true, help: `watch: only events of this kind (${EVENT_TYPES.join(', ')})` },
  out: { value: 'FILE.pcap', help: 'capture: the pcap file to write (written by ctl, on its own host)' },
  count: { value: 'N', help: 'capture: stop after N packets (ingress and outputs together)' },
  seconds: { value: 'S', help: 'capture: stop after S seconds' },
  ssm: { value: 'yes|no', help: 'add-relay on a multicast group: join source-specifically (default: yes when every --source is one host)' },
  'multicast-ttl': { value: 'N', help: 'add-relay: TTL / hop limit of multicast outputs, 1..255 (default 16)' },
  help: { help: 'show help (after a command: that command\'s help)' },
  version: { help: 'print the version' },
};

interface CtlCommand {
  args: string[];
  help: string;
  options?: string[];
}

const COMMANDS: Record<string, CtlCommand> = {
  list: { args: [], help: 'list relays (with subscribers) and sessions, and where each came from (config or runtime)' },
  subscribe: { args: ['RELAY', 'ADDR:PORT'], help: 'add a subscriber (output) to a relay' },
  unsubscribe: { args: ['RELAY', 'ADDR:PORT'], help: 'remove a subscriber from a relay' },
  'add-relay': { args: ['NAME', 'LISTEN_ADDR:PORT'], options: ['source', 'subscriber', 'ssm', 'multicast-ttl'], help: 'create a relay listening on LISTEN_ADDR:PORT (--source PREFIX at least once)' },
  'remove-relay': { args: ['NAME'], help: 'remove a relay and all its subscribers' },
  'start-session': { args: ['NAME', 'FILE', 'ADDR:PORT'], options: ['format', 'loop'], help: 'stream FILE to ADDR:PORT' },
  'stop-session': { args: ['NAME'], help: 'stop a session' },
  stats: { args: [], help: 'engine, relay and session counters' },
  watch: { args: [], options: ['type'], help: 'print events (JSON lines) as they happen, until interrupted' },
  capture: {
    args: ['NAME'], options: ['out', 'count', 'seconds', 'subscriber'],
    help: 'write a nanosecond pcap of what relay NAME receives and sends, or what session NAME sends (--out FILE.pcap, and --count N and/or --seconds S; --subscriber ADDR:PORT: that output of the relay only)',
  },
};

export const CTL_HELP = `Usage: reflector ctl [--socket PATH | --tcp ADDR:PORT --token TOKEN [--tls-ca FILE]] <command> [args]

A client of the gRPC control API (reflector.v1.Control, docs/api.md).

Commands:
${Object.entries(COMMANDS)
  .map(([n, c]) => `  ${`${n} ${c.args.join(' ')}${c.options ? ' ' + c.options.map((o) => `[--${o}${CTL_OPTIONS[o].value ? ' ' + CTL_OPTIONS[o].value : ''}]`).join(' ') : ''}`.padEnd(62)} ${c.help}`)
  .join('\n')}

Options:
${optionHelp(CTL_OPTIONS)}

Exit codes: 0 ok, 1 the server refused the request (its error code and
message are printed), 2 usage error, 3 the server could not be reached.
`;

/** Help for `ctl` or, when `name` is one of its commands, for that command. */
export function ctlHelp(name: string | undefined): string {
  return name && COMMANDS[name] ? commandHelp(name) : CTL_HELP;
}

function commandHelp(name: string): string {
  const c = COMMANDS[name];
  const opts = c.options ?? [];
  return `Usage: reflector ctl [--socket PATH] ${name} ${c.args.join(' ')}${opts.map((o) => ` [--${o}${CTL_OPTIONS[o].value ? ' ' + CTL_OPTIONS[o].value : ''}]`).join('')}

${c.help}
${opts.length ? `\nOptions:\n${opts.map((o) => `  --${o}${CTL_OPTIONS[o].value ? ' ' + CTL_OPTIONS[o].value : ''}  ${CTL_OPTIONS[o].help}`).join('\n')}\n` : ''}
Common options: --socket PATH, --config FILE, --tcp ADDR:PORT, --token TOKEN, --tls-ca FILE, --timeout MS, --json
`;
}

/** Parse the command line into one control Command (UsageError on any mistake); `watch` is no command. */
export interface CaptureCli {
  request: CaptureRequest;
  /** the pcap file ctl writes (absolute) */
  out: string;
}

export function buildCommand(a: Parsed): { name: string; command: Command | null; capture?: CaptureCli } {
  const [name, ...args] = a.positionals;
  if (!name) throw new UsageError(`ctl: a command is required (commands: ${Object.keys(COMMANDS).join(', ')})`);
  const spec = COMMANDS[name];
  if (!spec) throw new UsageError(`ctl: unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
  if (args.length !== spec.args.length) {
    throw new UsageError(`ctl ${name}: expected ${spec.args.length ? spec.args.join(' ') : 'no arguments'}, got ${args.length} argument(s)`);
  }
  for (const o of ['source', 'subscriber', 'format', 'loop', 'type', 'out', 'count', 'seconds', 'ssm', 'multicast-ttl']) {
    if ((a.options.has(o) || a.flags.has(o)) && !(spec.options ?? []).includes(o)) {
      throw new UsageError(`ctl ${name}: option --${o} does not apply to this command`);
    }
  }
  const ep = (v: string, what: string): string => {
    try {
      parseEndpoint(v, what);
      return v;
    } catch (err) {
      throw new UsageError(`ctl ${name}: ${(err as Error).message}`);
    }
  };
  switch (name) {
    case 'list':
      return { name, command: { type: 'list' } };
    case 'stats':
      return { name, command: { type: 'stats' } };
    case 'subscribe':
      return { name, command: { type: 'subscribe', relay: args[0], subscriber: ep(args[1], 'ADDR:PORT') } };
    case 'unsubscribe':
      return { name, command: { type: 'unsubscribe', relay: args[0], subscriber: ep(args[1], 'ADDR:PORT') } };
    case 'add-relay': {
      const sources = a.options.get('source') ?? [];
      if (!sources.length) throw new UsageError('ctl add-relay: at least one --source PREFIX is required (who may send to this relay)');
      for (const s of sources) {
        try {
          parsePrefix(s, '--source');
        } catch (err) {
          throw new UsageError(`ctl add-relay: ${(err as Error).message}`);
        }
      }
      const subscribers = (a.options.get('subscriber') ?? []).map((s) => ep(s, '--subscriber'));
      const command: Command = { type: 'addRelay', name: args[0], listen: ep(args[1], 'LISTEN_ADDR:PORT'), sources, subscribers };
      const ssm = a.options.get('ssm')?.[0];
      if (ssm !== undefined) {
        if (ssm !== 'yes' && ssm !== 'no') throw new UsageError(`ctl add-relay: --ssm "${ssm}" is not yes or no`);
        command.ssm = ssm === 'yes';
      }
      const ttl = a.options.get('multicast-ttl')?.[0];
      if (ttl !== undefined) {
        if (!/^\d+$/.test(ttl) || Number(ttl) < 1 || Number(ttl) > 255) throw new UsageError(`ctl add-relay: --multicast-ttl "${ttl}" is not an integer in 1..255`);
        command.multicastTtl = Number(ttl);
      }
      return { name, command };
    }
    case 'remove-relay':
      return { name, command: { type: 'removeRelay', name: args[0] } };
    case 'start-session': {
      const format = a.options.get('format')?.[0] ?? 'mpegts';
      if (!['mpegts', 'rtp', 'pcap'].includes(format)) throw new UsageError(`ctl start-session: --format "${format}" is not one of mpegts | rtp | pcap`);
      // a relative FILE is relative to where ctl runs, which the server cannot know
      return { name, command: { type: 'startSession', name: args[0], file: path.resolve(args[1]), to: ep(args[2], 'ADDR:PORT'), format, loop: a.flags.has('loop') } };
    }
    case 'stop-session':
      return { name, command: { type: 'stopSession', name: args[0] } };
    case 'watch': {
      const types = a.options.get('type') ?? [];
      const bad = types.find((x) => !EVENT_TYPES.includes(x as ServerEventType));
      if (bad !== undefined) throw new UsageError(`ctl watch: --type "${bad}" is not an event kind (kinds: ${EVENT_TYPES.join(', ')})`);
      return { name, command: null };
    }
    case 'capture': {
      const out = a.options.get('out')?.[0];
      if (!out) throw new UsageError('ctl capture: --out FILE.pcap is required');
      const num = (o: string, int: boolean): number => {
        const v = a.options.get(o)?.[0];
        if (v === undefined) return 0;
        const n = Number(v);
        if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0) || (int && !Number.isInteger(n))) {
          throw new UsageError(`ctl capture: --${o} "${v}" is not a ${int ? 'positive integer' : 'positive number'}`);
        }
        return n;
      };
      const count = num('count', true);
      const seconds = num('seconds', false);
      if (!count && !seconds) throw new UsageError('ctl capture: give --count N or --seconds S (a capture is bounded)');
      const subs = a.options.get('subscriber') ?? [];
      if (subs.length > 1) throw new UsageError('ctl capture: at most one --subscriber');
      const subscriber = subs.length ? ep(subs[0], '--subscriber') : '';
      return { name, command: null, capture: { request: { name: args[0], count, seconds, subscriber }, out: path.resolve(out) } };
    }
  }
  throw new UsageError(`ctl: unknown command "${name}"`);
}

function target(a: Parsed): ControlTarget {
  const tcp = a.options.get('tcp')?.[0];
  if (tcp) {
    let e;
    try {
      e = parseEndpoint(tcp, '--tcp');
    } catch (err) {
      throw new UsageError(`ctl: ${(err as Error).message}`);
    }
    const token = a.options.get('token')?.[0] ?? process.env.REFLECTOR_TOKEN;
    if (!token) throw new UsageError('ctl: --tcp needs --token TOKEN (or REFLECTOR_TOKEN in the environment)');
    return { host: e.address, port: e.port, token, tls: tlsOf(a) };
  }
  for (const o of ['tls-ca', 'tls-cert', 'tls-key', 'tls-name']) {
    if (a.options.has(o)) throw new UsageError(`ctl: --${o} applies to --tcp only`);
  }
  const socket = a.options.get('socket')?.[0];
  if (socket) return { socket };
  const cfg = a.options.get('config')?.[0];
  if (cfg) {
    try {
      const c = loadConfig(cfg, { checkFiles: false });
      if (!c.control.socket) throw new UsageError(`ctl: ${cfg} has no control.socket (null); use --socket or --tcp`);
      return { socket: c.control.socket };
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`ctl: --config ${cfg}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return { socket: DEFAULT_SOCKET };
}

function tlsOf(a: Parsed): ClientTls | null {
  const read = (o: string): Buffer | null => {
    const f = a.options.get(o)?.[0];
    if (f === undefined) return null;
    try {
      return fs.readFileSync(f);
    } catch (err) {
      throw new UsageError(`ctl: --${o} ${f}: ${(err as Error).message}`);
    }
  };
  const ca = read('tls-ca');
  const cert = read('tls-cert');
  const key = read('tls-key');
  const name = a.options.get('tls-name')?.[0];
  if (!!cert !== !!key) throw new UsageError('ctl: --tls-cert and --tls-key go together');
  if (!ca && !cert && name === undefined) return null;
  return { ca, cert, key, ...(name !== undefined ? { servername: name } : {}) };
}

export async function ctl(a: Parsed, io: Io): Promise<number> {
  const name = a.positionals[0];
  const { command, capture } = buildCommand(a);
  const t = target(a);
  const timeoutText = a.options.get('timeout')?.[0];
  const timeoutMs = timeoutText === undefined ? 10000 : Number(timeoutText);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError(`ctl: --timeout "${timeoutText}" is not a positive integer (milliseconds)`);
  const json = a.flags.has('json');
  // the file first: an --out ctl cannot write is refused before anything is armed
  let pcap: PcapFileSync | null = null;
  if (capture) {
    try {
      pcap = PcapFileSync.open(capture.out, 'ctl capture: --out');
    } catch (err) {
      io.err(`reflector: ${(err as Error).message}\n`);
      return 1;
    }
  }
  let client: ControlClient;
  try {
    client = await ControlClient.connect(t, { timeoutMs });
  } catch (err) {
    if (pcap) discard(pcap);
    if (err instanceof ControlError) {
      io.err(`reflector: ctl: ${err.controlCode}: ${err.message}\n`);
      return err.controlCode === 'ERR_UNAUTHENTICATED' ? 1 : 3;
    }
    io.err(`reflector: ctl: ${(err as Error).message}\n`);
    return 3;
  }
  if (capture && pcap) return captureTo(client, capture, pcap, timeoutMs, json, io);
  if (command === null) return watch(client, (a.options.get('type') ?? []) as ServerEventType[], io);
  try {
    const r = await client.request(command, timeoutMs);
    if (r.type === 'list') {
      if (json) io.out(JSON.stringify({ relays: r.relays, sessions: r.sessions }, null, 2) + '\n');
      else {
        if (!r.relays.length && !r.sessions.length) io.out('no relays, no sessions\n');
        for (const x of r.relays) {
          io.out(`relay ${x.name} listen ${x.listen} sources ${x.sources.join(',')} (${x.origin})\n`);
          for (const s of x.subscribers) io.out(`  subscriber ${s}\n`);
        }
        for (const s of r.sessions) io.out(`session ${s.name} ${s.format} ${s.file} -> ${s.to}${s.loop ? ' loop' : ''} (${s.origin})\n`);
      }
    } else if (r.type === 'stats') {
      io.out(json ? JSON.stringify(statsJson(r.stats), null, 2) + '\n' : statsText(r.stats));
    } else if (json) io.out('{"ok":true}\n');
    else io.out('ok\n');
    return 0;
  } catch (err) {
    // a status the transport made (UNAVAILABLE, ...) means the server was not reached
    if (err instanceof ControlError && err.controlCode !== 'ERR_TIMEOUT' && err.controlCode.startsWith('ERR_')) {
      io.err(`reflector: ctl ${name}: ${err.controlCode}: ${err.message}\n`);
      return 1;
    }
    io.err(`reflector: ctl ${name}: ${(err as Error).message}\n`);
    return err instanceof ReflectorError && err.code === 'ERR_CLOSED' ? 3 : err instanceof ControlError ? 3 : 1;
  } finally {
    client.close();
  }
}

/** `ctl watch`: one JSON line per event until SIGINT/SIGTERM (exit 0) or the server ends the stream. */
async function watch(client: ControlClient, types: ServerEventType[], io: Io): Promise<number> {
  const w = client.watch(types);
  w.on('event', (ev) => io.out(JSON.stringify(ev) + '\n'));
  const stop = (): void => w.cancel();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const err = await w.ended;
    if (err) {
      io.err(`reflector: ctl watch: ${err.controlCode}: ${err.message}\n`);
      return err.controlCode === 'ERR_UNAUTHENTICATED' || err.controlCode === 'ERR_INVALID_ARG' ? 1 : 3;
    }
    return 0;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    client.close();
  }
}

/** Remove a pcap file of a capture that never started. */
function discard(p: PcapFileSync): void {
  try {
    p.close();
    fs.rmSync(p.file, { force: true });
  } catch {
    // nothing more to do
  }
}

/** `ctl capture`: the Capture stream into a nanosecond pcap file; SIGINT/SIGTERM stop it (what arrived is kept). */
async function captureTo(client: ControlClient, c: CaptureCli, pcap: PcapFileSync, timeoutMs: number, json: boolean, io: Io): Promise<number> {
  const cap = client.capture(c.request, timeoutMs);
  cap.on('packet', (p) => pcap.add(p.tsNs, p.frame, p.wireLength));
  const stop = (): void => cap.cancel();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let armed = false;
  cap.armed.then(
    () => {
      armed = true;
      io.err(`capturing ${c.request.name} to ${c.out}\n`);
    },
    () => undefined,
  );
  try {
    const end = await cap.ended;
    pcap.close();
    if (json) io.out(JSON.stringify({ packets: pcap.packets, dropped: end.dropped, file: c.out, ...(end.cancelled ? { cancelled: true } : {}) }) + '\n');
    else io.out(`captured ${pcap.packets} packets to ${c.out}${end.dropped ? ` (${end.dropped} dropped: the capture ring was full; the relay lost none)` : ''}${end.cancelled ? ' (interrupted)' : ''}\n`);
    return 0;
  } catch (err) {
    const e = err as ControlError;
    // nothing armed: no file; else what arrived stays in it
    if (!armed && pcap.packets === 0) discard(pcap);
    else {
      try {
        pcap.close();
      } catch {
        // reported below
      }
    }
    io.err(`reflector: ctl capture: ${e.controlCode ?? 'ERR_CAPTURE'}: ${e.message}${pcap.packets ? ` (${pcap.packets} packets written to ${c.out})` : ''}\n`);
    return e instanceof ControlError && e.controlCode.startsWith('ERR_') && e.controlCode !== 'ERR_TIMEOUT' ? 1 : e instanceof ControlError ? 3 : 1;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    client.close();
  }
}

function statsJson(s: StatsResult): unknown {
  return {
    ...s,
    configReloads: Number(s.configReloads),
    configReloadFailures: Number(s.configReloadFailures),
    counters: s.counters.map((c) => ({ ...c, value: c.value.toString() })),
  };
}

function statsText(s: StatsResult): string {
  const lines = [
    `engine_running ${s.engineRunning ? 1 : 0}`,
    `ready ${s.ready ? 1 : 0}`,
    `config_reloads ${s.configReloads}`,
    `config_reload_failures ${s.configReloadFailures}`,
  ];
  for (const c of s.counters) {
    const labels = Object.entries(c.labels).map(([k, v]) => `${k}="${v}"`).join(',');
    lines.push(`${c.name}${labels ? `{${labels}}` : ''} ${c.value}`);
  }
  return lines.join('\n') + '\n';
}
