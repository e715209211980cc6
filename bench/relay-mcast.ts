// SPDX-License-Identifier: MIT
// Multicast and capture benchmark (issue #14), in one run against named
// baselines, on one Ethernet segment (origin, relay, receiver on a bridge):
//   unicast8   the relay splits each datagram to 8 unicast outputs (baseline)
//   mcast1     one multicast output to 239.2.2.2: one frame for every receiver
//              that joined (here one joined socket on the receiver host; the
//              relay's cost does not depend on how many joined)
//   nocap      a 1:2 relay (baseline)
//   capture    the same relay while `relays.captureToFile()` runs (in-process)
//   ctlcap     the same relay while `reflector ctl capture` (a child process)
//              writes the pcap from the control API's Capture stream, served
//              by a ControlServer in this process: the server's cost of it
// Each case sends the same paced stream (seq_udp, --pps for --ms) and
// records, from the engine's counters: frames the relay put on the wire per
// ingress datagram, the process's CPU per ingress datagram (all engine
// threads and, with a capture, the main thread draining it), delivered
// datagrams at the receivers, and the capture's drops. Medians of --runs.
//   npm run bench -- relay-mcast [--runs 3] [--ms 2000] [--pps 20000] [--size 1316] [--readme]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Engine } from '../src/engine/engine';
import { Relays } from '../src/relay/relays';
import { followFixture } from '../test/helpers/fixture-process';
import { compileFixture } from '../test/helpers/cc';
import { Testbed, netnsUnavailable } from '../test/helpers/testbed';
import { median } from './lib/measure';
import { commandOf, measuredOn, writeResults } from './lib/readme';
import { spawn } from 'node:child_process';
import { ControlServer } from '../src/control/server';
import { ControlError } from '../src/control/types';
import { capturePackets } from '../src/server/handler';
import { createLogger } from '../src/log';

interface Options { runs: number; ms: number; pps: number; size: number; readme: boolean }

function parse(args: string[]): Options {
  const o: Options = { runs: 3, ms: 2000, pps: 20000, size: 1316, readme: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = (): number => {
      const v = Number(args[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`relay-mcast: ${a} needs a positive number`);
      return v;
    };
    if (a === '--runs') o.runs = next();
    else if (a === '--ms') o.ms = next();
    else if (a === '--pps') o.pps = next();
    else if (a === '--size') o.size = next();
    else if (a === '--readme') o.readme = true;
    // the other benches' options (npm run bench -- relay relay-mcast --fanouts ...) are theirs
    else process.stdout.write(`relay-mcast: ignoring ${a}\n`);
  }
  return o;
}

interface Sample { wirePerIn: number; cpuUsPerIn: number; delivered: number; capDropped: number; capPackets: number }

type Case = 'unicast8' | 'mcast1' | 'nocap' | 'capture' | 'ctlcap';

export async function main(args: string[]): Promise<void> {
  const why = netnsUnavailable();
  if (why) {
    process.stdout.write(`relay-mcast: skipped: ${why}\n`);
    return;
  }
  const o = parse(args);
  const seq = compileFixture('seq_udp');
  if ('missing' in seq) {
    process.stdout.write(`relay-mcast: skipped: seq_udp fixture: ${seq.missing}\n`);
    return;
  }
  const tb = await Testbed.create(null, { hosts: ['origin', 'relay', 'rcv'], segments: [['origin', 'relay', 'rcv']] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-bench-mcast-'));
  const engine = new Engine({ interface: tb.iface('relay').name, netns: tb.ns('relay'), backend: 'afpacket', txFrames: 8192 });
  try {
    await engine.start();
    const relays = new Relays(engine, { refreshMs: 0 });
    await relays.start();
    const socket = path.join(dir, 'ctl.sock');
    const control = new ControlServer({
      socket,
      handler: {
        handle: async () => {
          throw new ControlError('ERR_UNAVAILABLE', 'bench: Capture only');
        },
        capture: (req, co) => capturePackets(relays.capture(req.name, { seconds: req.seconds, signal: co.signal, onArmed: co.onArmed })),
      },
      log: createLogger({ write: () => undefined }),
    });
    await control.start();
    const listen = `${tb.addr('relay')}:5000`;
    const count = Math.round((o.pps * o.ms) / 1000);
    const results = new Map<Case, Sample[]>();
    const run = async (c: Case): Promise<Sample> => {
      const outs = c === 'unicast8'
        ? Array.from({ length: 8 }, (_, i) => `${tb.addr('rcv')}:${6000 + i}`)
        : c === 'mcast1' ? ['239.2.2.2:6000'] : [`${tb.addr('rcv')}:6000`, `${tb.addr('rcv')}:6001`];
      await relays.addRelay({ name: 'b', listen, sources: ['198.18.0.0/15'], subscribers: outs });
      // receivers: unicast ports, or a socket that joined the group (one frame serves any number)
      const rxArgv = c === 'mcast1'
        ? [process.execPath, path.join(__dirname, '..', 'test', 'relay', 'port-receiver.js'), '--addr', '239.2.2.2', '--ports', '6000',
          '--count', String(count), '--timeout-ms', String(o.ms + 8000), '--idle-ms', '1500', '--join', tb.addr('rcv')]
        : [seq.bin, 'recv', '--addr', tb.addr('rcv'), '--ports', outs.map((x) => x.split(':')[1]).join(','), '--count', String(count),
          '--timeout-ms', String(o.ms + 8000), '--idle-ms', '1500'];
      // ctl first: its start-up must not count against the receiver's idle timer
      const ctlcap = c === 'ctlcap' ? ctlCapture(socket, path.join(dir, 'c.pcap'), o.ms / 1000 + 15) : null;
      if (ctlcap) await ctlcap.armed;
      const rx = followFixture<{ ports: Record<string, { received: number }> }>(tb.spawn('rcv', rxArgv), 'receiver');
      await rx.ready;
      const cap = c === 'capture' ? relays.captureToFile('b', path.join(dir, 'b.pcap'), { seconds: o.ms / 1000 + 5 }) : null;
      if (cap) await new Promise((r) => setTimeout(r, 100));
      const in0 = engine.region.counter(1, 'relay_in');
      const out0 = engine.region.counter(1, 'relay_out');
      const cpu0 = process.cpuUsage();
      const tx = followFixture<{ sent: number }>(tb.spawn('origin', [seq.bin, 'send', '--from', `${tb.addr('origin')}:4444`, '--to', listen,
        '--count', String(count), '--pps', String(o.pps), '--size', String(o.size)]), 'origin');
      await tx.result;
      const got = await rx.result;
      const cpu = process.cpuUsage(cpu0);
      const inN = Number(engine.region.counter(1, 'relay_in') - in0);
      const outN = Number(engine.region.counter(1, 'relay_out') - out0);
      let capPackets = 0;
      let capDropped = 0;
      if (cap || ctlcap) {
        // stop it now: the bound is only a backstop
        await relays.removeRelay('b');
        const s = cap ? await cap : await ctlcap!.done;
        capPackets = s.packets;
        capDropped = s.dropped;
      } else {
        await relays.removeRelay('b');
      }
      const delivered = Object.values(got.ports).reduce((a, p) => a + p.received, 0) / (c === 'mcast1' ? 1 : outs.length);
      return { wirePerIn: inN ? outN / inN : 0, cpuUsPerIn: inN ? (cpu.user + cpu.system) / inN : 0, delivered, capDropped, capPackets };
    };
    const cases: Case[] = ['unicast8', 'mcast1', 'nocap', 'capture', 'ctlcap'];
    for (let r = 0; r < o.runs; r++) {
      for (const c of cases) {
        const s = await run(c);
        if (!results.has(c)) results.set(c, []);
        results.get(c)!.push(s);
        process.stdout.write(`  run ${r + 1} ${c}: ${s.wirePerIn.toFixed(2)} frames/datagram, ${s.cpuUsPerIn.toFixed(2)} us CPU/datagram, delivered ${s.delivered}/${count}${c === 'capture' || c === 'ctlcap' ? `, captured ${s.capPackets}, capture dropped ${s.capDropped}` : ''}\n`);
      }
    }
    const med = (c: Case, k: keyof Sample): number => median(results.get(c)!.map((s) => s[k]));
    const lines = [
      `Measured ${measuredOn()}; ${o.pps} datagrams/s of ${o.size} bytes for ${o.ms} ms, medians of ${o.runs} runs.`,
      commandOf('relay-mcast', args),
      '',
      '| case | frames on the wire per datagram | CPU per datagram (us) | delivered (of ' + count + ') | capture dropped |',
      '|---|---|---|---|---|',
      ...cases.map((c) => `| ${c} | ${med(c, 'wirePerIn').toFixed(2)} | ${med(c, 'cpuUsPerIn').toFixed(2)} | ${med(c, 'delivered')} | ${c === 'capture' || c === 'ctlcap' ? med(c, 'capDropped') : '-'} |`),
      '',
      `mcast1 / unicast8: ${(med('mcast1', 'wirePerIn') / med('unicast8', 'wirePerIn')).toFixed(3)} x the frames, ${(med('mcast1', 'cpuUsPerIn') / med('unicast8', 'cpuUsPerIn')).toFixed(3)} x the CPU per datagram (8 receivers served either way).`,
      `capture / nocap: ${(med('capture', 'cpuUsPerIn') / med('nocap', 'cpuUsPerIn')).toFixed(3)} x the CPU per datagram, ${(med('capture', 'delivered') / Math.max(1, med('nocap', 'delivered'))).toFixed(4)} x the delivered datagrams.`,
      `ctlcap / nocap: ${(med('ctlcap', 'cpuUsPerIn') / med('nocap', 'cpuUsPerIn')).toFixed(3)} x the CPU per datagram (this process: engine and the gRPC stream; ctl's own not counted), ${(med('ctlcap', 'delivered') / Math.max(1, med('nocap', 'delivered'))).toFixed(4)} x the delivered datagrams.`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (o.readme) writeResults('relay-mcast', lines, '## Multicast output and capture (relay-mcast)\n\nOne multicast output against 8 unicast outputs on one segment, and a relay with a capture running against none (bench/relay-mcast.ts).');
    await control.stop();
    await relays.stop();
  } finally {
    if (engine.running) await engine.stop();
    await tb.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `reflector ctl capture b` in a child process: armed when it says so, done with its JSON summary. */
function ctlCapture(socket: string, out: string, seconds: number): { armed: Promise<void>; done: Promise<{ packets: number; dropped: number }> } {
  const bin = path.join(__dirname, '..', '..', 'bin', 'reflector.js');
  const c = spawn(process.execPath, [bin, 'ctl', '--socket', socket, '--json', 'capture', 'b', '--out', out, '--seconds', String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let armed!: () => void;
  const a = new Promise<void>((r) => (armed = r));
  c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  c.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (/^capturing /m.test(stderr)) armed();
  });
  const done = new Promise<{ packets: number; dropped: number }>((resolve, reject) => c.on('exit', (code) => {
    armed();
    if (code !== 0) return reject(new Error(`ctl capture exited ${code}: ${stderr.trim()}`));
    const j = JSON.parse(stdout) as { packets: number; dropped: number };
    resolve({ packets: j.packets, dropped: j.dropped });
  }));
  return { armed: a, done };
}
