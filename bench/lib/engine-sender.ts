// SPDX-License-Identifier: MIT
// The engine path of the TX benchmark, as its own process so its CPU and
// context switches are measured like the baselines':
//   node dist/bench/lib/engine-sender.js --netns NS --dev veth0 --to ADDR --port P \
//     --size S --workers W --burst B --warmup-ms W --duration-ms D [--engine-burst N] [--tx-frames N]
//     [--backend afpacket|afxdp]
// Piscina workers produce into the shared region, the engine (afpacket
// backend unless --backend says otherwise, in namespace NS) sends. Prints one JSON line for the D ms window:
// frames the engine sent, its send system calls, process CPU (every thread:
// engine, workers, main) and context switches.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Piscina from 'piscina';
import { Engine } from '../../src/engine/engine';
import { parseEndpoint } from '../../src/net/address';
import { makeDestination } from '../../src/net/destination';
import type { EngineBenchTask } from './engine-worker';
import { straceSelf, usageBetween, usageMark, type UsageMark } from './measure';

interface ThreadCpu {
  comm: string;
  user: number;
  sys: number;
  /** exact run time (s) from /proc/.../sched (user + sys ticks are 10 ms coarse) */
  run: number;
  migrations: number;
  voluntary: number;
  involuntary: number;
}

/** CPU seconds (user, system, exact run time) and scheduler events of every thread of this process, by tid. */
function threadCpu(): Map<string, ThreadCpu> {
  const hz = 100; // USER_HZ: /proc reports clock ticks of 1/100 s on Linux
  const out = new Map<string, ThreadCpu>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const st = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const close = st.lastIndexOf(')');
      const comm = st.slice(st.indexOf('(') + 1, close);
      const f = st.slice(close + 2).split(' ');
      const sched = readFileSync(`/proc/self/task/${tid}/sched`, 'utf8');
      const field = (k: string): number => Number(new RegExp(`^${k.replace('.', '\\.')}\\s*:\\s*([0-9.]+)`, 'm').exec(sched)?.[1] ?? NaN);
      // fields 14 and 15 (utime, stime) are at 11 and 12 after "pid (comm) "
      out.set(tid, {
        comm,
        user: Number(f[11]) / hz,
        sys: Number(f[12]) / hz,
        run: field('se.sum_exec_runtime') / 1e3, // ms in the file
        migrations: field('se.nr_migrations'),
        voluntary: field('nr_voluntary_switches'),
        involuntary: field('nr_involuntary_switches'),
      });
    } catch {
      // the thread ended between readdir and read
    }
  }
  return out;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

async function main(): Promise<void> {
  const netns = arg('--netns', '');
  const dev = arg('--dev', 'veth0');
  const to = arg('--to', '198.18.0.2');
  const port = Number(arg('--port', '9'));
  const size = Number(arg('--size', '64'));
  const workers = Number(arg('--workers', '1'));
  const burst = Number(arg('--burst', '64'));
  const warmupMs = Number(arg('--warmup-ms', '200'));
  const durationMs = Number(arg('--duration-ms', '1000'));
  const cpuTx = Number(arg('--cpu-tx', '-1'));
  // the engine's frames per send() and TX ring size (absent: the engine's defaults)
  const engineBurst = process.argv.includes('--engine-burst') ? Number(arg('--engine-burst', '64')) : undefined;
  const txFrames = process.argv.includes('--tx-frames') ? Number(arg('--tx-frames', '512')) : undefined;
  // pool slots per lane (absent: the region's default); a worker that waits
  // for slots sleeps until a quarter of them is back (Lane.lowWater)
  const slotsPerLane = process.argv.includes('--slots-per-lane') ? Number(arg('--slots-per-lane', '1024')) : undefined;
  const straced = process.argv.includes('--strace');
  const backend = arg('--backend', 'afpacket');
  if (backend !== 'afpacket' && backend !== 'afxdp') throw new Error(`--backend ${backend}: accepted afpacket, afxdp`);

  const dest = await makeDestination(parseEndpoint(to.includes(':') ? `[${to}]:${port}` : `${to}:${port}`), { netns, dev });
  const engine = new Engine({ interface: dev, netns, backend, cpuTx, burst: engineBurst, txFrames, region: { lanes: workers + 1, ...(slotsPerLane ? { slotsPerLane } : {}) } });
  await engine.start();
  const stop = new SharedArrayBuffer(4);
  const pool = new Piscina({ filename: join(__dirname, 'engine-worker.js'), minThreads: workers, maxThreads: workers });
  const task: EngineBenchTask = { sab: engine.region.sab, stop, dest, size, burst };
  const runs = Array.from({ length: workers }, () => pool.run(task) as Promise<{ packets: number }>);
  const snap = (): UsageMark & { pk: bigint; sc: bigint; fl: bigint; drops: bigint } => ({
    ...usageMark(),
    pk: engine.region.counter(0, 'tx_packets'),
    sc: engine.region.counter(0, 'tx_syscalls'),
    fl: engine.region.counter(0, 'tx_flushes'),
    drops: ['drop_bad_slot', 'drop_bad_dest', 'drop_bad_len', 'drop_tx_error', 'drop_late'].reduce((s, c) => s + engine.region.counter(0, c), 0n),
  });
  await new Promise((r) => setTimeout(r, warmupMs));
  // --strace: count every thread's system calls over the window (slows the run: packets/s of such a run are not reported)
  // packets over the whole traced span (attach to detach), for strace's counts
  const pkTraceStart = engine.region.counter(0, 'tx_packets');
  const stopStrace = straced ? await straceSelf() : null;
  const a = snap();
  const ta = threadCpu();
  await new Promise((r) => setTimeout(r, durationMs));
  const b = snap();
  const tbusy = [...threadCpu()]
    .map(([tid, v]) => {
      const was = ta.get(tid) ?? { user: 0, sys: 0, run: 0, migrations: 0, voluntary: 0, involuntary: 0 };
      return {
        tid: Number(tid),
        comm: v.comm,
        user: +(v.user - was.user).toFixed(2),
        sys: +(v.sys - was.sys).toFixed(2),
        run: +(v.run - was.run).toFixed(4),
        migrations: v.migrations - was.migrations,
        voluntary: v.voluntary - was.voluntary,
        involuntary: v.involuntary - was.involuntary,
      };
    })
    .filter((x) => x.run > 0)
    .sort((x, y) => y.run - x.run);
  const calls = stopStrace ? await stopStrace() : null;
  const stracePackets = Number(engine.region.counter(0, 'tx_packets') - pkTraceStart);
  Atomics.store(new Int32Array(stop), 0, 1);
  const produced = (await Promise.all(runs)).reduce((s, r) => s + r.packets, 0);
  await pool.destroy();
  await engine.stop();
  const out = {
    method: backend === 'afpacket' ? 'engine' : `engine-${backend}`,
    packets: Number(b.pk - a.pk),
    ...usageBetween(a, b),
    syscalls: Number(b.sc - a.sc),
    flushes: Number(b.fl - a.fl),
    drops: Number(b.drops - a.drops),
    produced,
    // CPU of the busiest threads over the window (engine TX thread: mostly sys; worker: mostly user)
    threads: tbusy.slice(0, 4),
    ...(calls ? { straceCalls: calls, stracePackets } : {}),
    // every frame of the process's life (warm-up too), for the sink count
    totalPackets: Number(engine.region.counter(0, 'tx_packets')),
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`engine-sender: ${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
