// SPDX-License-Identifier: MIT
// `npm run soak [-- --minutes M]`: the long run the suite cannot afford
// (10 minutes by default; not part of `npm test`). The real server in this
// process, its engine on the relay host of a namespace testbed:
//   - 20 sessions (looped MPEG-TS) to a sink host;
//   - 4 relays at 1:8 fed by one C sender each from an origin host;
//   - a config reload every 5 s (it adds and removes a fifth relay and a
//     21st session in turn);
//   - 100 control requests per second (list, stats, subscribe/unsubscribe
//     and start/stop on runtime objects, and some bad input).
// At the end the engine's counters must reconcile exactly (every descriptor
// a lane submitted was consumed, and sent or dropped; every frame a relay
// took in went to each of its 8 outputs, sent or dropped), and memory and
// file descriptors must be flat. It prints the figures and exits 1 when a
// check fails.
//
// Run it alone: `flock /tmp/reflector-heavy.lock npm run soak`.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ControlClient } from '../../src/control/client';
import type { Command, Result } from '../../src/control/types';
import type { Engine } from '../../src/engine/engine';
import { createLogger } from '../../src/log';
import { HDR, LANE, RING } from '../../src/region/layout';
import { realDeps } from '../../src/server/adapters';
import type { StampedEvent } from '../../src/server/events';
import { Server } from '../../src/server/server';
import { compileFixture } from '../helpers/cc';
import { Testbed, netnsUnavailable } from '../helpers/testbed';

const ROOT = path.resolve(__dirname, '../../..');
const RELAYS = 4;
const FANOUT = 8;
const SESSIONS = 20;
const RELAY_PPS = 500;
const RELOAD_MS = 5000;
const REQUESTS_PER_S = 100;

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

/** The one place the soak talks to the control API (a one-line change to move it to another client). */
let client: ControlClient | null = null;
async function control(c: Command): Promise<Result> {
  return client!.request(c);
}

function fdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

async function main(): Promise<void> {
  const minutes = arg('--minutes', 10);
  const durationMs = Math.round(minutes * 60_000);
  const skip = netnsUnavailable() ?? (process.getuid?.() !== 0 ? 'needs root' : null);
  if (skip) {
    process.stdout.write(`soak: SKIP: ${skip}\n`);
    return;
  }
  const seq = compileFixture('seq_udp');
  if ('missing' in seq) throw new Error(`soak: the C sender cannot be built: ${seq.missing}`);
  const tb = await Testbed.create(null, { hosts: ['origin', 'relay', 'sink'], segments: [['origin', 'relay', 'sink']] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-soak-'));
  let server: Server | null = null;
  const failures: string[] = [];
  const check = (ok: boolean, what: string): void => {
    process.stdout.write(`  ${ok ? 'ok  ' : 'FAIL'} ${what}\n`);
    if (!ok) failures.push(what);
  };
  try {
    // the sink takes everything in silence (no ICMP port unreachable back)
    await tb.exec('sink', ['nft', '-f', '-'], { input: 'table inet soak {\n chain sink {\n  type filter hook input priority 0; policy accept;\n  udp dport 6000-7999 drop\n }\n}\n' });
    const media = path.join(dir, 'media');
    fs.mkdirSync(media);
    fs.copyFileSync(path.join(ROOT, 'media/sample.ts'), path.join(media, 'sample.ts'));
    const relayAddr = tb.addr('relay');
    const origin = tb.addr('origin');
    const sink = tb.addr('sink');
    const file = path.join(dir, 'reflector.yaml');
    const relay = (i: number): string =>
      `  - name: r${i}\n    listen: ${relayAddr}:${5000 + i}\n    sources: [${origin}/32]\n    subscribers: [${Array.from({ length: FANOUT }, (_, k) => `${sink}:${6000 + i * 100 + k}`).join(', ')}]\n`;
    const session = (i: number): string => `  - name: s${i}\n    file: media/sample.ts\n    to: ${sink}:${7000 + i}\n    loop: true\n`;
    const config = (flip: boolean): string =>
      `engine:\n  interface: ${tb.iface('relay').name}\n  netns: ${tb.ns('relay')}\n  workers: 2\n  drain_ms: 200\n` +
      `metrics:\n  listen: 127.0.0.1:0\ncontrol:\n  socket: ctl.sock\nmedia_root: media\n` +
      `relays:\n${Array.from({ length: RELAYS }, (_, i) => relay(i)).join('')}${flip ? relay(9) : ''}` +
      `sessions:\n${Array.from({ length: SESSIONS }, (_, i) => session(i)).join('')}${flip ? session(SESSIONS) : ''}`;
    fs.writeFileSync(file, config(false));
    let engine: Engine | null = null;
    const events: StampedEvent[] = [];
    server = new Server({
      configFile: file, deps: (c, l) => realDeps(c, l, { onEngine: (e) => (engine = e) }),
      log: createLogger({ level: 'warn' }), fixedLogLevel: true, watch: false, processMetrics: false,
    });
    server.events.subscribe((e) => events.push(e));
    await server.start();
    const e = engine as unknown as Engine;
    client = await ControlClient.connect({ socket: path.join(dir, 'ctl.sock') }, { timeoutMs: 20_000 });
    process.stdout.write(`soak: ${minutes} min, ${SESSIONS} sessions, ${RELAYS} relays at 1:${FANOUT} (${RELAY_PPS} pps in each), a reload every ${RELOAD_MS / 1000} s, ${REQUESTS_PER_S} control requests/s\n`);

    // the origin: one bounded C sender per relay
    const count = Math.round((RELAY_PPS * durationMs) / 1000);
    const senders = Array.from({ length: RELAYS }, (_, i) => {
      const child = tb.spawn('origin', [seq.bin, 'send', '--from', `${origin}:${4000 + i}`, '--to', `${relayAddr}:${5000 + i}`, '--count', String(count), '--pps', String(RELAY_PPS), '--size', '200']);
      return new Promise<string>((resolve) => {
        let out = '';
        child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
        child.on('exit', () => resolve(out.trim()));
      });
    });

    // reloads and control requests until the senders are done
    let flip = false;
    let reloads = 0;
    let reloadsFailed = 0;
    const reloader = setInterval(() => {
      flip = !flip;
      fs.writeFileSync(file, config(flip));
      void server!.reload('soak').then((r) => (r === 'applied' ? reloads++ : reloadsFailed++));
    }, RELOAD_MS);
    const requests = { sent: 0, ok: 0, refused: 0, errors: new Map<string, number>() };
    let k = 0;
    const mix = (): Command => {
      const i = k++;
      switch (i % 20) {
        case 0: return { type: 'addRelay', name: 'rt', listen: `${relayAddr}:5900`, sources: [`${origin}/32`], subscribers: [`${sink}:6900`] };
        case 1: return { type: 'subscribe', relay: 'rt', subscriber: `${sink}:6901` };
        case 2: return { type: 'unsubscribe', relay: 'rt', subscriber: `${sink}:6901` };
        case 3: return { type: 'removeRelay', name: 'rt' };
        case 4: return { type: 'startSession', name: 'rt', file: 'sample.ts', to: `${sink}:7900`, format: 'mpegts', loop: false };
        case 5: return { type: 'stopSession', name: 'rt' };
        case 6: return { type: 'startSession', name: 'evil', file: '/etc/passwd', to: `${sink}:7901`, format: 'mpegts', loop: false };
        case 7: return { type: 'addRelay', name: 'x'.repeat(40), listen: '[fe80::1%eth0]:1', sources: ['0.0.0.0/0'], subscribers: [] };
        case 8: case 9: case 10: return { type: 'stats' };
        default: return { type: 'list' };
      }
    };
    const fire = setInterval(() => {
      for (let n = 0; n < REQUESTS_PER_S / 10; n++) {
        requests.sent++;
        const c = mix();
        control(c).then(
          (r) => {
            if (r.type === 'error') {
              requests.refused++;
              requests.errors.set(r.code, (requests.errors.get(r.code) ?? 0) + 1);
            } else requests.ok++;
          },
          (err: Error & { controlCode?: string }) => {
            // an error answer: the request was refused (a bad one on purpose, or a state conflict)
            const key = err.controlCode ?? `client: ${err.message}`;
            if (err.controlCode) requests.refused++;
            requests.errors.set(key, (requests.errors.get(key) ?? 0) + 1);
          },
        );
      }
    }, 100);
    const mem: Array<{ at: number; rss: number; heap: number; fds: number }> = [];
    const t0 = Date.now();
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      mem.push({ at: Date.now() - t0, rss: m.rss, heap: m.heapUsed, fds: fdCount() });
      const last = mem[mem.length - 1];
      if (mem.length % 12 === 0) process.stdout.write(`  ${(last.at / 1000).toFixed(0)} s: rss ${(last.rss / 2 ** 20).toFixed(0)} MiB, heap ${(last.heap / 2 ** 20).toFixed(0)} MiB, fds ${last.fds}, requests ${requests.sent}, reloads ${reloads}\n`);
    }, 5000);
    const sent = await Promise.all(senders);
    clearInterval(fire);
    clearInterval(reloader);
    clearInterval(sampler);
    // the API's runtime objects go; the file's stay; then everything drains
    await new Promise((r) => setTimeout(r, 3000));
    await control({ type: 'stopSession', name: 'rt' }).catch(() => undefined);
    await control({ type: 'removeRelay', name: 'rt' }).catch(() => undefined);
    const list = (await control({ type: 'list' })) as Extract<Result, { type: 'list' }>;
    for (const s of list.sessions) await control({ type: 'stopSession', name: s.name });
    await new Promise((r) => setTimeout(r, 3000));

    // ------------------------------------------------------------ figures --
    const r = e.region;
    const c = (th: 0 | 1, n: string): bigint => r.counter(th, n);
    let submitted = 0n;
    for (let l = 0; l < r.laneCount; l++) {
      const sub = r.u32[(HDR.lanes + l * LANE.size + LANE.submitOff) >> 2];
      submitted += BigInt(r.u32[(sub + RING.producer) >> 2]);
    }
    let streamSent = 0n;
    let streamDropped = 0n;
    for (let s = 0; s < r.maxStreams; s++) {
      const sc = r.streamCounters(s);
      streamSent += sc.packets;
      streamDropped += sc.dropped;
    }
    const txDrops = ['drop_bad_slot', 'drop_bad_dest', 'drop_bad_len', 'drop_late', 'drop_tx_error'].reduce((a, n) => a + c(0, n), 0n);
    const consumed = c(0, 'desc_consumed');
    const metrics = await (await fetch(`http://127.0.0.1:${server.metricsAddress!.port}/metrics`)).text();
    const series = (name: string): bigint => BigInt(Math.round(Number(metrics.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? 'NaN')));
    process.stdout.write('\nsoak figures:\n');
    process.stdout.write(`  sessions: submitted ${submitted}, consumed ${consumed}, sent ${c(0, 'tx_packets')}, dropped ${txDrops} (late ${c(0, 'drop_late')}); per stream: sent ${streamSent}, dropped ${streamDropped}\n`);
    check(submitted === consumed, 'every descriptor the lanes submitted was consumed');
    check(consumed === c(0, 'tx_packets') + txDrops, 'consumed = sent + dropped (engine counters)');
    check(streamSent + streamDropped === consumed, 'sent + dropped over the stream counters = submitted');
    let relayIn = 0n;
    let relayOut = 0n;
    for (let i = 0; i < RELAYS; i++) {
      const st = (await control({ type: 'stats' })) as Extract<Result, { type: 'stats' }>;
      const v = (name: string, labels: Record<string, string>): bigint =>
        st.stats.counters.filter((x) => x.name === name && Object.entries(labels).every(([a, b]) => x.labels[a] === b)).reduce((a, x) => a + x.value, 0n);
      const taken = v('reflector_relay_received_packets_total', { relay: `r${i}` });
      const out = v('reflector_relay_subscriber_packets_total', { relay: `r${i}` });
      const drops = v('reflector_relay_subscriber_drops_total', { relay: `r${i}` });
      const refused = v('reflector_relay_not_allowed_packets_total', { relay: `r${i}` }) + v('reflector_relay_rate_limited_packets_total', { relay: `r${i}` });
      relayIn += taken + refused;
      relayOut += out;
      process.stdout.write(`  relay r${i}: took in ${taken}, sent ${out} + dropped ${drops} to ${FANOUT} outputs\n`);
      check(out + drops === BigInt(FANOUT) * taken, `r${i}: sent + dropped = ${FANOUT} x taken in`);
    }
    process.stdout.write(`  engine RX: rx_packets ${c(1, 'rx_packets')}, relay_in ${c(1, 'relay_in')}, relay_out ${c(1, 'relay_out')}, drop_rx_ring ${c(1, 'drop_rx_ring')}, drop_tx_full ${c(1, 'drop_tx_full')}\n`);
    process.stdout.write(`  origin: ${sent.join(' ')}\n`);
    check(c(1, 'relay_in') === relayIn, 'relay_in = what the 4 relays took in or refused');
    check(c(1, 'relay_out') === relayOut, 'relay_out = what their outputs were sent');
    check(series('reflector_pool_used_slots') === 0n, `no pool slot missing (reflector_pool_used_slots ${series('reflector_pool_used_slots')})`);
    process.stdout.write(`  control: ${requests.sent} requests, ${requests.ok} ok, ${requests.refused} refused (${[...requests.errors].map(([k2, v]) => `${k2} ${v}`).join(', ')})\n`);
    check(![...requests.errors.keys()].some((k2) => k2.startsWith('client:') || k2 === 'ERR_INTERNAL'), 'every control request got an answer, none an internal error');
    process.stdout.write(`  reloads: ${reloads} applied, ${reloadsFailed} failed; events: ${events.length} (${[...new Set(events.map((x) => x.type))].join(', ')})\n`);
    check(reloadsFailed === 0, 'every reload applied');
    // memory and descriptors: the first minute against the last
    const window = Math.min(60_000, durationMs / 3);
    const head = mem.filter((m) => m.at <= window + 5000);
    const tail = mem.filter((m) => m.at >= durationMs - window - 5000);
    const mb = (x: number): string => (x / 2 ** 20).toFixed(1);
    const rss0 = median(head.map((m) => m.rss));
    const rss1 = median(tail.map((m) => m.rss));
    const heap0 = median(head.map((m) => m.heap));
    const heap1 = median(tail.map((m) => m.heap));
    const fd0 = median(head.map((m) => m.fds));
    const fd1 = median(tail.map((m) => m.fds));
    process.stdout.write(`  memory: rss ${mb(rss0)} -> ${mb(rss1)} MiB, heap ${mb(heap0)} -> ${mb(heap1)} MiB (medians of the first and the last minute); fds ${fd0} -> ${fd1}\n`);
    check(rss1 <= rss0 * 1.15 + 16 * 2 ** 20, 'rss flat (within 15 % + 16 MiB)');
    check(heap1 <= heap0 * 1.25 + 8 * 2 ** 20, 'heap flat (within 25 % + 8 MiB)');
    check(Math.abs(fd1 - fd0) <= 4, 'file descriptors flat (within 4)');
  } finally {
    client?.close();
    await server?.stop().catch(() => undefined);
    await tb.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(failures.length ? `soak: ${failures.length} check(s) failed\n` : 'soak: every check passed\n');
  process.exitCode = failures.length ? 1 : 0;
}

void main().catch((err: unknown) => {
  process.stderr.write(`soak: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
