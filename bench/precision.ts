// SPDX-License-Identifier: MIT
// Benchmark for issue #3 (aggregate timed transmit): how far from its
// scheduled time each packet arrives at a receiver in another namespace.
// The deviation is the kernel's receive time minus the packet's scheduled
// CLOCK_MONOTONIC time (so it includes the veth hop).
//
// Scenarios, the engine (afpacket on a veth pair) and, side by side on the
// same schedule, two baselines: the bare C sleep-then-spin sender
// (bench/c/paced_send.c, one sendto() per packet on a UDP socket) and Node
// `setTimeout` pacing with a dgram socket (the usual way to pace in Node):
//   stream-10kpps    one stream, a packet every 100 us
//   grid-100us       8 streams whose packets fall on the same 100 us grid
//   bursts           64 packets due at the same instant, every 2 ms
//   sessions-1000    1,000 MPEG-TS sessions of 2 Mbit/s each (SessionManager,
//                    2 Piscina workers, PCR-paced), starts spread over
//                    --ramp-ms (1 s), each --seconds + ramp long so all run
//                    together for --seconds; then the bare C sender on the
//                    same schedule (no Node sender: it cannot pace 190 kpps)
// Receivers: the first three scenarios, a UDP socket with SO_TIMESTAMPNS
// (bench/c/recv_ts.c); the sessions, --sessions-receiver:
//   xdp     (default) an XDP program on the receiving veth stamps each frame
//           with bpf_ktime_get_ns() and drops it (bench/c/recv_xdp.c; needs
//           clang and libbpf-dev). A veth runs the receiver's stack on the
//           sender's CPU: at 190 kpps the stack and a tap cost that CPU
//           about as much as the sender, which is not what is measured.
//   ring    an AF_PACKET ring with the SO_TIMESTAMPNS stamp (netif_rx), the
//           frames dropped after the tap by an nftables netdev rule
//   socket  a UDP socket with SO_TIMESTAMPNS (cannot keep up at 190 kpps)
// --runs N repeats each sessions scenario N times, the engine and the bare C
// sender taking turns going first, and reports the medians and every run.
// Prints p50/p99/p99.9/max per scenario, the engine's own lateness histogram,
// and with --readme writes the table and an SVG plot of the distribution
// into bench/README.md and bench/results/.
//   npm run bench -- precision [--seconds 2] [--sessions 200,1000] [--runs 1] [--only SCENARIO]
//                              [--readme] [--ramp-ms 1000] [--lead-ms 40]
//                              [--sessions-receiver xdp|ring|socket] [--no-pin] [--rps]
//                              [--tx-priority 0] [--tx-window-us 0] [--backend afpacket]
// Pinned (default on 2+ CPUs): the senders (the engine's TX thread, the bare
// C sender, the Node pacer) on CPU 0, this process, its workers and the
// receiver on CPU 1.
// --tx-priority N runs the TX thread SCHED_FIFO (EngineOptions.txPriority);
// off by default: on this veth testbed it made the tails worse (the
// receiving side's softirq, deferred to ksoftirqd, waits behind it).
// RF_PREC_DUMP=PREFIX writes each sessions run's packets (schedule offset,
// deviation, source port, receive offset; ns) to PREFIX.engine / PREFIX.bareC.
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Aggregate } from '../src/aggregate/aggregate';
import { Engine, type EngineOptions } from '../src/engine/engine';
import { TsFile } from '../src/media/mpegts';
import { parseEndpoint } from '../src/net/address';
import { destinationFromHop } from '../src/net/destination';
import { resolveNextHop } from '../src/net/neighbour';
import type { Lane } from '../src/region/lane';
import { SessionManager } from '../src/session/manager';
import { Testbed, netnsUnavailable } from '../test/helpers/testbed';
import { compileBench, compileBenchBpf, holdSharedLock, median, runChild } from './lib/measure';
import { commandOf, measuredOn, writeResults } from './lib/readme';

const ROOT = join(__dirname, '..', '..'); // dist/bench -> repo root
const PORT = 7500;
const REC = 32;

interface Options {
  seconds: number;
  sessions: number[];
  /** the sessions scenarios this many times, the engine and the bare C sender taking turns first */
  runs: number;
  readme: boolean;
  only: string | undefined;
  /** sender on CPU 0 (engine TX thread, Node pacer), everything else and the receiver's stack on CPU 1 */
  pin: boolean;
  /** the sessions start spread over this long */
  rampMs: number;
  /** SessionManager leadMs: how far ahead the workers hand packets over */
  leadMs: number;
  /** RPS moves the receiving veth's stack off the sender's CPU */
  rps: boolean;
  /** EngineOptions.txPriority (SCHED_FIFO) of the engine's TX thread */
  txPriority: number;
  /** EngineOptions.txWindowUs: packets due this soon join a due packet's flush */
  txWindowUs: number;
  /** EngineOptions.backend (the Engine validates it) */
  backend: string;
  /** the receiver of the sessions scenarios (the others use the socket) */
  sessionsReceiver: ReceiverMode;
}

/** CPU of the senders (engine TX thread, Node pacer) and of everything else when pinned. */
const SEND_CPU = 0;
const REST_CPU = 1;

/** engine; the bare C sleep-then-spin sender (bench/c/paced_send.c, the baseline); Node setTimeout */
type Sender = 'engine' | 'bare C' | 'node setTimeout';

interface Result {
  scenario: string;
  sender: Sender;
  expected: number;
  received: number;
  dev: Float64Array; // ns, sorted
  engineHist?: bigint[];
  /** --runs > 1: each run's p50, p99, p99.9 and max (ns); dev is then the run with the median p99 */
  runs?: { p50: number[]; p99: number[]; p999: number[]; max: number[] };
}

function parseArgs(args: string[]): Options {
  const o: Options = { seconds: 2, sessions: [200, 1000], runs: 1, readme: false, only: undefined, pin: cpus().length >= 2, sessionsReceiver: 'xdp', rampMs: 1000, leadMs: 40, rps: false, txPriority: 0, txWindowUs: 0, backend: 'afpacket' };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = (): string => {
      if (i + 1 >= args.length) throw new Error(`bench precision: ${a} needs a value`);
      return args[++i];
    };
    if (a === '--seconds') o.seconds = Number(v());
    else if (a === '--sessions') o.sessions = v().split(',').map(Number);
    else if (a === '--runs') o.runs = Number(v());
    else if (a === '--readme') o.readme = true;
    else if (a === '--only') o.only = v();
    else if (a === '--no-pin') o.pin = false;
    else if (a === '--ramp-ms') o.rampMs = Number(v());
    else if (a === '--lead-ms') o.leadMs = Number(v());
    else if (a === '--rps') o.rps = true;
    else if (a === '--tx-priority') o.txPriority = Number(v());
    else if (a === '--tx-window-us') o.txWindowUs = Number(v());
    else if (a === '--backend') o.backend = v();
    else if (a === '--sessions-receiver') {
      const m = v();
      if (m !== 'socket' && m !== 'ring' && m !== 'xdp') throw new Error(`bench precision: --sessions-receiver ${m}: accepted socket, ring, xdp`);
      o.sessionsReceiver = m;
    }
    else throw new Error(`bench precision: unknown option "${a}" (accepted: --seconds, --sessions, --runs N, --only SCENARIO, --no-pin, --sessions-receiver socket|ring|xdp, --ramp-ms MS, --lead-ms MS, --rps, --tx-priority N, --tx-window-us US, --backend NAME, --readme)`);
  }
  if (!(o.seconds > 0 && o.seconds <= 10)) throw new Error('bench precision: --seconds in (0, 10]');
  if (!(Number.isInteger(o.leadMs) && o.leadMs >= 20 && o.leadMs <= 10_000)) throw new Error(`bench precision: --lead-ms ${o.leadMs}: accepted 20..10000`);
  if (!(Number.isInteger(o.rampMs) && o.rampMs >= 0 && o.rampMs <= 10_000)) throw new Error(`bench precision: --ramp-ms ${o.rampMs}: accepted 0..10000`);
  if (!(Number.isInteger(o.runs) && o.runs >= 1 && o.runs <= 20)) throw new Error(`bench precision: --runs ${o.runs}: accepted 1..20`);
  for (const n of o.sessions) if (!(Number.isInteger(n) && n >= 1 && n <= 2000)) throw new Error(`bench precision: --sessions ${n}: accepted 1..2000 (a comma-separated list)`);
  return o;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const mono = (): number => Number(process.hrtime.bigint());

// ------------------------------------------------------------ receiver --

interface Receiver {
  done: Promise<Buffer>;
}

/**
 * How the receiver reads: 'socket' = a UDP socket with SO_TIMESTAMPNS;
 * 'ring' = an AF_PACKET ring on the receiving veth with the same stamp
 * (netif_rx's skb->tstamp), the frames then dropped by an nftables netdev
 * ingress rule so no UDP stack runs (recv_ts.c says why); 'xdp' = an XDP
 * program on the receiving veth stamps each frame (CLOCK_MONOTONIC) and
 * drops it, so the receiver's stack costs the sender's CPU nothing
 * (recv_xdp.c says why).
 */
type ReceiverMode = 'socket' | 'ring' | 'xdp';

/** The C programs of the runs: the receivers (recv_ts; recv_xdp and its BPF object with --sessions-receiver xdp) and the bare C sender. */
interface BenchBins {
  ts: string;
  /** bench/c/paced_send.c, the bare C sender */
  paced: string;
  xdp?: { bin: string; obj: string };
}

const DROP_TABLE = 'rfprec';

async function startReceiver(tb: Testbed, bins: BenchBins, count: number, timeoutMs: number, peek: number, mode: ReceiverMode): Promise<Receiver> {
  const out = join(tmpdir(), `rf-prec-${process.pid}-${Date.now()}.bin`);
  if (mode === 'ring') {
    await tb.exec('b', ['nft', `add table netdev ${DROP_TABLE}; add chain netdev ${DROP_TABLE} in { type filter hook ingress device veth0 priority 0; }; add rule netdev ${DROP_TABLE} in udp dport ${PORT} counter drop`]);
  }
  const common = ['--port', String(PORT), '--out', out, '--count', String(count), '--timeout-ms', String(timeoutMs), '--idle-ms', '700', '--peek', String(peek)];
  let argv: string[];
  if (mode === 'xdp') {
    if (!bins.xdp) throw new Error('bench precision: the xdp receiver was not built');
    argv = [bins.xdp.bin, '--ifname', 'veth0', '--obj', bins.xdp.obj, ...common];
  } else argv = [bins.ts, '--bind', tb.addr('b'), ...common, ...(mode === 'ring' ? ['--ring', 'veth0'] : [])];
  const child = tb.spawn('b', argv);
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (stdout.includes('"ready":true')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`${argv[0]} exited ${code}: ${stderr}`)));
  });
  return {
    done: exited.then(async () => {
      if (mode === 'ring') await tb.exec('b', ['nft', `delete table netdev ${DROP_TABLE}`]);
      if (mode !== 'socket') process.stdout.write(`  receiver (${mode}): ${stdout.trim().split('\n').pop() ?? ''}\n`);
      const b = readFileSync(out);
      rmSync(out, { force: true });
      return b;
    }),
  };
}

function records(buf: Buffer): Array<{ rx: number; sport: number; peek: Buffer }> {
  const out = [];
  for (let o = 0; o + REC <= buf.length; o += REC) {
    out.push({ rx: Number(buf.readBigInt64LE(o)), sport: buf.readUInt16LE(o + 8), peek: buf.subarray(o + 16, o + 32) });
  }
  return out;
}

// ------------------------------------------------- engine-paced senders --

/** Packets of a scenario: (time, stream) pairs, produced window by window. */
interface Plan {
  name: string;
  total: number;
  /** the k-th packet's offset from the start (ns) and its stream (0..streams-1) */
  at(k: number): number;
  streams: number;
}

function plans(seconds: number): Plan[] {
  const grid = 100_000;
  return [
    { name: 'stream-10kpps', streams: 1, total: Math.round((seconds * 1e9) / grid), at: (k) => k * grid },
    { name: 'grid-100us', streams: 8, total: Math.round((seconds * 1e9) / grid) * 8, at: (k) => Math.floor(k / 8) * grid },
    { name: 'bursts', streams: 1, total: Math.round((seconds * 1e9) / 2e6) * 64, at: (k) => Math.floor(k / 64) * 2e6 },
  ];
}

/** The stream (and socket) of a plan's k-th packet. */
function planStream(plan: Plan, k: number): number {
  return plan.streams === 1 ? 0 : k % plan.streams;
}

/**
 * What every sender of a plan puts at its payload's start, at b[off..]:
 * [0..8) the schedule (ns, LE), [8..12) k. Writes in place: the engine's
 * and the Node pacer's loops allocate nothing more per packet for it.
 */
function writePlanTag(b: Buffer, off: number, t: number, k: number): void {
  b.writeBigUInt64LE(BigInt(Math.round(t)), off);
  b.writeUInt32LE(k, off + 8);
}

/** Main thread, lane 0: every 5 ms one aggregate of the packets due in the next 20 ms; payload: writePlanTag()'s layout. */
async function runEnginePlan(lane: Lane, dests: number[], plan: Plan): Promise<void> {
  const bytes = Buffer.from(lane.bytes.buffer, lane.bytes.byteOffset, lane.bytes.byteLength);
  const start = mono() + 50e6;
  let k = 0;
  while (k < plan.total) {
    const horizon = mono() + 20e6;
    const agg = new Aggregate(lane, { lateLimitMs: 1000 });
    while (k < plan.total && start + plan.at(k) < horizon) {
      const t = start + plan.at(k);
      const slot = lane.allocSlot(10_000);
      const off = lane.payloadOffset(slot);
      writePlanTag(bytes, off, t, k);
      agg.addAt(slot, 200, dests[planStream(plan, k)], 100 + (k % plan.streams), t);
      k++;
    }
    agg.submit(10_000);
    await sleep(5);
  }
}

// ----------------------------------------------- Node setTimeout sender --

/** The child: paces `plan` with setTimeout and a dgram socket (run inside namespace a). */
async function nodePacerChild(argv: string[]): Promise<void> {
  const get = (n: string): string => argv[argv.indexOf(n) + 1];
  const plan = plans(Number(get('--seconds'))).find((p) => p.name === get('--plan'))!;
  const to = get('--to');
  const socks = await Promise.all(
    Array.from({ length: plan.streams }, async (_, i) => {
      const s = createSocket('udp4');
      await new Promise<void>((r) => s.bind(21000 + i, () => r()));
      return s;
    }),
  );
  const start = mono() + 50e6;
  let k = 0;
  const fire = (): void => {
    const now = mono();
    // send every packet that is due (setTimeout wakes late: catch up)
    while (k < plan.total && start + plan.at(k) <= now) {
      const b = Buffer.alloc(200);
      writePlanTag(b, 0, start + plan.at(k), k);
      socks[planStream(plan, k)].send(b, PORT, to);
      k++;
    }
    if (k < plan.total) setTimeout(fire, Math.max(0, (start + plan.at(k) - mono()) / 1e6));
    else setTimeout(() => process.exit(0), 200);
  };
  setTimeout(fire, 50);
}

// ------------------------------------------------------------- stats --

/** |receive - scheduled|, sorted: early (a flush window) counts as much as late. */
function absSorted(dev: Float64Array): Float64Array {
  return dev.map(Math.abs).sort();
}

function pct(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function us(ns: number): string {
  if (!Number.isFinite(ns)) return 'n/a';
  const u = ns / 1e3;
  return Math.abs(u) >= 1000 ? `${(u / 1000).toFixed(2)} ms` : `${u.toFixed(1)} us`;
}

function histPct(h: bigint[], p: number): string {
  const total = h.reduce((a, b) => a + b, 0n);
  if (total === 0n) return 'n/a';
  let acc = 0n;
  for (let i = 0; i < h.length; i++) {
    acc += h[i];
    if (Number(acc) >= (p / 100) * Number(total)) return i === h.length - 1 ? `> ${us(2 ** (i - 1) * 1e3)}` : `<= ${us(2 ** i * 1e3)}`;
  }
  return 'n/a';
}

// --------------------------------------------------------------- main --

export async function main(args: string[] = []): Promise<void> {
  const o = parseArgs(args);
  const why = netnsUnavailable();
  if (why) {
    process.stdout.write(`bench precision: SKIPPED: ${why}\n`);
    return;
  }
  const rx = compileBench('recv_ts');
  if ('missing' in rx) {
    process.stdout.write(`bench precision: SKIPPED: ${rx.missing}\n`);
    return;
  }
  const paced = compileBench('paced_send');
  if ('missing' in paced) {
    process.stdout.write(`bench precision: SKIPPED: ${paced.missing}\n`);
    return;
  }
  const bins: BenchBins = { ts: rx.bin, paced: paced.bin };
  const stalls = await measureStalls(o.pin);
  process.stdout.write(`  ${stalls}\n`);
  if (o.sessionsReceiver === 'xdp') {
    const bin = compileBench('recv_xdp', ['-lbpf']);
    const obj = compileBenchBpf('recv_xdp');
    if ('missing' in bin || 'missing' in obj) {
      const why = 'missing' in bin ? bin.missing : (obj as { missing: string }).missing;
      throw new Error(`bench precision: --sessions-receiver xdp needs clang and libbpf-dev: ${why}`);
    }
    bins.xdp = { bin: bin.bin, obj: obj.bin };
  }
  const unlock = await holdSharedLock('/tmp/rf-gyp.lock');
  const tb = await Testbed.create(null, { hosts: ['a', 'b'], links: [['a', 'b']] });
  const results: Result[] = [];
  try {
    const B = tb.addr('b');
    if (o.pin) {
      // This process (main thread, Piscina workers) and the receiver go to
      // REST_CPU; the engine's TX thread pins itself to SEND_CPU (cpuTx).
      // A veth runs the receiving namespace's stack in the sender's softirq;
      // --rps moves it to REST_CPU too (the stamp is taken before RPS hands
      // the frame over, in netif_rx). Off by default: at 190 kpps the IPIs
      // RPS sends cost the sender's CPU more than the receiving tap and
      // drop it saves (perf: native_write_msr 15 % of the TX thread; 1,000
      // sessions p50 ~100 ms late with RPS, 3-18 us without).
      if (o.rps) await tb.exec('b', ['sh', '-c', `echo ${(1 << REST_CPU).toString(16)} > /sys/class/net/veth0/queues/rx-0/rps_cpus`]);
      execFileSync('taskset', ['-a', '-p', '-c', String(REST_CPU), String(process.pid)], { stdio: 'ignore' });
    }
    const engine = new Engine({
      interface: 'veth0',
      netns: tb.ns('a'),
      backend: o.backend as EngineOptions['backend'],
      cpuTx: o.pin ? SEND_CPU : undefined,
      txPriority: o.txPriority,
      txWindowUs: o.txWindowUs,
      txFrames: 4096,
      // lane 0 for the plans, two worker lanes per sessions run (a lane is claimed for the region's life)
      region: { lanes: 1 + 2 * o.sessions.length, slotsPerLane: 32768, submitEntries: 4096, destsPerLane: 1024, maxStreams: 4096 },
    });
    await engine.start();
    try {
      const lane = engine.region.lane(0);
      const hop = await resolveNextHop(B, { netns: tb.ns('a') });
      const dests: number[] = [];
      for (let i = 0; i < 8; i++) {
        dests.push(lane.destFirst + i);
        lane.writeDest(lane.destFirst + i, destinationFromHop(parseEndpoint(`${B}:${PORT}`), hop, { srcPort: 20000 + i }));
      }
      for (const plan of plans(o.seconds).filter((p) => o.only === undefined || p.name === o.only)) {
        for (const sender of ['engine', 'bare C', 'node setTimeout'] as const) {
          const r = await startReceiver(tb, bins, plan.total, o.seconds * 1000 + 5000, 0, 'socket');
          const h0 = engine.region.histogram(0);
          if (sender === 'engine') await runEnginePlan(lane, dests, plan);
          else if (sender === 'bare C') await runBareC(tb, bins, planSchedule(plan), 21000, o.pin, 0);
          else await runNodePacer(tb, plan.name, o.seconds, o.pin);
          const recs = records(await r.done);
          const dev = absSorted(Float64Array.from(recs.map((x) => x.rx - Number(x.peek.readBigUInt64LE(0)))));
          const h1 = engine.region.histogram(0);
          results.push({ scenario: plan.name, sender, expected: plan.total, received: recs.length, dev, engineHist: sender === 'engine' ? h1.map((v, i) => v - h0[i]) : undefined });
          line(results[results.length - 1]);
        }
      }
      if (o.only === undefined || o.only === 'sessions') {
        for (const n of o.sessions) {
          const runs: Result[][] = [];
          for (let run = 0; run < o.runs; run++) {
            // host capacity drifts over minutes: take turns going first
            const rs = await runSessions(tb, engine, bins, o, n, run % 2 === 1);
            rs.forEach(line);
            runs.push(rs);
          }
          results.push(...(o.runs > 1 ? summarise(runs) : runs[0]));
        }
      }
    } finally {
      await engine.stop();
    }
  } finally {
    await tb.destroy();
    unlock();
  }
  const table = report(results);
  process.stdout.write('\n' + table + '\n');
  if (o.readme) {
    const svg = plot(results);
    mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
    writeFileSync(join(ROOT, 'bench', 'results', 'precision.svg'), svg);
    writeReadme(`${table}\n\n${stalls}`, args);
  }
}

function line(r: Result): void {
  process.stdout.write(
    `  ${r.scenario.padEnd(14)} ${r.sender.padEnd(16)} ${r.received}/${r.expected}  p50 ${us(pct(r.dev, 50))}  p99 ${us(pct(r.dev, 99))}  p99.9 ${us(pct(r.dev, 99.9))}  max ${us(r.dev[r.dev.length - 1])}\n`,
  );
}

// ------------------------------------------------------ CPU stalls --

/**
 * The floor under every sender's tail: how often a thread spinning on the
 * senders' CPU loses it for more than 50 us (bench/c/hiccups.c, 3 s, before
 * any traffic), and the share of time beyond the first 50 us of each such
 * stall: a packet due then is more than 50 us late whoever sends it.
 */
async function measureStalls(pinned: boolean): Promise<string> {
  const h = compileBench('hiccups');
  if ('missing' in h) return `CPU stalls: not measured (${h.missing})`;
  const r = await runChild([...(pinned ? ['taskset', '-c', String(SEND_CPU)] : []), h.bin, '--ms', '3000']);
  const j = r.json as { ms: number; gaps: Record<string, number>; lostUs: Record<string, number>; maxUs: number };
  const s = j.ms / 1000;
  const beyond50 = ((j.lostUs['50'] - 50 * j.gaps['50']) / (j.ms * 1000)) * 100;
  return `CPU stalls${pinned ? ` (CPU ${SEND_CPU})` : ''}, a spinning thread before the runs: ${Math.round(j.gaps['20'] / s)}/s longer than 20 us, ${Math.round(j.gaps['50'] / s)}/s longer than 50 us, ` +
    `${Math.round(j.gaps['100'] / s)}/s longer than 100 us, the longest ${us(j.maxUs * 1e3)}; ${beyond50.toFixed(2)} % of the time is more than 50 us into a stall (bench/c/hiccups.c).`;
}

// ---------------------------------------------------- bare C sender --

/** One packet of a bare C schedule (paced_send.c's record). */
interface Scheduled {
  t: number; // CLOCK_MONOTONIC ns
  sock: number; // source port = sport0 + sock
  len: number;
  off: number; // where the 16 tag bytes go in the payload
  /** the tag, or a number written there as a big-endian uint32 (the rest zero) */
  tag: Buffer | number;
}

/** A plan as the other senders send it (writePlanTag(), planStream()). */
function planSchedule(plan: Plan): Scheduled[] {
  const start = mono() + 100e6; // the child's start-up and its sockets
  return Array.from({ length: plan.total }, (_, k) => {
    const tag = Buffer.alloc(16);
    writePlanTag(tag, 0, start + plan.at(k), k);
    return { t: start + plan.at(k), sock: planStream(plan, k), len: 200, off: 0, tag };
  });
}

/**
 * Send `sched` (in time order, times from `base` when given, else from now +
 * 300 ms) with paced_send on the sender's CPU, from ports sport0... Returns
 * the base.
 */
async function runBareC(tb: Testbed, bins: BenchBins, sched: Scheduled[], sport0: number, pinned: boolean, base?: number): Promise<number> {
  const file = join(tmpdir(), `rf-prec-sched-${process.pid}.bin`);
  const buf = Buffer.alloc(sched.length * 32);
  sched.forEach((p, i) => {
    const o = i * 32;
    buf.writeBigInt64LE(BigInt(Math.round(p.t)), o);
    buf.writeUInt16LE(p.sock, o + 8);
    buf.writeUInt16LE(p.len, o + 10);
    buf.writeUInt32LE(p.off, o + 12);
    if (typeof p.tag === 'number') buf.writeUInt32BE(p.tag, o + 16);
    else p.tag.copy(buf, o + 16, 0, 16);
  });
  writeFileSync(file, buf);
  try {
    const pin = pinned ? ['taskset', '-c', String(SEND_CPU)] : [];
    // its start-up: reading the schedule, a socket per source port
    const at = base ?? mono() + 300e6;
    const child = tb.spawn('a', [...pin, bins.paced, '--schedule', file, '--base', String(Math.round(at)), '--dst', tb.addr('b'), '--port', String(PORT), '--sport0', String(sport0)]);
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    await new Promise<void>((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`paced_send exited ${code}: ${err}`)))));
    if (process.env.RF_BENCH_DEBUG) process.stdout.write(`  bare C: ${out.trim()}\n`);
    return at;
  } finally {
    rmSync(file, { force: true });
  }
}

async function runNodePacer(tb: Testbed, plan: string, seconds: number, pinned: boolean): Promise<void> {
  // the Node pacer gets the sender's CPU, like the engine's TX thread
  const pin = pinned ? ['taskset', '-c', String(SEND_CPU)] : [];
  const child = tb.spawn('a', [...pin, process.execPath, __filename, '--child-node-pacer', '--plan', plan, '--seconds', String(seconds), '--to', tb.addr('b')]);
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  await new Promise<void>((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`node pacer exited ${code}: ${err}`)))));
}

/**
 * 1,000 sessions of 2 Mbit/s: synthetic MPEG-TS with a PCR per datagram and
 * a cell index in each cell. The engine sends them (SessionManager, Piscina
 * workers), then the bare C sender sends the same schedule (the same start
 * times, datagram times, lengths and source ports) to the same receiver.
 */
async function runSessions(tb: Testbed, engine: Engine, bins: BenchBins, o: Options, n: number, bareFirst: boolean): Promise<Result[]> {
  const dir = join(tmpdir(), `rf-prec-ts-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'two-mbit.ts');
  const bitrate = 2_000_000;
  const cellNs = (188 * 8 * 1e9) / bitrate;
  const cells = Math.floor(((o.seconds + o.rampMs / 1000) * 1e9) / cellNs / 7) * 7;
  const buf = Buffer.alloc(cells * 188, 0xff);
  for (let i = 0; i < cells; i++) {
    const c = i * 188;
    buf[c] = 0x47;
    buf[c + 1] = 0x01;
    buf[c + 2] = 0x00;
    if (i % 7 === 0) {
      // adaptation field with a PCR (27 MHz)
      buf[c + 3] = 0x30 | (i & 0xf);
      buf[c + 4] = 7;
      buf[c + 5] = 0x10;
      const pcr = Math.round((i * cellNs * 27) / 1000);
      const base = Math.floor(pcr / 300);
      const ext = pcr % 300;
      buf[c + 6] = Math.floor(base / 2 ** 25) & 0xff;
      buf[c + 7] = Math.floor(base / 2 ** 17) & 0xff;
      buf[c + 8] = Math.floor(base / 2 ** 9) & 0xff;
      buf[c + 9] = Math.floor(base / 2) & 0xff;
      buf[c + 10] = ((base % 2) << 7) | 0x7e | ((ext >> 8) & 1);
      buf[c + 11] = ext & 0xff;
    } else buf[c + 3] = 0x10 | (i & 0xf);
    buf.writeUInt32BE(i, c + 184);
  }
  writeFileSync(file, buf);
  const ts = new TsFile(file, buf);
  const total = n * ts.datagrams;
  const interval = ts.datagramTime(1);
  // starts spread over the ramp (like viewers arriving), each on its own
  // point of the datagram interval
  const startOf = (t0: number, i: number): number => t0 + Math.floor((i / n) * (o.rampMs * 1e6) / interval) * interval + (i / n) * interval;
  /** Deviations of what the receiver got: session from the source port, datagram from the first cell's index. */
  const analyse = (sender: Sender, raw: Buffer, t0: number, startAtBySport: Map<number, number>, engineHist?: bigint[]): Result => {
    const recs = records(raw);
    const sched = recs.map((x) => (startAtBySport.get(x.sport) ?? NaN) + ts.datagramTime(Math.floor(x.peek.readUInt32BE(0) / 7)));
    const dev = Float64Array.from(recs.map((x, i) => x.rx - sched[i]));
    // how the deviation moves over the run: its median per 250 ms of schedule
    const spans = new Map<number, number[]>();
    dev.forEach((d, i) => {
      const k = Math.floor((sched[i] - t0) / 250e6);
      if (!spans.has(k)) spans.set(k, []);
      spans.get(k)!.push(d);
    });
    const byTime = [...spans.entries()].sort((a, b) => a[0] - b[0]).map(([k, v]) => `${k * 250}ms:${us(v.sort((a, b) => a - b)[v.length >> 1])}`);
    process.stdout.write(`  sessions (${sender}): median deviation per 250 ms of schedule: ${byTime.join(' ')}\n`);
    if (process.env.RF_PREC_DUMP) writeFileSync(`${process.env.RF_PREC_DUMP}.${sender.replace(' ', '')}`, recs.map((x, i) => `${(sched[i] - t0).toFixed(0)} ${dev[i].toFixed(0)} ${x.sport} ${x.rx - t0}`).join('\n'));
    const early = dev.filter((d) => d < 0);
    if (early.length) process.stdout.write(`  sessions (${sender}): ${early.length} arrived before their time (earliest ${us(early.reduce((a, b) => Math.min(a, b), 0))})\n`);
    return { scenario: `sessions-${n}`, sender, expected: total, received: recs.length, dev: absSorted(dev), engineHist };
  };
  const runEngine = async (): Promise<Result> => {
    const r = await startReceiver(tb, bins, total, o.seconds * 1000 + o.rampMs + 15_000, 184, o.sessionsReceiver);
    const hop = await resolveNextHop(tb.addr('b'), { netns: tb.ns('a') });
    let next = 0;
    const sessions = await SessionManager.create({
      region: engine.region,
      workers: 2,
      leadMs: o.leadMs,
      resolveDestination: async (to) => destinationFromHop(to, hop, { srcPort: 30000 + next++ }),
    });
    const startAtBySport = new Map<number, number>();
    const h0 = engine.region.histogram(0);
    const rebases: number[] = [];
    const slotWaits: number[] = [];
    try {
      const t0 = mono() + 1500e6; // every session starts together, after all start() calls
      for (let i = 0; i < n; i++) {
        const startAt = startOf(t0, i);
        await sessions.start(`p${i}`, file, `${tb.addr('b')}:${PORT}`, 'mpegts', false, { startAt: BigInt(Math.round(startAt)) });
        startAtBySport.set(30000 + i, startAt);
      }
      process.stdout.write(`  sessions: ${n} started, the last ${((t0 - mono()) / 1e6).toFixed(0)} ms before the first's start time\n`);
      sessions.on('ended', (_name: string, s?: { worker: { rebases: number; slotWaits: number } }) => {
        rebases.push(s?.worker.rebases ?? 0);
        slotWaits.push(s?.worker.slotWaits ?? 0);
      });
      const raw = await r.done;
      const h1 = engine.region.histogram(0);
      const c = (name: string): bigint => engine.region.counter(0, name);
      process.stdout.write(
        `  sessions: rebases ${rebases.reduce((a, b) => a + b, 0)}, slot waits ${slotWaits.reduce((a, b) => a + b, 0)} over ${rebases.length} ended sessions; engine tx_ring_full ${c('tx_ring_full')} drop_late ${c('drop_late')} flushes ${c('tx_flushes')} send() ${c('tx_syscalls')} drop_tx_error ${c('drop_tx_error')} sleeps ${c('sleeps')}\n`,
      );
      return analyse('engine', raw, t0, startAtBySport, h1.map((v, i) => v - h0[i]));
    } finally {
      await sessions.close();
    }
  };
  // the bare C sender on the same schedule, from a base it picks at start
  const runBare = async (): Promise<Result> => {
    const startAtBySport = new Map<number, number>();
    const sched: Scheduled[] = [];
    for (let i = 0; i < n; i++) {
      const startAt = startOf(0, i);
      startAtBySport.set(30000 + i, startAt);
      for (let k = 0; k < ts.datagrams; k++) {
        // the tag: the first cell's index, what the engine's datagram carries at 184
        sched.push({ t: startAt + ts.datagramTime(k), sock: i, len: Math.min(7, cells - 7 * k) * 188, off: 184, tag: 7 * k });
      }
    }
    sched.sort((a, b) => a.t - b.t);
    const r = await startReceiver(tb, bins, total, o.seconds * 1000 + o.rampMs + 15_000, 184, o.sessionsReceiver);
    const t0 = await runBareC(tb, bins, sched, 30000, o.pin);
    for (const [k, v] of startAtBySport) startAtBySport.set(k, v + t0);
    return analyse('bare C', await r.done, t0, startAtBySport);
  };
  try {
    if (bareFirst) {
      const bare = await runBare();
      return [await runEngine(), bare];
    }
    return [await runEngine(), await runBare()];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Several runs of [engine, bare C] -> one result per sender: the medians, each run's numbers, the median run's distribution. */
function summarise(runs: Result[][]): Result[] {
  return runs[0].map((_, j) => {
    const mine = runs.map((rs) => rs[j]);
    const of = (p: number): number[] => mine.map((r) => pct(r.dev, p));
    const p99 = of(99);
    const mid = [...p99].sort((a, b) => a - b)[p99.length >> 1];
    const rep = mine[p99.indexOf(mid)];
    return { ...rep, runs: { p50: of(50), p99, p999: of(99.9), max: mine.map((r) => r.dev[r.dev.length - 1]) } };
  });
}

/** A percentile column: the value, or with --runs the median of the runs' values. */
function cell(r: Result, p: number | 'max'): string {
  if (r.runs) {
    const xs = p === 'max' ? r.runs.max : p === 50 ? r.runs.p50 : p === 99 ? r.runs.p99 : r.runs.p999;
    return us(median(xs));
  }
  return us(p === 'max' ? r.dev[r.dev.length - 1] : pct(r.dev, p));
}

function report(results: Result[]): string {
  const lines = [
    '| scenario | sender | received | p50 | p99 | p99.9 | max | engine lateness p50 / p99 (its histogram) |',
    '|---|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.scenario}${r.runs ? ` (median of ${r.runs.p99.length} runs)` : ''} | ${r.sender} | ${r.received}/${r.expected} | ${cell(r, 50)} | ${cell(r, 99)} | ${cell(r, 99.9)} | ${cell(r, 'max')} | ${r.engineHist ? `${histPct(r.engineHist, 50)} / ${histPct(r.engineHist, 99)}` : '-'} |`,
    );
  }
  const many = results.filter((r) => r.runs);
  if (many.length) {
    lines.push('', 'Each run (p50 / p99):', '');
    for (const r of many) lines.push(`- ${r.scenario}, ${r.sender}: ${r.runs!.p50.map((x, i) => `${us(x)} / ${us(r.runs!.p99[i])}`).join('; ')}`);
  }
  return lines.join('\n');
}

/** CDF of the deviation on a log axis (1 us .. 10 s), one line per scenario and sender. */
function plot(results: Result[]): string {
  const W = 760;
  const H = 420;
  const L = 60;
  const R = 220;
  const T = 30;
  const B = 50;
  const pw = W - L - R;
  const ph = H - T - B;
  const lo = Math.log10(1e3);
  const hi = Math.log10(1e10);
  const x = (ns: number): number => L + ((Math.min(hi, Math.log10(Math.max(ns, 1e3))) - lo) / (hi - lo)) * pw;
  const y = (f: number): number => T + (1 - f) * ph;
  const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${L}" y="18" font-size="13">Receive time minus scheduled time (CDF), receiver in another namespace</text>`);
  for (let e = 3; e <= 10; e++) {
    const xv = x(10 ** e);
    out.push(`<line x1="${xv}" y1="${T}" x2="${xv}" y2="${T + ph}" stroke="#ddd"/>`);
    out.push(`<text x="${xv}" y="${T + ph + 15}" text-anchor="middle">${['1 us', '10 us', '100 us', '1 ms', '10 ms', '100 ms', '1 s', '10 s'][e - 3]}</text>`);
  }
  for (const f of [0, 0.5, 0.9, 0.99, 1]) {
    out.push(`<line x1="${L}" y1="${y(f)}" x2="${L + pw}" y2="${y(f)}" stroke="#eee"/>`);
    out.push(`<text x="${L - 5}" y="${y(f) + 4}" text-anchor="end">${f}</text>`);
  }
  out.push(`<rect x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${L + pw / 2}" y="${H - 12}" text-anchor="middle">deviation (log scale; values below 1 us drawn at 1 us)</text>`);
  results.forEach((r, i) => {
    const n = r.dev.length;
    if (n === 0) return;
    const pts: string[] = [];
    const steps = Math.min(n, 400);
    for (let s = 0; s <= steps; s++) {
      const k = Math.min(n - 1, Math.floor((s / steps) * (n - 1)));
      pts.push(`${x(r.dev[k]).toFixed(1)},${y((k + 1) / n).toFixed(1)}`);
    }
    const c = colors[i % colors.length];
    const dash = r.sender === 'engine' ? '' : r.sender === 'bare C' ? ' stroke-dasharray="2,2"' : ' stroke-dasharray="5,3"';
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="1.8"${dash} points="${pts.join(' ')}"/>`);
    out.push(`<line x1="${L + pw + 10}" y1="${T + 10 + i * 18}" x2="${L + pw + 30}" y2="${T + 10 + i * 18}" stroke="${c}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${L + pw + 35}" y="${T + 14 + i * 18}">${r.scenario} (${r.sender === 'node setTimeout' ? 'Node setTimeout' : r.sender})</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function writeReadme(table: string, args: string[]): void {
  writeResults('precision', [
    `Measured ${measuredOn()}; load average ${loadavg()[0].toFixed(1)} at the end (the host is shared by other jobs).`,
    commandOf('precision', args),
    '',
    table,
    '',
    '![lateness distribution](results/precision.svg)',
  ]);
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const run = argv[0] === '--child-node-pacer' ? nodePacerChild(argv) : main(argv).then(() => process.exit(0));
  run.catch((e: Error) => {
    process.stderr.write(`${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
