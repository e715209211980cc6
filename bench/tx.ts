// SPDX-License-Identifier: MIT
// Benchmark for issue #2 (aggregate transmit): packets per second sent on a
// veth pair into a namespace that drops them at ingress, for 64- and
// 1316-byte UDP payloads, by six senders measured side by side in ONE run:
//
//   node          Node.js dgram send loop (one system call per packet)
//   sendmmsg      C sendmmsg() loop, batches of 64 (bench/c/sendmmsg_bench.c)
//   txring        bare C PACKET_TX_RING loop, one send() per 64 frames (bench/c/txring_bench.c)
//   txring-vnet   the same loop on the engine's kernel path: frames behind a
//                 virtio_net_hdr, copied into the skb head (txring_bench --vnet 1)
//   xsk           bare C AF_XDP TX loop (copy mode), one sendto() per 64 frames (bench/c/xsk_tx_bench.c)
//   engine        Piscina worker -> lane ring -> engine TX thread -> AF_PACKET TX ring
//   engine-afxdp  the same with backend afxdp: TX thread -> AF_XDP socket (copy mode)
//
// For each: packets/s, CPU seconds per million packets (every thread of the
// process), system calls per packet and context switches per packet; medians
// of --runs runs, ratios against txring and node of the same run.
//   npm run bench -- tx [--runs 3] [--duration-ms 1000] [--sizes 64,1316] [--methods ...] [--engine-burst N] [--readme]
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Testbed, netnsUnavailable } from '../test/helpers/testbed';
import { compileBench, dataPathCalls, holdSharedLock, median, runChild, straceCounts } from './lib/measure';
import type { ChildRun } from './lib/measure';
import { commandOf, measuredOn, writeResults } from './lib/readme';

const ROOT = join(__dirname, '..', '..'); // dist/bench -> repo root
const PORT = 9;
const METHODS = ['node', 'sendmmsg', 'txring', 'txring-vnet', 'xsk', 'engine', 'engine-afxdp'] as const;
type Method = (typeof METHODS)[number];

interface Sample {
  method: Method;
  size: number;
  run: number;
  pps: number;
  cpuPerM: number; // CPU seconds per million packets
  ctxPerPkt: number;
  syscallsPerPkt: number; // NaN when measured separately (strace pass)
  arrivedRatio: number; // packets counted by the sink / packets the sender reported
  busiestPerM?: number[]; // engine: CPU s / Mpkt of its busiest threads (TX thread first)
  txSysShare?: number; // engine: system share of the TX thread's CPU
  /** CPU (in CPUs) that other processes used while this sample ran: the host's busy time minus this bench's and the child's */
  foreign: number;
}

/**
 * A sample during which other processes used more than this many CPUs is
 * measured again (at most FOREIGN_RETRIES times), whatever its method. On 2
 * vCPUs a foreign job costs the engine more than the bare loops: the engine
 * needs the second CPU for its worker, the bare loops use one.
 */
const FOREIGN_MAX = 0.15;
const FOREIGN_RETRIES = 3;

/** Busy CPU seconds of the whole host so far (/proc/stat, every CPU; USER_HZ = 100). */
function hostBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal ...: all but idle and iowait (steal is not ours either)
  return (f.reduce((s, x) => s + x, 0) - f[3] - f[4] - (f[7] ?? 0)) / 100;
}

interface Options {
  runs: number;
  durationMs: number;
  warmupMs: number;
  sizes: number[];
  methods: Method[];
  strace: boolean;
  /** region slotsPerLane for the engine methods (absent: the region's default, 1024) */
  slotsPerLane?: number;
  readme: boolean;
  /** engine: frames per burst / send() (EngineOptions.burst); absent = the engine's default */
  engineBurst?: number;
}

function parseArgs(args: string[]): Options {
  const o: Options = { runs: 3, durationMs: 1000, warmupMs: 200, sizes: [64, 1316], methods: [...METHODS], strace: true, readme: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = (): string => {
      if (i + 1 >= args.length) throw new Error(`bench tx: ${a} needs a value`);
      return args[++i];
    };
    if (a === '--runs') o.runs = Number(v());
    else if (a === '--duration-ms') o.durationMs = Number(v());
    else if (a === '--warmup-ms') o.warmupMs = Number(v());
    else if (a === '--sizes') o.sizes = v().split(',').map(Number);
    else if (a === '--methods') {
      const m = v().split(',');
      for (const x of m) if (!(METHODS as readonly string[]).includes(x)) throw new Error(`bench tx: method "${x}" unknown (accepted: ${METHODS.join(', ')})`);
      o.methods = m as Method[];
    } else if (a === '--no-strace') o.strace = false;
    else if (a === '--slots-per-lane') {
      const n = Number(v());
      if (!Number.isInteger(n) || n < 64 || (n & (n - 1)) !== 0) throw new Error(`bench tx: --slots-per-lane ${n}: accepted a power of two >= 64`);
      o.slotsPerLane = n;
    } else if (a === '--readme') o.readme = true;
    else if (a === '--engine-burst') o.engineBurst = Number(v());
    else throw new Error(`bench tx: unknown option "${a}" (accepted: --runs, --duration-ms, --warmup-ms, --sizes, --methods, --no-strace, --readme, --engine-burst, --slots-per-lane)`);
  }
  if (!(o.runs >= 1 && o.durationMs >= 100)) throw new Error('bench tx: --runs >= 1 and --duration-ms >= 100');
  if (o.engineBurst !== undefined && !(Number.isInteger(o.engineBurst) && o.engineBurst >= 1 && o.engineBurst <= 256)) {
    throw new Error(`bench tx: --engine-burst ${o.engineBurst} is outside 1..256`);
  }
  for (const s of o.sizes) if (!(Number.isInteger(s) && s >= 1 && s <= 1472)) throw new Error(`bench tx: size ${s} is outside 1..1472`);
  return o;
}

/** nft counter of the sink's ingress drop rule (packets). */
function sinkCount(tb: Testbed): number {
  const out = execFileSync('ip', ['netns', 'exec', tb.ns('b'), 'nft', '-j', 'list', 'table', 'netdev', 'rfbench'], { encoding: 'utf8' });
  const j = JSON.parse(out) as { nftables: Array<{ rule?: { expr: Array<{ counter?: { packets: number } }> } }> };
  for (const e of j.nftables) for (const x of e.rule?.expr ?? []) if (x.counter) return x.counter.packets;
  return 0;
}

interface Ctx {
  tb: Testbed;
  o: Options;
  bins: Partial<Record<Method, string>>;
  dstMac: string;
  srcMac: string;
}

function argvFor(m: Method, c: Ctx, size: number, durationMs: number): string[] {
  const a = c.tb.ns('a');
  const dst = c.tb.addr('b');
  const src = c.tb.addr('a');
  const common = ['--size', String(size), '--warmup-ms', String(c.o.warmupMs), '--duration-ms', String(durationMs)];
  switch (m) {
    case 'node':
      return ['ip', 'netns', 'exec', a, process.execPath, join(__dirname, 'lib', 'node-udp-sender.js'), '--to', dst, '--port', String(PORT), ...common];
    case 'engine':
    case 'engine-afxdp':
      return [process.execPath, join(__dirname, 'lib', 'engine-sender.js'), '--netns', a, '--dev', 'veth0', '--to', dst, '--port', String(PORT), '--workers', '1', '--burst', '64',
        '--backend', m === 'engine' ? 'afpacket' : 'afxdp', ...(c.o.engineBurst ? ['--engine-burst', String(c.o.engineBurst)] : []),
        ...(c.o.slotsPerLane ? ['--slots-per-lane', String(c.o.slotsPerLane)] : []), ...common];
    case 'sendmmsg':
      return ['ip', 'netns', 'exec', a, c.bins.sendmmsg!, '--dst', dst, '--port', String(PORT), '--batch', '64', ...common];
    case 'txring':
    case 'txring-vnet':
    case 'xsk':
      return ['ip', 'netns', 'exec', a, c.bins[m]!, '--ifname', 'veth0', '--src', src, '--dst', dst, '--port', String(PORT),
        '--src-mac', c.srcMac, '--dst-mac', c.dstMac, '--batch', '64', ...(m === 'txring-vnet' ? ['--vnet', '1'] : []), ...common];
  }
}

function num(j: Record<string, unknown>, k: string): number {
  const v = j[k];
  return typeof v === 'number' ? v : NaN;
}

async function runOnce(m: Method, c: Ctx, size: number, run: number): Promise<Sample> {
  const before = sinkCount(c.tb);
  // Node children measure their own window (process.resourceUsage covers every
  // thread); C baselines are timed whole by /usr/bin/time (their start-up is
  // a few system calls) unless they report a window themselves. Every child
  // runs under /usr/bin/time, so its whole CPU is known for `foreign`.
  const busy0 = hostBusySeconds();
  const self0 = process.cpuUsage();
  const r: ChildRun = await runChild(argvFor(m, c, size, c.o.durationMs), { timeMs: true });
  const selfUsed = process.cpuUsage(self0);
  const childCpu = r.rusage ? r.rusage.cpuUser + r.rusage.cpuSys : NaN;
  const foreign = r.rusage && r.rusage.elapsed > 0
    ? Math.max(0, hostBusySeconds() - busy0 - childCpu - (selfUsed.user + selfUsed.system) / 1e6) / r.rusage.elapsed
    : 0;
  const arrived = sinkCount(c.tb) - before;
  const j = r.json;
  const packets = num(j, 'packets');
  const seconds = num(j, 'seconds');
  const self = Number.isFinite(num(j, 'cpuUser'));
  const ru = self
    ? { cpu: num(j, 'cpuUser') + num(j, 'cpuSys'), ctx: num(j, 'ctxVoluntary') + num(j, 'ctxInvoluntary') }
    : { cpu: childCpu, ctx: r.rusage!.ctxVoluntary + r.rusage!.ctxInvoluntary };
  const totalPackets = self ? packets : Number.isFinite(num(j, 'totalPackets')) ? num(j, 'totalPackets') : packets;
  const syscalls = num(j, 'syscalls');
  const threads = Array.isArray(j.threads) ? (j.threads as Array<{ user: number; sys: number }>) : [];
  return {
    busiestPerM: threads.map((x) => (x.user + x.sys) / (packets / 1e6)),
    txSysShare: threads.length ? threads[0].sys / (threads[0].user + threads[0].sys) : undefined,
    method: m,
    size,
    run,
    foreign,
    pps: packets / seconds,
    cpuPerM: ru.cpu / (totalPackets / 1e6),
    ctxPerPkt: ru.ctx / totalPackets,
    syscallsPerPkt: Number.isFinite(syscalls) ? syscalls / packets : NaN,
    arrivedRatio: arrived / (Number.isFinite(num(j, 'totalPackets')) ? num(j, 'totalPackets') : packets),
  };
}

/**
 * Send-path system calls per packet under strace -c -f: the Node children
 * attach strace to themselves for the window only (no start-up counted);
 * C baselines are traced whole (their start-up is a few dozen calls).
 */
async function straceRun(m: Method, c: Ctx, size: number): Promise<number> {
  if (m === 'node' || m === 'engine' || m === 'engine-afxdp') {
    const r = await runChild([...argvFor(m, c, size, 500), '--strace']);
    const calls = r.json.straceCalls as Record<string, number> | undefined;
    if (!calls) throw new Error(`${m} reported no strace counts`);
    // the engine counts its packets over the traced span (attach to detach),
    // which is longer than its measured window
    const traced = num(r.json, 'stracePackets');
    const pk = Number.isFinite(traced) ? traced : num(r.json, 'packets');
    if (process.env.RF_BENCH_DEBUG) {
      const per = Object.entries(calls).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${(n / pk).toFixed(4)}`).join(', ');
      process.stdout.write(`bench tx: strace ${m} ${size} B, calls per packet: ${per}\n`);
    }
    return dataPathCalls(calls) / pk;
  }
  const { json, calls } = await straceCounts(argvFor(m, c, size, 300));
  const packets = Number.isFinite(num(json, 'totalPackets')) ? num(json, 'totalPackets') : num(json, 'packets');
  return dataPathCalls(calls) / packets;
}

function ratio(a: number, b: number): string {
  return Number.isFinite(a / b) ? `${(a / b).toFixed(2)}x` : 'n/a';
}

function fmt(x: number, digits = 2): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  return x.toFixed(digits);
}

export async function main(args: string[] = []): Promise<void> {
  const o = parseArgs(args);
  const why = netnsUnavailable();
  if (why) {
    process.stdout.write(`bench tx: SKIPPED: ${why}\n`);
    return;
  }
  // no addon rebuild (flock -x on the same file) while the engine path runs
  const unlock = o.methods.some((m) => m.startsWith('engine')) ? await holdSharedLock('/tmp/rf-gyp.lock') : () => undefined;
  const bins: Partial<Record<Method, string>> = {};
  const missing: string[] = [];
  const methods = o.methods.filter((m) => {
    if (m === 'sendmmsg' || m === 'txring' || m === 'txring-vnet' || m === 'xsk') {
      const r = compileBench(m === 'sendmmsg' ? 'sendmmsg_bench' : m === 'xsk' ? 'xsk_tx_bench' : 'txring_bench');
      if ('missing' in r) {
        missing.push(`${m}: ${r.missing}`);
        return false;
      }
      bins[m] = r.bin;
    }
    if (m === 'engine' || m === 'engine-afxdp') {
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const n = require(join(ROOT, 'dist', 'src', 'native.js')) as { native(): { engineAvailable(): boolean } };
        if (!n.native().engineAvailable()) throw new Error('the addon was built without engine/src/engine.c');
      } catch (e) {
        missing.push(`engine: ${(e as Error).message.split('\n')[0]}`);
        return false;
      }
    }
    return true;
  });
  for (const x of missing) process.stdout.write(`bench tx: method left out: ${x}\n`);

  const loadAtStart = loadavg()[0];
  const tb = await Testbed.create(null, { hosts: ['a', 'b'], links: [['a', 'b']] });
  try {
    // a permanent neighbour: the sink drops ARP too, and the kernel-stack
    // senders must never wait for resolution
    await tb.exec('a', ['ip', 'neigh', 'replace', tb.addr('b'), 'lladdr', tb.mac('b'), 'dev', 'veth0', 'nud', 'permanent']);
    // the sink: count and drop every frame at ingress, before IP (no ICMP back)
    await tb.exec('b', ['nft', '-f', '-'], {
      input: 'table netdev rfbench {\n chain in {\n  type filter hook ingress device "veth0" priority -500; policy accept;\n  counter drop\n }\n}\n',
    });
    const c: Ctx = { tb, o, bins, dstMac: tb.mac('b'), srcMac: tb.mac('a') };
    const samples: Sample[] = [];
    let reruns = 0;
    for (const size of o.sizes) {
      for (let run = 0; run < o.runs; run++) {
        // rotate the order each run so drift of the shared host hits every method alike
        const order = methods.map((_, k) => methods[(k + run) % methods.length]);
        for (const m of order) {
          let s = await runOnce(m, c, size, run);
          for (let k = 0; k < FOREIGN_RETRIES && s.foreign > FOREIGN_MAX; k++) {
            process.stdout.write(`  ${size} B run ${run + 1} ${m}: other processes used ${fmt(s.foreign)} CPUs meanwhile, measured again\n`);
            reruns++;
            s = await runOnce(m, c, size, run);
          }
          samples.push(s);
          process.stdout.write(`  ${size} B run ${run + 1} ${m.padEnd(12)} ${fmt(s.pps / 1e6, 3)} Mpps  ${fmt(s.cpuPerM)} cpu-s/Mpkt  arrived ${fmt(s.arrivedRatio * 100, 1)}%\n`);
        }
      }
    }
    // system calls of the baselines: one strace pass each (strace slows the
    // run, but the count per packet is what is measured)
    const straced = new Map<string, number>();
    if (o.strace) {
      for (const size of o.sizes) {
        for (const m of methods) {
          try {
            straced.set(`${m}/${size}`, await straceRun(m, c, size));
          } catch (e) {
            process.stdout.write(`bench tx: strace of ${m} failed: ${(e as Error).message.split('\n')[0]}\n`);
          }
        }
      }
    }
    const foreignNote = `Samples measured again because other processes used more than ${FOREIGN_MAX} CPUs during them: ${reruns}; `
      + `CPUs other processes used during the kept samples: median ${fmt(median(samples.map((s) => s.foreign)))}, max ${fmt(Math.max(...samples.map((s) => s.foreign)))}.`;
    const table = report(samples, straced, o, methods) + '\n\n' + foreignNote;
    process.stdout.write('\n' + table + '\n');
    // the host is shared: its load says how much the numbers are worth
    const load = `load average ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end`;
    process.stdout.write(`bench tx: ${load}\n`);
    if (o.readme) writeReadme(table, args, missing, load);
  } finally {
    await tb.destroy();
    unlock();
  }
}

function report(samples: Sample[], straced: Map<string, number>, o: Options, methods: Method[]): string {
  const lines: string[] = [];
  lines.push('| payload | method | Mpps | vs txring | vs node | CPU s / Mpkt | CPU vs txring | syscalls / pkt (counted) | syscalls / pkt (strace, all threads) | ctx switches / pkt | arrived |');
  lines.push('|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const size of o.sizes) {
    const med = (m: Method, f: (s: Sample) => number): number => median(samples.filter((s) => s.method === m && s.size === size).map(f));
    const ring = med('txring', (s) => s.pps);
    const node = med('node', (s) => s.pps);
    const ringCpu = med('txring', (s) => s.cpuPerM);
    for (const m of methods) {
      const pps = med(m, (s) => s.pps);
      const sc = med(m, (s) => s.syscallsPerPkt);
      const st = straced.get(`${m}/${size}`) ?? NaN;
      lines.push(
        `| ${size} B | ${m} | ${fmt(pps / 1e6, 3)} | ${ratio(pps, ring)} | ${ratio(pps, node)} | ${fmt(med(m, (s) => s.cpuPerM))} | ${ratio(med(m, (s) => s.cpuPerM), ringCpu)} | ${fmt(sc, 4)} | ${fmt(st, 4)} | ${fmt(med(m, (s) => s.ctxPerPkt), 4)} | ${fmt(med(m, (s) => s.arrivedRatio) * 100, 1)}% |`,
      );
    }
  }
  // the same ratio paired run by run (each run measures every method back to
  // back, so drift of the shared host between runs cancels out)
  const PAIRS: Array<[Method, Method, string]> = [
    ['engine', 'txring', 'Engine'],
    ['engine', 'txring-vnet', 'Engine'],
    ['engine-afxdp', 'xsk', 'Engine-afxdp'],
    ['engine-afxdp', 'engine', 'Engine-afxdp'],
    ['xsk', 'txring', 'Xsk'],
  ];
  for (const [x, y, name] of PAIRS) {
    if (!methods.includes(x) || !methods.includes(y)) continue;
    lines.push('');
    for (const size of o.sizes) {
      const at = (m: Method, run: number): Sample | undefined => samples.find((s) => s.method === m && s.size === size && s.run === run);
      const pairs: number[] = [];
      for (let run = 0; run < o.runs; run++) {
        const e = at(x, run);
        const r = at(y, run);
        if (e && r) pairs.push(e.pps / r.pps);
      }
      lines.push(`${name} ${size} B vs ${y}, paired by run: median ${ratio(median(pairs), 1)} (runs: ${pairs.map((v) => v.toFixed(2)).join(', ')}).`);
    }
  }
  for (const [m, name] of [['engine', 'Engine'], ['engine-afxdp', 'Engine-afxdp']] as const) {
    for (const size of o.sizes) {
      const eng = samples.filter((s) => s.method === m && s.size === size && s.busiestPerM?.length);
      if (eng.length === 0) continue;
      const k = (i: number): string => fmt(median(eng.map((s) => s.busiestPerM![i] ?? 0)));
      lines.push('');
      const sys = median(eng.map((s) => s.txSysShare ?? NaN).filter(Number.isFinite));
      lines.push(`${name} ${size} B, CPU s / Mpkt of its busiest threads (median): ${k(0)} (TX thread, ${fmt(sys * 100, 0)}% of it in the kernel), ${k(1)} (worker), ${k(2)}, ${k(3)}.`);
    }
  }
  return lines.join('\n');
}

function writeReadme(table: string, args: string[], missing: string[], load: string): void {
  writeResults('tx', [
    `Measured ${measuredOn()}; ${load}.`,
    commandOf('tx', args),
    ...(missing.length ? ['', ...missing.map((m) => `Left out: ${m}`)] : []),
    '',
    table,
  ]);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
