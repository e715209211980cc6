// SPDX-License-Identifier: MIT
// Benchmark for issue #3: throughput of the aggregate path against Node
// dgram per-packet sends and C sendmmsg, in ONE run, on a veth pair into a
// namespace that counts and drops every frame at ingress (nftables netdev
// hook: no IP processing, no ICMP back).
//
//   node       bench/lib/node-udp-sender.ts: dgram send loop, one sendmsg per packet
//   sendmmsg   bench/c/sendmmsg_bench.c: 64 datagrams per sendmmsg()
//   aggregate  this file's child: the Aggregate builder on lane 0 (take 64
//              slots, copy the payload into each, addAt(now), submit: one ring
//              submission per 64 packets), the engine's TX thread (afpacket)
//
// Per method: packets/s, CPU s per million packets (every thread of the
// sending process), system calls per packet and context switches per packet;
// medians of --runs, ratios against node and sendmmsg of the same run.
// System calls: aggregate = the engine's tx_syscalls counter (its TX thread;
// the producer makes none unless it waits for a slot: futex, counted by
// strace in the --strace pass); sendmmsg = its own count; node = strace.
//   npm run bench -- aggregate [--runs 3] [--duration-ms 1000] [--size 1316] [--no-strace]
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Aggregate } from '../src/aggregate/aggregate';
import { Engine } from '../src/engine/engine';
import { parseEndpoint } from '../src/net/address';
import { makeDestination } from '../src/net/destination';
import { Testbed, netnsUnavailable } from '../test/helpers/testbed';
import { compileBench, dataPathCalls, holdSharedLock, median, runChild, straceSelf, usageBetween, usageMark } from './lib/measure';
import { commandOf, measuredOn, writeResults } from './lib/readme';

const PORT = 9;
const METHODS = ['node', 'sendmmsg', 'aggregate'] as const;
type Method = (typeof METHODS)[number];

interface Sample {
  method: Method;
  pps: number;
  cpuPerM: number;
  sysPerPkt: number;
  ctxPerPkt: number;
}

function parseArgs(args: string[]): { runs: number; durationMs: number; size: number; strace: boolean; readme: boolean } {
  const o = { runs: 3, durationMs: 1000, size: 1316, strace: true, readme: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = (): number => Number(args[++i]);
    if (a === '--runs') o.runs = v();
    else if (a === '--duration-ms') o.durationMs = v();
    else if (a === '--size') o.size = v();
    else if (a === '--no-strace') o.strace = false;
    else if (a === '--readme') o.readme = true;
    else throw new Error(`bench aggregate: unknown option "${a}" (accepted: --runs, --duration-ms, --size, --no-strace, --readme)`);
  }
  if (!(o.runs >= 1 && o.durationMs >= 100 && o.size >= 1 && o.size <= 1472)) throw new Error('bench aggregate: --runs >= 1, --duration-ms >= 100, --size 1..1472');
  return o;
}

function num(j: Record<string, unknown>, k: string): number {
  const v = j[k];
  return typeof v === 'number' ? v : NaN;
}

export async function main(args: string[] = []): Promise<void> {
  const o = parseArgs(args);
  const why = netnsUnavailable();
  if (why) {
    process.stdout.write(`bench aggregate: SKIPPED: ${why}\n`);
    return;
  }
  const mm = compileBench('sendmmsg_bench');
  const methods = METHODS.filter((m) => m !== 'sendmmsg' || !('missing' in mm));
  if ('missing' in mm) process.stdout.write(`bench aggregate: sendmmsg left out: ${mm.missing}\n`);
  const unlock = await holdSharedLock('/tmp/rf-gyp.lock');
  const tb = await Testbed.create(null, { hosts: ['a', 'b'], links: [['a', 'b']] });
  try {
    await tb.exec('a', ['ip', 'neigh', 'replace', tb.addr('b'), 'lladdr', tb.mac('b'), 'dev', 'veth0', 'nud', 'permanent']);
    await tb.exec('b', ['nft', '-f', '-'], {
      input: 'table netdev rfagg {\n chain in {\n  type filter hook ingress device "veth0" priority -500; policy accept;\n  counter drop\n }\n}\n',
    });
    const common = ['--size', String(o.size), '--warmup-ms', '200', '--duration-ms', String(o.durationMs)];
    const argv = (m: Method, strace = false): string[] => {
      switch (m) {
        case 'node':
          return ['ip', 'netns', 'exec', tb.ns('a'), process.execPath, join(__dirname, 'lib', 'node-udp-sender.js'), '--to', tb.addr('b'), '--port', String(PORT), ...common, ...(strace ? ['--strace'] : [])];
        case 'sendmmsg':
          return ['ip', 'netns', 'exec', tb.ns('a'), (mm as { bin: string }).bin, '--dst', tb.addr('b'), '--port', String(PORT), '--batch', '64', ...common];
        case 'aggregate':
          return [process.execPath, __filename, '--child-aggregate', '--netns', tb.ns('a'), '--to', tb.addr('b'), '--port', String(PORT), ...common, ...(strace ? ['--strace'] : [])];
      }
    };
    const samples: Sample[] = [];
    for (let run = 0; run < o.runs; run++) {
      for (let k = 0; k < methods.length; k++) {
        const m = methods[(k + run) % methods.length]; // rotate: host drift hits every method alike
        const r = await runChild(argv(m), { timeMs: m === 'sendmmsg' });
        const j = r.json;
        const packets = num(j, 'packets');
        const seconds = num(j, 'seconds');
        const cpu = num(j, 'cpuUser') + num(j, 'cpuSys');
        const ctx = num(j, 'ctxVoluntary') + num(j, 'ctxInvoluntary');
        const s: Sample = { method: m, pps: packets / seconds, cpuPerM: cpu / (packets / 1e6), sysPerPkt: num(j, 'syscalls') / packets, ctxPerPkt: ctx / packets };
        samples.push(s);
        process.stdout.write(`  run ${run + 1} ${m.padEnd(9)} ${(s.pps / 1e6).toFixed(3)} Mpps  ${s.cpuPerM.toFixed(2)} cpu-s/Mpkt  ${s.ctxPerPkt.toFixed(4)} ctx/pkt\n`);
      }
    }
    // all-thread system calls of one window under strace (slower run; only the ratio per packet is used)
    const straced = new Map<Method, number>();
    if (o.strace) {
      for (const m of ['node', 'aggregate'] as const) {
        try {
          const r = await runChild([...argv(m, true).map((x) => (x === String(o.durationMs) ? '500' : x))]);
          const calls = r.json.straceCalls as Record<string, number> | undefined;
          if (calls) straced.set(m, dataPathCalls(calls) / num(r.json, 'packets'));
        } catch (e) {
          process.stdout.write(`  strace of ${m} failed: ${(e as Error).message.split('\n')[0]}\n`);
        }
      }
    }
    const med = (m: Method, f: (s: Sample) => number): number => median(samples.filter((s) => s.method === m).map(f));
    const lines = [
      `| method (${o.size} B payload) | Mpps | vs node | vs sendmmsg | CPU s / Mpkt | syscalls / pkt (counted) | syscalls / pkt (strace, all threads) | ctx switches / pkt |`,
      '|---|---:|---:|---:|---:|---:|---:|---:|',
    ];
    const f = (x: number, d = 3): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
    for (const m of methods) {
      const pps = med(m, (s) => s.pps);
      lines.push(
        `| ${m} | ${f(pps / 1e6)} | ${f(pps / med('node', (s) => s.pps), 2)}x | ${f(pps / med('sendmmsg', (s) => s.pps), 2)}x | ${f(med(m, (s) => s.cpuPerM), 2)} | ${f(med(m, (s) => s.sysPerPkt), 4)} | ${f(straced.get(m) ?? NaN, 4)} | ${f(med(m, (s) => s.ctxPerPkt), 4)} |`,
      );
    }
    process.stdout.write('\n' + lines.join('\n') + '\n');
    if (o.readme) writeReadme(lines.join('\n'), args);
  } finally {
    await tb.destroy();
    unlock();
  }
}

function writeReadme(table: string, args: string[]): void {
  writeResults('aggregate', [
    `Measured ${measuredOn()}; load average ${loadavg()[0].toFixed(1)} at the end (the host is shared).`,
    commandOf('aggregate', args),
    '',
    table,
  ]);
}

/** The aggregate path as its own process, so its CPU and context switches are measured alone. */
async function aggregateChild(argv: string[]): Promise<void> {
  const get = (n: string, d: string): string => (argv.includes(n) ? argv[argv.indexOf(n) + 1] : d);
  const netns = get('--netns', '');
  const to = get('--to', '198.18.0.2');
  const size = Number(get('--size', '1316'));
  const warmupMs = Number(get('--warmup-ms', '200'));
  const durationMs = Number(get('--duration-ms', '1000'));
  const dest = await makeDestination(parseEndpoint(`${to}:${get('--port', '9')}`), { netns, dev: 'veth0' });
  const engine = new Engine({ interface: 'veth0', netns, region: { lanes: 1, slotsPerLane: 4096, submitEntries: 1024 } });
  await engine.start();
  const lane = engine.region.lane(0);
  lane.writeDest(lane.destFirst, dest);
  const template = new Uint8Array(size).fill(0x5a);
  const slots = new Uint32Array(64);
  const bytes = lane.bytes;
  const c = (n: string): bigint => engine.region.counter(0, n);
  let produced = 0;
  // a window of the synchronous producer loop; yields between windows so timers run
  const produce = (ms: number): void => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const n = lane.allocSlots(slots, 2000);
      const agg = new Aggregate(lane, { lateLimitMs: 1000 });
      const now = Number(process.hrtime.bigint());
      for (let k = 0; k < n; k++) {
        const off = lane.payloadOffset(slots[k]);
        bytes.set(template, off);
        bytes[off] = produced & 0xff;
        agg.addAt(slots[k], size, lane.destFirst, 1, now);
        produced++;
      }
      agg.submit(2000);
    }
  };
  produce(warmupMs);
  const stopStrace = argv.includes('--strace') ? await straceSelf() : null;
  const a = { ...usageMark(), pk: c('tx_packets'), sc: c('tx_syscalls') };
  produce(durationMs);
  // the engine drains what is still queued: count it in the window too
  await new Promise((r) => setTimeout(r, 20));
  const b = { ...usageMark(), pk: c('tx_packets'), sc: c('tx_syscalls') };
  const calls = stopStrace ? await stopStrace() : null;
  await engine.stop();
  const out = {
    method: 'aggregate',
    packets: Number(b.pk - a.pk),
    ...usageBetween(a, b),
    syscalls: Number(b.sc - a.sc),
    drops: ['drop_bad_slot', 'drop_bad_dest', 'drop_bad_len', 'drop_tx_error', 'drop_late'].reduce((s, n) => s + Number(c(n)), 0),
    ...(calls ? { straceCalls: calls } : {}),
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const run = argv[0] === '--child-aggregate' ? aggregateChild(argv) : main(argv);
  run.then(
    () => process.exit(0),
    (e: Error) => {
      process.stderr.write(`${e.stack ?? e.message}\n`);
      process.exit(1);
    },
  );
}

