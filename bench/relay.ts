// SPDX-License-Identifier: MIT
// Relay benchmark (issues #4, #10): lossless delivered packets/s per
// subscriber and relay CPU per packet for redirect (1:1) and split (1:8,
// 1:64 with --fanouts 1,8,64), payloads 64 and 1316 bytes, side by side in
// one run. The methods (METHODS below, each a MethodSpec: add one there):
//   engine    the Reflector engine's user tier (AF_PACKET RX -> policy table -> TX ring)
//   kernel    the Reflector engine's kernel tier (its tc ingress program: rewrite and
//             clone per output in the kernel, docs/kernel-tier.md): its CPU is the
//             relay CPU's softirq time (where the program runs) + its idle threads'
//   afpacket  bench/c/afpacket_relay.c: the bare C AF_PACKET relay (TPACKET_V3
//             RX ring, PACKET_TX_RING with qdisc bypass, one send() per burst)
//   c         bench/c/mmsg_relay.c: recvmmsg/sendmmsg on a UDP socket
//   node      a Node.js dgram proxy (the patent's user-level proxy, Figs. 3/5)
//   nft       the kernel: nftables dnat (1:1) / netdev dup (1:N)
// Topology: origin <-veth-> relay; the subscribers are ports 6000.. on the
// origin host, whose veth ingress counts and drops them with nftables (no
// socket, no IP processing). The origin is bench/c/relay_origin.c, paced.
// --origin xdp (default): BPF_PROG_TEST_RUN in live-frames mode, the frame
// handed to the origin veth's ndo_xdp_xmit (no skb on the origin side, no
// socket), which needs NAPI on the relay's veth: GRO on there (relay_origin
// --gro). --origin ring: a PACKET_TX_RING with a virtio_net_hdr per frame
// and the relay veth as before (no NAPI: netif_rx). --origin udp: its UDP
// socket. Where the relay still kept up with all it could send, the row says
// "origin-bound" and ratios against it are bounds (>=, <=). --origin-speed:
// only the origins, xdp and ring alternating, counted at the relay's veth.
//
// The origin is pinned to CPU 0, the relay to CPU 1, and RPS keeps each
// veth's receive work on its own host's CPU (RF_RELAY_PIN=0: off).
// --origin xdp --napi softirq (default): the relay veth's NAPI poll runs in
// the origin CPU's softirq after each flush of 64 frames (it builds the skbs
// around the frames' pages, GRO), then RPS hands them to the relay CPU's
// backlog: from there the relay's receive path is the same as with the ring
// origin, whose skb allocation and copy were on CPU 0 too. --napi thread:
// threaded NAPI, the napi/DEV-N kthread pinned to CPU 1 and RPS off on the
// relay's veth: all the receive work is on the relay CPU, as on a real NIC,
// but the veth's XDP ring (256 frames) overflows while the kthread wakes up
// (here 7 % lost at 300 k pps, 22 % at 600 k, CPU 1 80 % idle), so it is
// not the default.
// CPU per delivered packet, counted alike for every method: the relay's own
// threads (schedstat run time of the relay process's threads; the engine:
// its rf-rx and rf-tx threads, not the Node main thread that runs this
// bench; 0 for a relay in the kernel) + with --napi thread the napi kthread
// (schedstat: its time is system time on CPU 1, not softirq, and it is the
// kernel tier's and nftables' work there) + the relay CPU's softirq time
// (its receive path; all of a kernel relay's work with the other origins),
// each over the packets delivered in the run. Softirq served while a relay
// thread ran is in both (this kernel has no IRQ time accounting): the same
// for every user-space relay.
//
// For each method and case: one run at the origin's full speed, then paced
// runs at falling fractions of what got through until one keeps up (< 0.1 %
// lost, and delivered within ~150 ms of the origin's end), up by doubling if
// the first already does, then three halvings of the interval to the rate that lost (BISECT): the
// lossless rate, confirmed as the median of --runs runs.
// Overload: the origin at twice that rate, median of --runs runs; delivered
// must stay >= 90 % of the lossless rate (no collapse). Every run records
// where its lost frames were counted (softnet_stat per CPU, veth drops, the
// engine's drop counters) and each CPU's usr/sys/softirq/idle split; the
// summary line of a case prints them, RF_BENCH_DEBUG=1 for every run (and
// the CPU of each thread of this process).
//   npm run bench -- relay [--runs 3] [--ms 500] [--sizes 64,1316]
//                          [--fanouts 1,8] [--methods engine,kernel,afpacket,c,node,nft]
//                          [--origin xdp|ring|udp] [--napi softirq|thread]
//                          [--origin-speed] [--rate PPS] [--readme]
//                          [--no-mcast | --mcast-only]
// --rate: no search, PPS is taken as the lossless rate (iterating on overload)
// After the methods, the multicast and capture cases of bench/relay-mcast.ts
// (issue #14: 1 multicast output vs 8 unicast outputs on one segment, a 1:2
// relay with a capture running vs none) run with the same --runs and
// --readme; --no-mcast skips them, --mcast-only runs only them.
import { execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { compileBench, holdSharedLock, median, runChild, sysctlForRun } from './lib/measure';
import { commandOf, measuredOn, writeResults } from './lib/readme';
import { Testbed, netnsUnavailable } from '../test/helpers/testbed';
import { main as mcastMain } from './relay-mcast';

// The methods, in the order they run. Each is a MethodSpec: a label, the
// bench/c programs it needs, and start(ctx, fanout), which sets the relay up
// on the testbed for one case and returns how to read its CPU and stop it.
// A new method (the kernel tier) is one more start function and one more
// entry here; the search, the CPU accounting and the table are shared.
const P = 5000;
const SUB0 = 6000;
// the origin and the relay on CPUs of their own (when there are 2): the relay,
// not its competition with the origin for one CPU, is what is measured
const PIN = cpus().length >= 2 && process.env.RF_RELAY_PIN !== '0';
const ORIGIN_CPU = 0;
// the engine's TX ring as large as the bare C AF_PACKET relay's (its default,
// 512, overflows in a 1:64 split of one 64-frame burst: 4096 frames)
const TX_FRAMES = 8192;
const RELAY_CPU = 1;
const USER_HZ = 100;

type Origin = 'xdp' | 'ring' | 'udp';
type Napi = 'softirq' | 'thread';
interface Options {
  rate: number; runs: number; ms: number; sizes: number[]; fanouts: number[]; methods: string[]; origin: Origin; napi: Napi;
  readme: boolean; mcast: 'yes' | 'no' | 'only'; originSpeed: boolean;
}

function parse(args: string[]): Options {
  const o: Options = {
    rate: 0, runs: 3, ms: 500, sizes: [64, 1316], fanouts: [1, 8], methods: METHODS.map((m) => m.name), origin: 'xdp', napi: 'softirq',
    readme: false, mcast: 'yes', originSpeed: false,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = args[i + 1];
    if (a === '--runs') o.runs = Number(args[++i]);
    else if (a === '--ms') o.ms = Number(args[++i]);
    else if (a === '--sizes') (o.sizes = v.split(',').map(Number)), i++;
    else if (a === '--fanouts') (o.fanouts = v.split(',').map(Number)), i++;
    else if (a === '--methods') (o.methods = v.split(',')), i++;
    else if (a === '--origin') o.origin = args[++i] as Origin;
    else if (a === '--napi') o.napi = args[++i] as Napi;
    else if (a === '--origin-speed') o.originSpeed = true;
    else if (a === '--rate') o.rate = Number(args[++i]);
    else if (a === '--readme') o.readme = true;
    else if (a === '--no-mcast') o.mcast = 'no';
    else if (a === '--mcast-only') o.mcast = 'only';
    else throw new Error(`bench relay: unknown option "${a}" (accepted: --runs, --rate, --ms, --sizes, --fanouts, --methods, --origin, --napi, --origin-speed, --readme, --no-mcast, --mcast-only)`);
  }
  for (const m of o.methods) if (!METHODS.some((x) => x.name === m)) throw new Error(`bench relay: --methods: "${m}" is not one of ${METHODS.map((x) => x.name).join(', ')}`);
  if (!['xdp', 'ring', 'udp'].includes(o.origin)) throw new Error(`bench relay: --origin: "${String(o.origin)}" is not one of xdp, ring, udp`);
  if (!['softirq', 'thread'].includes(o.napi)) throw new Error(`bench relay: --napi: "${String(o.napi)}" is not one of softirq, thread`);
  if (o.napi === 'thread' && o.origin !== 'xdp') throw new Error('bench relay: --napi thread is for --origin xdp (the other origins need no NAPI on the relay\'s veth)');
  return o;
}

interface RelayUnderTest {
  /** CPU seconds the relay's own threads have used so far (0: a relay in the kernel has none) */
  cpu(): number;
  stop(): Promise<void>;
}

/** What a method's start() works with: the testbed of one bench run. */
interface BenchCtx {
  tb: Testbed;
  /** the relay's address (it listens on R:P), the origin's (subscribers are O:SUB0..) */
  R: string;
  O: string;
  /** the relay's and the origin's veth ends */
  dev: string;
  odev: string;
  /** argv prefix that pins a relay process to the relay's CPU (empty: not pinned) */
  pin: string[];
  /** engine options that pin its RX thread likewise */
  pinEngine: { cpuRx?: number };
  subs(n: number): Array<[string, number]>;
  /** a compiled bench/c program (listed in the method's `bins`) */
  bin(name: string): string;
}

interface MethodSpec {
  name: string;
  label: string;
  /** bench/c programs start() runs */
  bins?: string[];
  /** once before the first case, once after the last */
  open?(ctx: BenchCtx): Promise<void>;
  close?(): Promise<void>;
  start(ctx: BenchCtx, fanout: number): Promise<RelayUnderTest>;
  /** counters to print after a case and to count drops in (engine) */
  counter?(name: string): number;
}

/**
 * CPU seconds of a process's threads from their schedstat (run time in ns,
 * exact, where /proc/PID/stat counts 10 ms ticks): every thread, or those
 * whose name passes `only` (the engine's rf-rx and rf-tx in this process,
 * not the main thread that runs this bench). Exited threads are not counted.
 */
function threadCpu(pid: number, only?: (comm: string) => boolean): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (only && !only(readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim())) continue;
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread exited between the listing and the read
    }
  }
  return ns / 1e9;
}

/** Each thread's CPU seconds by name (RF_BENCH_DEBUG: where the engine's process spends). */
function threadsByName(pid: number): Map<string, number> {
  const m = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      m.set(comm, (m.get(comm) ?? 0) + Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e9);
    } catch {
      // exited
    }
  }
  return m;
}

async function readyChild(child: ChildProcess, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"ready":true')) resolve();
    });
    child.on('exit', (c) => reject(new Error(`${what} exited ${String(c)}`)));
    setTimeout(() => reject(new Error(`${what} not ready after 5 s`)), 5000).unref();
  });
}

const NODE_PROXY = `const d=require('dgram');const subs=JSON.parse(process.argv[1]);const s=d.createSocket('udp4');
s.on('message',(m)=>{for(const [a,p] of subs)s.send(m,p,a)});
s.bind(${P},process.argv[2],()=>{try{s.setRecvBufferSize(8<<20);s.setSendBufferSize(8<<20)}catch{};console.log('{"ready":true}')});`;

// ------------------------------------------------------------ methods --

// the engine runs in this process, only for its own cases (its RX socket
// and guard rules are gone while the other methods run): its CPU is that of
// its threads (rf-rx, rf-tx), not of the main thread that runs this bench
let engineNow: import('../src/engine/engine').Engine | null = null;

/** The engine with one relay on R:P, relaying in `tier`, for the length of a case. */
async function startEngine(ctx: BenchCtx, fanout: number, tier: 'user' | 'kernel'): Promise<RelayUnderTest> {
  const { Engine } = await import('../src/engine/engine');
  const { Relays } = await import('../src/relay/relays');
  const engine = new Engine({ interface: ctx.dev, netns: ctx.tb.ns('relay'), backend: 'afpacket', relayTier: tier, txFrames: TX_FRAMES, ...ctx.pinEngine });
  await engine.start();
  engineNow = engine;
  try {
    const got = engine.relayTier();
    if (tier === 'kernel' && got.tier !== 'kernel') throw new Error(`bench relay: the kernel tier is not available here: ${got.why}`);
    const relays = new Relays(engine, { refreshMs: 0 });
    await relays.start();
    await relays.addRelay({ name: 'bench', listen: `${ctx.R}:${P}`, sources: [`${ctx.O}/32`], subscribers: ctx.subs(fanout).map(([a, p]) => `${a}:${p}`) });
  } catch (e) {
    engineNow = null;
    await engine.close();
    throw e;
  }
  return {
    cpu: () => threadCpu(process.pid, (c) => c.startsWith('rf-')),
    stop: async () => {
      engineNow = null;
      // the relays (their policy and guard rules) first, then the threads
      await engine.close();
    },
  };
}

const engineMethod: MethodSpec = {
  name: 'engine',
  label: 'engine (user tier)',
  start: (ctx, fanout) => startEngine(ctx, fanout, 'user'),
  counter: (n) => Number(engineNow ? engineNow.region.counter(1, n) : 0),
};

// the kernel tier: an engine of its own (relayTier kernel) for the length of
// a case; the relaying is the tc program's, in the relay CPU's softirq (the
// shared accounting adds that), so its threads' CPU is only their idling
const kernelMethod: MethodSpec = {
  name: 'kernel',
  label: 'engine (kernel tier)',
  start: (ctx, fanout) => startEngine(ctx, fanout, 'kernel'),
};

/** A relay in a child process on the relay host: its CPU is all its threads'. */
async function startChild(ctx: BenchCtx, argv: string[], what: string, after?: () => Promise<void>): Promise<RelayUnderTest> {
  const child = ctx.tb.spawn('relay', [...ctx.pin, ...argv]);
  await readyChild(child, what);
  const pid = child.pid!;
  return {
    cpu: () => threadCpu(pid),
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      if (after) await after();
    },
  };
}

const afpacketMethod: MethodSpec = {
  name: 'afpacket',
  label: 'bare C AF_PACKET',
  bins: ['afpacket_relay'],
  async start(ctx, fanout) {
    // like the engine's guard (src/relay/nft.ts), keep the datagrams from the
    // kernel stack (no ICMP port unreachable); ingress runs after the taps
    await ctx.tb.exec('relay', ['nft', '-f', '-'], {
      input: `table netdev rfbench_guard {\n chain in { type filter hook ingress device "${ctx.dev}" priority 0; policy accept;\n` +
        `  ip daddr ${ctx.R} udp dport ${P} drop\n }\n}\n`,
    });
    const to = ctx.subs(fanout).map(([a, p]) => `${a}:${p}`).join(',');
    return startChild(ctx, [ctx.bin('afpacket_relay'), '--ifname', ctx.dev, '--listen', `${ctx.R}:${P}`, '--to', to, '--dst-mac', ctx.tb.mac('origin')], 'afpacket relay',
      async () => { await ctx.tb.exec('relay', ['nft', 'delete', 'table', 'netdev', 'rfbench_guard']); });
  },
};

const mmsgMethod: MethodSpec = {
  name: 'c',
  label: 'C mmsg relay',
  bins: ['mmsg_relay'],
  start: (ctx, fanout) => startChild(ctx, [ctx.bin('mmsg_relay'), '--listen', `${ctx.R}:${P}`, '--to', ctx.subs(fanout).map(([a, p]) => `${a}:${p}`).join(',')], 'c relay'),
};

const nodeMethod: MethodSpec = {
  name: 'node',
  label: 'Node proxy',
  start: (ctx, fanout) => startChild(ctx, [process.execPath, '-e', NODE_PROXY, JSON.stringify(ctx.subs(fanout)), ctx.R], 'node relay'),
};

// nftables: dnat for 1:1, netdev dup for 1:N; all its work is softirq
const nftMethod: MethodSpec = {
  name: 'nft',
  label: 'nftables',
  async start(ctx, fanout) {
    await ctx.tb.exec('relay', ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    const { R, O } = ctx;
    const rmac = ctx.tb.mac('relay');
    const omac = ctx.tb.mac('origin');
    const script = fanout === 1
      ? `table ip rfbench {\n chain pre { type nat hook prerouting priority dstnat; ip daddr ${R} udp dport ${P} dnat to ${O}:${SUB0}; }\n` +
        ` chain post { type nat hook postrouting priority srcnat; ip daddr ${O} udp dport ${SUB0} snat to ${R}; }\n}\n`
      : `table netdev rfbench {\n chain in { type filter hook ingress device "${ctx.dev}" priority 0; policy accept;\n` +
        `  ip daddr ${R} udp dport ${P} meta mark set 0x42 ether saddr set ${rmac} ether daddr set ${omac} ip saddr set ${R} ip daddr set ${O} udp sport set ${P}\n` +
        ctx.subs(fanout).map(([, p]) => `  meta mark 0x42 udp dport set ${p} dup to "${ctx.dev}"\n`).join('') +
        `  meta mark 0x42 drop\n }\n}\n`;
    await ctx.tb.exec('relay', ['nft', '-f', '-'], { input: script });
    return {
      cpu: () => 0,
      stop: async () => {
        await ctx.tb.exec('relay', ['nft', 'delete', 'table', fanout === 1 ? 'ip' : 'netdev', 'rfbench']);
        await ctx.tb.exec('relay', ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
      },
    };
  },
};

const METHODS: MethodSpec[] = [engineMethod, kernelMethod, afpacketMethod, mmsgMethod, nodeMethod, nftMethod];

async function main(args: string[]): Promise<void> {
  const why = netnsUnavailable();
  if (why) {
    process.stdout.write(`SKIPPED: ${why}\n`);
    return;
  }
  const o = parse(args);
  if (o.mcast !== 'only') await unicastMain(args, o);
  if (o.mcast !== 'no' && !o.originSpeed) {
    process.stdout.write('\n--- relay: multicast and capture (bench/relay-mcast.ts) ---\n');
    await mcastMain([...(args.includes('--runs') ? ['--runs', String(o.runs)] : []), ...(o.readme ? ['--readme'] : [])]);
  }
}

/** The napi/DEV-ID kthreads there are now (pid -> name). */
function napiThreads(dev: string): Map<number, string> {
  const m = new Map<number, string>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (comm.startsWith(`napi/${dev}-`)) m.set(Number(pid), comm);
    } catch {
      // exited
    }
  }
  return m;
}

/**
 * --origin xdp: the relay's veth must have NAPI for the origin's XDP frames
 * (veth_xdp_xmit refuses them otherwise); GRO on turns it on (ETHTOOL_SGRO,
 * relay_origin --gro). --napi softirq: the veth's poll runs in the softirq
 * of the CPU that flushed (the origin's, once per 64 frames), builds the
 * skbs around the frames' pages and RPS hands them to the relay CPU's
 * backlog: the relay's receive path from there on is the same as with the
 * other origins. --napi thread: threaded NAPI, its kthread pinned to the
 * relay CPU and RPS off there (the kthread does the whole receive path;
 * its run time is counted for every method). Returns the kthread's pid (0:
 * none). Off (GRO off) again with on = false.
 */
async function relayNapi(tb: Testbed, bin: string, dev: string, on: boolean, napi: Napi): Promise<number> {
  if (!on) {
    if (napi === 'thread') await tb.exec('relay', ['sh', '-c', `echo 0 > /sys/class/net/${dev}/threaded`]);
    await tb.exec('relay', [bin, '--gro', dev, 'off']);
    return 0;
  }
  const before = napiThreads(dev);
  await tb.exec('relay', [bin, '--gro', dev, 'on']);
  if (napi === 'softirq') return 0;
  await tb.exec('relay', ['sh', '-c', `echo 1 > /sys/class/net/${dev}/threaded`]);
  // the kthread is named after the device's name in its namespace (veth0 in
  // every testbed): ours is the one that was not there before
  const fresh = [...napiThreads(dev)].filter(([pid]) => !before.has(pid));
  if (fresh.length !== 1) throw new Error(`bench relay: --napi thread: expected one new napi/${dev}-* kthread, found ${fresh.length} (another testbed's at the same time?)`);
  const [pid] = fresh[0];
  execFileSync('taskset', ['-p', '-c', String(RELAY_CPU), String(pid)], { stdio: 'ignore' });
  await tb.exec('relay', ['sh', '-c', `echo 0 > /sys/class/net/${dev}/queues/rx-0/rps_cpus`]);
  return pid;
}

/** A counter read every 50 ms until it stops moving (at most 2 s): its value then, and how long that took (ms). */
async function settled(read: () => Promise<number>): Promise<{ last: number; waited: number }> {
  let last = await read();
  let waited = 0;
  for (; waited < 2000; waited += 50) {
    await new Promise((res) => setTimeout(res, 50));
    const now = await read();
    if (now === last) break;
    last = now;
  }
  return { last, waited };
}

/** The origin's argv for one run: full speed (pps 0) or paced. */
function originArgv(tb: Testbed, bin: string, origin: Origin, size: number, pps: number, ms: number): string[] {
  const O = tb.addr('origin');
  const link = origin === 'udp' ? [] : ['--ifname', tb.iface('origin').name, '--src', `${O}:${P + 1}`, '--dst-mac', tb.mac('relay')];
  const xdp = origin === 'xdp' ? ['--xdp', '1', '--xdp-hold', XDP_HOLD] : [];
  return ['ip', 'netns', 'exec', tb.ns('origin'), ...(PIN ? ['taskset', '-c', String(ORIGIN_CPU)] : []), bin,
    '--dst', `${tb.addr('relay')}:${P}`, '--size', String(size), '--pps', String(pps), '--ms', String(ms), ...link, ...xdp];
}

// a veth end in the origin's namespace that never carries a frame: the XDP
// program stays attached to it (generic mode) for the origin's run, so that
// the kernel's XDP dispatcher keeps it (relay_origin --xdp-hold)
const XDP_HOLD = 'rfxhold0';

// net.core.netdev_max_backlog for the run: 8 ms of the 1:8 sink at 2 M frames/s
const BACKLOG = 16384;
// halving steps of the lossless search
const BISECT = 3;

async function unicastMain(args: string[], o: Options): Promise<void> {
  const chosen = METHODS.filter((m) => o.methods.includes(m.name));
  const origin = compileBench('relay_origin');
  if ('missing' in origin) throw new Error(origin.missing);
  const bins = new Map<string, string>();
  for (const name of new Set(chosen.flatMap((m) => m.bins ?? []))) {
    const b = compileBench(name);
    if ('missing' in b) throw new Error(b.missing);
    bins.set(name, b.bin);
  }
  const unlock = await holdSharedLock('/tmp/rf-gyp.lock');
  const tb = await Testbed.create(null, { hosts: ['origin', 'relay'], links: [['origin', 'relay']] });
  const results: Row[] = [];
  // Each CPU's input backlog (global, not per namespace) as deep as a pause of
  // the host holds: the host stops a vCPU for 1-4 ms now and then, and a 1:8
  // relay at 200 k input frames/s fills the sink CPU's default 1,000 frames in
  // 0.6 ms, so a run failed the lossless test for where the host paused it,
  // not for the relay (drops in "cpu0 backlog"). The same for every method;
  // put back after the run.
  const restoreBacklog = sysctlForRun('/proc/sys/net/core/netdev_max_backlog', String(BACKLOG));
  try {
    const R = tb.addr('relay');
    const O = tb.addr('origin');
    const dev = tb.iface('relay').name;
    const odev = tb.iface('origin').name;
    if (o.origin === 'xdp' || o.originSpeed) await tb.exec('origin', ['ip', 'link', 'add', XDP_HOLD, 'type', 'veth', 'peer', 'name', `${XDP_HOLD}p`]);
    if (PIN) {
      // each host's receive processing on its own CPU, as with two machines:
      // the relay's RX softirq (AF_PACKET taps, its socket) on the relay's CPU,
      // the sink's on the origin's (veth runs netif_rx on the sender's CPU
      // otherwise, which would charge the relay's receive work to the origin)
      await tb.exec('relay', ['sh', '-c', `echo ${(1 << RELAY_CPU).toString(16)} > /sys/class/net/${dev}/queues/rx-0/rps_cpus`]);
      await tb.exec('origin', ['sh', '-c', `echo ${(1 << ORIGIN_CPU).toString(16)} > /sys/class/net/${odev}/queues/rx-0/rps_cpus`]);
    }
    if (o.originSpeed) {
      await originSpeed(tb, origin.bin, o);
      return;
    }
    const napiPid = o.origin === 'xdp' ? await relayNapi(tb, origin.bin, dev, true, o.napi) : 0;
    // the napi kthread's run time (--napi thread): part of every method's CPU
    const napiCpu = (): number => (napiPid ? threadCpu(napiPid) : 0);
    // the sink: count and drop the relayed datagrams at the origin's veth ingress
    await tb.exec('origin', ['nft', '-f', '-'], {
      input: `table netdev rfbench_sink {\n chain in { type filter hook ingress device "${odev}" priority 0; policy accept;\n` +
        `  udp dport ${SUB0}-${SUB0 + 63} counter drop\n }\n}\n`,
    });
    // where frames die: each CPU's backlog (softnet_stat: processed, dropped,
    // time_squeeze), each veth end's drop counters, the engine's own counters
    const softnet = (): number[][] => readFileSync('/proc/net/softnet_stat', 'utf8').trim().split('\n')
      .map((l) => l.trim().split(/\s+/).slice(0, 3).map((x) => parseInt(x, 16)));
    const linkDrops = async (host: string, name: string): Promise<[number, number]> => {
      const r = await tb.exec(host, ['ip', '-s', '-j', 'link', 'show', name]);
      const st = (JSON.parse(r.stdout) as Array<{ stats64: { rx: { dropped: number }; tx: { dropped: number } } }>)[0].stats64;
      return [st.rx.dropped, st.tx.dropped];
    };
    const delivered = async (): Promise<number> => {
      const r = await tb.exec('origin', ['nft', 'list', 'chain', 'netdev', 'rfbench_sink', 'in']);
      return Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? NaN);
    };
    // per CPU: user+nice, system, softirq, idle (USER_HZ ticks)
    const cpuStat = (): number[][] => readFileSync('/proc/stat', 'utf8').split('\n').filter((l) => /^cpu\d/.test(l))
      .map((l) => { const f = l.split(/\s+/).slice(1).map(Number); return [f[0] + f[1], f[2], f[6], f[3] + f[4]]; });
    const snapshot = async (): Promise<Snap> => ({
      cpu: cpuStat(),
      softnet: softnet(),
      relayLink: await linkDrops('relay', dev),
      originLink: await linkDrops('origin', odev),
      engine: chosen.includes(engineMethod) ? ENGINE_COUNTERS.map((n) => engineMethod.counter!(n)) : [],
    });
    const subs = (n: number): Array<[string, number]> => Array.from({ length: n }, (_, i) => [O, SUB0 + i]);
    const ctx: BenchCtx = {
      tb, R, O, dev, odev, subs,
      pin: PIN ? ['taskset', '-c', String(RELAY_CPU)] : [],
      pinEngine: PIN ? { cpuRx: RELAY_CPU } : {},
      bin: (name) => {
        const b = bins.get(name);
        if (!b) throw new Error(`bench relay: ${name} is not in the method's bins`);
        return b;
      },
    };
    for (const m of chosen) if (m.open) await m.open(ctx);

    // one measured run: offered rate (0 = full speed) -> per-subscriber delivered pps, loss, CPU/packet
    const measure = async (rut: RelayUnderTest, fanout: number, size: number, pps: number, ms = o.ms): Promise<Point> => {
      const d0 = await delivered();
      const s0 = await snapshot();
      const t0 = process.env.RF_BENCH_DEBUG ? threadsByName(process.pid) : null;
      const c0 = rut.cpu() + napiCpu();
      const r = await runChild(originArgv(tb, origin.bin, o.origin, size, pps, ms));
      // the tail in flight: a relay that fell behind drains its RX ring (up to
      // 16 MB) after the origin stopped; wait until the count stops moving so
      // that none of it is credited to the next run
      const { last, waited } = await settled(delivered);
      const got = last - d0;
      const cpu = rut.cpu() + napiCpu() - c0;
      const s1 = await snapshot();
      const sent = Number(r.json.sent);
      // frames that did not arrive, then where the counters saw them die (a
      // baseline relay's own RX ring drops are not visible here)
      const counted = dropsWhere(s0, s1);
      const where = `lost ${Math.max(0, sent * fanout - got)}${counted ? `: ${counted}` : ''}`;
      // delivered over the time it took, drain included (the settle loop's last 50 ms saw nothing)
      const secs = Number(r.json.seconds) + Math.max(0, waited - 50) / 1000;
      if (t0) {
        const t1 = threadsByName(process.pid);
        const us = [...t1].map(([n, v]) => `${n} ${Math.round((v - (t0.get(n) ?? 0)) * 1e6)}`).join(', ');
        process.stdout.write(`  run pps=${pps}: sent ${sent}, delivered ${got} (${d0} before); ${where}; usr/sys/si/idle % ${cpuWhere(s0, s1)}; this process's threads (us): ${us}\n`);
      }
      // lossless means kept up: nothing lost AND delivered within ~150 ms of the
      // origin's end (a socket buffer or RX ring that absorbs a short run and
      // drains for seconds afterwards is not a rate the relay sustains)
      const loss = sent ? 1 - got / (sent * fanout) : 1;
      // the relay CPU's softirq time (its receive path, and all of a relay in
      // the kernel): USER_HZ ticks, so only a sum over a run means something
      const si = PIN ? ((s1.cpu[RELAY_CPU][2] - s0.cpu[RELAY_CPU][2]) / USER_HZ) : NaN;
      return {
        where, sentPps: sent / Number(r.json.seconds), perSub: got / fanout / secs, loss, keptUp: loss < 0.001 && waited <= 100,
        usPerPkt: got ? (cpu / got) * 1e6 : NaN, usSoftirq: got ? (si / got) * 1e6 : NaN,
      };
    };

    for (const size of o.sizes) {
      for (const fanout of o.fanouts) {
        for (const spec of chosen) {
          const m = spec.name;
          const rut = await spec.start(ctx, fanout);
          try {
            await measure(rut, fanout, size, 20000, 100); // warm up: neighbours, caches
            const full = await measure(rut, fanout, size, 0);
            let lossless: Point | null = null;
            let rate = 0;
            // the relay kept up with all the origin could send: origin-bound
            let originShort = false;
            const originBound0 = !o.rate && full.keptUp;
            if (o.rate) {
              // given: no search (to iterate on one rate and its overload)
              rate = o.rate;
              lossless = await measure(rut, fanout, size, rate);
            } else if (originBound0) {
              lossless = full;
            } else {
              // what got through at full speed is only a starting point: a relay
              // that collapses under overload (the Node proxy) delivers far less
              // than it can carry, so search up from there as well as down
              const fs = [1, 0.7, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05];
              let lostAt = 0;
              for (let k = 0; k < fs.length; k++) {
                rate = Math.max(1000, Math.floor(full.perSub * fs[k]));
                const p = await measure(rut, fanout, size, rate);
                if (p.keptUp) {
                  lossless = p;
                  break;
                }
                lostAt = rate;
              }
              if (lossless && !lostAt) {
                // lossless at the full-speed figure: double until a run loses
                for (let up = 0; up < 4; up++) {
                  const p = await measure(rut, fanout, size, rate * 2);
                  if (!p.keptUp || p.sentPps < rate * 1.5) {
                    // kept up with all the origin could offer: what it found
                    // is the origin's limit, not the relay's
                    if (p.keptUp) originShort = true;
                    lostAt = rate * 2;
                    break;
                  }
                  (lossless = p), (rate *= 2);
                }
              }
              // halve the interval between the rate that kept up and the one
              // that lost, BISECT times (to 1/8 of it, from up to 1.4x: the
              // figure within ~5 %, where one step left it within ~20 %, as
              // wide as the differences between methods it is to show)
              for (let k = 0; lossless && lostAt && !originShort && k < BISECT && lostAt > rate * 1.03; k++) {
                const mid = Math.floor((rate + lostAt) / 2);
                const q = await measure(rut, fanout, size, mid);
                if (q.keptUp) (lossless = q), (rate = mid);
                else lostAt = mid;
              }
            }
            const originBound = originBound0 || originShort;
            const confirm: Point[] = lossless ? [lossless] : [];
            for (let k = 1; k < o.runs && lossless; k++) confirm.push(await measure(rut, fanout, size, rate));
            // overload: twice the lossless rate, median of --runs runs (one
            // run moves by 2x on this host)
            const overs: Point[] = [];
            for (let k = 0; k < o.runs && lossless && !originBound; k++) overs.push(await measure(rut, fanout, size, rate * 2));
            const over = overs.length ? overs.slice().sort((a, b) => a.perSub - b.perSub)[overs.length >> 1] : null;
            const row: Row = {
              method: m, size, fanout,
              lossless: lossless ? median(confirm.map((p) => p.perSub)) : 0,
              losslessLoss: lossless ? median(confirm.map((p) => p.loss)) : 1,
              usPerPkt: lossless ? median(confirm.map((p) => p.usPerPkt)) : NaN,
              usSoftirq: lossless ? median(confirm.map((p) => p.usSoftirq)) : NaN,
              originPps: full.sentPps,
              fullPerSub: full.perSub,
              originBound,
              overOffered: over ? over.sentPps : 0,
              overPerSub: over ? over.perSub : 0,
              overWhere: over ? over.where : '',
            };
            results.push(row);
            if (spec.counter) {
              const names = ['rx_packets', 'relay_in', 'relay_out', 'rx_unmatched', 'drop_not_allowed', 'drop_fragment', 'drop_rx_ring', 'drop_tx_full', 'drop_tx_error', 'tx_ring_full', 'drop_malformed', 'tx_flushes', 'sleeps', 'wakeups'];
              process.stdout.write(`  ${m} counters: ${names.map((n) => `${n}=${spec.counter!(n)}`).join(' ')}\n`);
            }
            process.stdout.write(`${m} 1:${fanout} ${size}B: lossless ${row.originBound ? '>= ' : ''}${Math.round(row.lossless)} pps/sub${row.originBound ? ' (origin-bound)' : ''}, ` +
              `CPU/pkt ${fmt(row.usPerPkt)} us threads + ${fmt(row.usSoftirq)} us softirq, ` +
              `full speed ${Math.round(full.perSub)} pps/sub (origin ${Math.round(full.sentPps)} pps), overload (${Math.round(row.overOffered)} offered) ${Math.round(row.overPerSub)} pps/sub\n` +
              `  full speed: ${full.where}; overload: ${row.overWhere || '-'}\n`);
          } finally {
            await rut.stop();
          }
        }
      }
    }
    for (const m of chosen) if (m.close) await m.close();
  } finally {
    for (const m of METHODS) if (m.close) await m.close().catch(() => undefined);
    restoreBacklog();
    await tb.destroy();
    unlock();
  }
  const table = render(results, o) + kernelRatios(results, o);
  process.stdout.write('\n' + table + '\n');
  if (o.readme) writeReadme(table, args, o);
}

/**
 * --origin-speed: the origin alone at full speed, --origin xdp and ring
 * alternating (--runs each, medians), counted where it arrives: a netdev
 * ingress counter on the relay's veth (nothing relays). xdp runs with the
 * relay veth's NAPI on (--napi), ring with it off, as in their relay runs.
 */
async function originSpeed(tb: Testbed, bin: string, o: Options): Promise<void> {
  const dev = tb.iface('relay').name;
  await tb.exec('relay', ['nft', '-f', '-'], {
    input: `table netdev rfbench_count {\n chain in { type filter hook ingress device "${dev}" priority 0; policy accept;\n  udp dport ${P} counter drop\n }\n}\n`,
  });
  const count = async (): Promise<number> => {
    const r = await tb.exec('relay', ['nft', 'list', 'chain', 'netdev', 'rfbench_count', 'in']);
    return Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? NaN);
  };
  const origins: Origin[] = ['xdp', 'ring'];
  const lines = ['| payload | origin | offered pps (median) | arrived pps (median) | arrived / offered | runs: arrived pps |', '|---:|---|---:|---:|---:|---|'];
  for (const size of o.sizes) {
    const got = new Map<Origin, Array<{ sent: number; arrived: number }>>(origins.map((x) => [x, []]));
    for (let k = 0; k < o.runs; k++) {
      for (const origin of origins) {
        await relayNapi(tb, bin, dev, origin === 'xdp', o.napi);
        await runChild(originArgv(tb, bin, origin, size, 20000, 100)); // warm up
        await new Promise((res) => setTimeout(res, 100));
        const c0 = await count();
        const r = await runChild(originArgv(tb, bin, origin, size, 0, o.ms));
        const { last, waited } = await settled(count);
        const secs = Number(r.json.seconds);
        const one = { sent: Number(r.json.sent) / secs, arrived: (last - c0) / (secs + Math.max(0, waited - 50) / 1000) };
        got.get(origin)!.push(one);
        process.stdout.write(`origin ${origin} ${size} B run ${k + 1}: offered ${Math.round(one.sent)} pps, arrived ${Math.round(one.arrived)} pps (${String(r.json.mode)})\n`);
        await relayNapi(tb, bin, dev, false, o.napi);
      }
    }
    for (const origin of origins) {
      const xs = got.get(origin)!;
      const sent = median(xs.map((x) => x.sent));
      const arrived = median(xs.map((x) => x.arrived));
      lines.push(`| ${size} B | ${origin} | ${Math.round(sent)} | ${Math.round(arrived)} | ${fmt(arrived / sent)} | ${xs.map((x) => Math.round(x.arrived)).join(', ')} |`);
    }
  }
  process.stdout.write('\n' + lines.join('\n') + '\n');
}

const ENGINE_COUNTERS = ['rx_packets', 'relay_out', 'drop_rx_ring', 'drop_tx_full', 'drop_tx_error', 'tx_ring_full'] as const;
interface Snap { cpu: number[][]; softnet: number[][]; relayLink: [number, number]; originLink: [number, number]; engine: number[] }

/** Where the frames of one run died: a short text (empty: nowhere). */
function dropsWhere(a: Snap, b: Snap): string {
  const parts: string[] = [];
  b.softnet.forEach((row, cpu) => {
    const d = row[1] - (a.softnet[cpu]?.[1] ?? 0);
    const sq = row[2] - (a.softnet[cpu]?.[2] ?? 0);
    if (d) parts.push(`cpu${cpu} backlog ${d}`);
    if (sq) parts.push(`cpu${cpu} squeezed ${sq}`);
  });
  const link = (name: string, x: [number, number], y: [number, number]): void => {
    if (y[0] - x[0]) parts.push(`${name} rx_dropped ${y[0] - x[0]}`);
    if (y[1] - x[1]) parts.push(`${name} tx_dropped ${y[1] - x[1]}`);
  };
  link('relay veth', a.relayLink, b.relayLink);
  link('origin veth', a.originLink, b.originLink);
  ENGINE_COUNTERS.forEach((n, i) => {
    const d = (b.engine[i] ?? 0) - (a.engine[i] ?? 0);
    if (d && n !== 'rx_packets' && n !== 'relay_out') parts.push(`engine ${n} ${d}`);
  });
  return parts.join(', ');
}

/** Each CPU's time in a run: user/system/softirq/idle percent. */
function cpuWhere(a: Snap, b: Snap): string {
  return b.cpu.map((row, cpu) => {
    const d = row.map((x, i) => x - (a.cpu[cpu]?.[i] ?? 0));
    const t = d.reduce((x, y) => x + y, 0) || 1;
    return `cpu${cpu} ${d.map((x) => Math.round((x / t) * 100)).join('/')}`;
  }).join(' ');
}

interface Point { where: string; sentPps: number; perSub: number; loss: number; keptUp: boolean; usPerPkt: number; usSoftirq: number }
interface Row {
  method: string; size: number; fanout: number; lossless: number; losslessLoss: number; usPerPkt: number; usSoftirq: number; originPps: number;
  fullPerSub: number; overOffered: number; overPerSub: number; overWhere: string; originBound: boolean;
}

function fmt(x: number, d = 2): string {
  return Number.isFinite(x) ? x.toFixed(d) : '-';
}

/**
 * A ratio of two lossless rates, honest about origin-bound ones (a lower
 * bound): ">= 1.52x" when only the numerator is one, "<= 0.80x" when only
 * the denominator is, "?" when both are (nothing can be said).
 */
function ratio(r: Row, base: Row | undefined): string {
  if (!base || !base.lossless || !r.lossless) return '-';
  if (r === base) return '1.00x';
  const x = `${fmt(r.lossless / base.lossless)}x`;
  if (r.originBound && base.originBound) return '? (both origin-bound)';
  return r.originBound ? `>= ${x}` : base.originBound ? `<= ${x}` : x;
}

/** The kernel tier against nftables and the user tier of the same run (issue #10's goals). */
function kernelRatios(rows: Row[], o: Options): string {
  const lines: string[] = [];
  for (const size of o.sizes) {
    for (const fanout of o.fanouts) {
      const of = (m: string): Row | undefined => rows.find((r) => r.method === m && r.size === size && r.fanout === fanout);
      const k = of('kernel');
      if (!k) continue;
      const nft = of('nft');
      const user = of('engine');
      const goal = fanout === 1 ? 1.5 : 1.3;
      lines.push(`| 1:${fanout} ${size} B | ${k.originBound ? '>= ' : ''}${Math.round(k.lossless)} | ${ratio(k, nft)} (goal ${goal}x) | ${ratio(k, user)} (goal 3x) |`);
    }
  }
  if (!lines.length) return '';
  return '\n\n| case | kernel tier lossless pps / subscriber | vs nftables | vs user tier |\n|---|---:|---:|---:|\n' + lines.join('\n');
}

function render(rows: Row[], o: Options): string {
  const lines = [
    '| case | method | lossless pps / subscriber | vs bare C AF_PACKET | vs nftables | CPU us / delivered pkt: relay threads + relay CPU softirq | origin at full speed, pps | overload: offered pps | delivered / subscriber | vs lossless |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const label = (name: string): string => METHODS.find((m) => m.name === name)?.label ?? name;
  for (const size of o.sizes) {
    for (const fanout of o.fanouts) {
      const of = (m: string): Row | undefined => rows.find((r) => r.method === m && r.size === size && r.fanout === fanout);
      for (const r of rows.filter((x) => x.size === size && x.fanout === fanout)) {
        // an origin that could not offer 1.5x the lossless rate did not overload
        // the relay: say so rather than report a "collapse" it did not cause
        const weak = r.overOffered < 1.5 * r.lossless ? ` (offered only ${fmt(r.overOffered / r.lossless, 1)}x)` : '';
        const over = r.originBound ? '- | - | - (origin-bound)' : `${Math.round(r.overOffered)} | ${Math.round(r.overPerSub)} | ${fmt(r.overPerSub / r.lossless)}x${weak}`;
        const cpu = `${fmt(r.usPerPkt)} + ${fmt(r.usSoftirq)} = ${fmt(r.usPerPkt + r.usSoftirq)}`;
        lines.push(`| 1:${fanout} ${size} B | ${label(r.method)} | ${r.originBound ? '>= ' : ''}${Math.round(r.lossless)}${r.originBound ? ' (origin-bound)' : ''} | ` +
          `${ratio(r, of('afpacket'))} | ${ratio(r, of('nft'))} | ${cpu} | ${Math.round(r.originPps)} | ${over} |`);
      }
    }
  }
  return lines.join('\n');
}

function writeReadme(table: string, args: string[], o: Options): void {
  writeResults('relay', [
    `Measured ${measuredOn()}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} (1/5/15 min) at the end; origin: ${ORIGIN_TEXT[o.origin]}${o.origin === 'xdp' ? ` (the relay veth's NAPI: ${o.napi})` : ''}.`,
    commandOf('relay', args),
    '',
    table,
  ], RELAY_SECTION);
}

const ORIGIN_TEXT: Record<Origin, string> = {
  xdp: 'BPF_PROG_TEST_RUN live XDP frames out of its veth',
  ring: 'PACKET_TX_RING with a virtio_net_hdr per frame',
  udp: 'UDP sendmmsg',
};

// only used when bench/README.md has no Relay section yet (it explains the columns)
const RELAY_SECTION = `## Relay: redirect and split (issue #4)

Delivered packets/s per subscriber for redirect (1:1) and split (1:N); methods, topology and
columns: see the header of \`bench/relay.ts\`.`;

export { main };
