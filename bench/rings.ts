// SPDX-License-Identifier: MIT
// Descriptors per second through the shared rings, TypeScript -> C engine
// (null backend: the whole TX path without a NIC), against a baseline
// measured in the same run: the same TypeScript ring verbs with a
// TypeScript consumer in the same thread (what writing descriptors costs
// JS when nobody else touches the cache lines).
//
//   npm run build:ts && npm run bench -- rings            (about 15 s)
//   npm run bench -- rings --runs 5 --count 2000000
//   node dist/bench/rings.js --runs 3                       (same, standalone)
//
// Prints per configuration the median over --runs of descriptors/s, end to
// end (first submit until the engine has consumed them all), and the ratio
// to the baseline. Needs no root: the null backend opens no socket.
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { Engine } from '../src/engine/engine';
import { HDR, LANE } from '../src/region/layout';
import { Region } from '../src/region/region';
import { RingConsumer } from '../src/region/ring';
import type { StressResult, StressTask } from '../test/fixtures/stress-worker';

function opt(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`rings: ${name} expects a positive number`);
  return v;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (r: number): string => `${(r / 1e6).toFixed(2)} M/s`;

/** Baseline: cursor verbs into a lane's submit ring, drained by a TS consumer in the same thread. */
function baseline(count: number, batch: number): number {
  const region = Region.create({ lanes: 1, slotsPerLane: 4096, submitEntries: 4096, slotSize: 512 });
  const lane = region.lane(0);
  const submitOff = region.u32[(HDR.lanes + LANE.submitOff) >> 2];
  const consumer = new RingConsumer(region.sab, submitOff, region.u32);
  const t0 = process.hrtime.bigint();
  for (let sent = 0; sent < count; sent += batch) {
    lane.begin(batch);
    for (let k = 0; k < batch; k++) lane.put(k, k, 64, 0, 1, 0);
    lane.commit();
    consumer.release(consumer.peek(batch));
  }
  return count / (Number(process.hrtime.bigint() - t0) / 1e9);
}

export async function main(args: string[] = []): Promise<void> {
  const runs = opt(args, '--runs', 3);
  const count = opt(args, '--count', 1_000_000);
  const batch = opt(args, '--batch', 256);
  const configs: { name: string; workers: number; mode: 'cursor' | 'objects' }[] = [
    { name: '1 worker, cursor (begin/put/commit)', workers: 1, mode: 'cursor' },
    { name: '2 workers, cursor', workers: 2, mode: 'cursor' },
    { name: '1 worker, submit(PacketDesc[])', workers: 1, mode: 'objects' },
  ];
  // lane 0, two warm-up lanes, then one lane per worker per run
  const lanes = 3 + runs * configs.reduce((s, c) => s + c.workers, 0);
  if (lanes > 64) throw new Error(`rings: --runs ${runs} needs ${lanes} lanes, a region has at most 64`);
  const engine = new Engine({
    interface: 'lo',
    backend: 'null',
    region: { lanes, slotsPerLane: 4096, submitEntries: 4096, slotSize: 512, destsPerLane: 1 },
  });
  const region = engine.region;
  await engine.start();
  const pool = new Piscina({
    filename: join(__dirname, '..', 'test', 'fixtures', 'stress-worker.js'),
    workerData: { sab: region.sab },
    minThreads: 2,
    maxThreads: 2,
  });
  try {
    // warm up the JIT on both paths before measuring anything
    baseline(count, batch);
    const warm: StressTask = { count: 200_000, batch, len: 64, stream: 1 };
    await Promise.all([pool.run(warm), pool.run({ ...warm, mode: 'objects' })]);
    const base: number[] = [];
    for (let r = 0; r < runs; r++) base.push(baseline(count, batch));
    const b = median(base);
    process.stdout.write(`rings: ${runs} runs, ${count} descriptors per worker, batches of ${batch}\n`);
    process.stdout.write(`  ${'baseline: TS ring, TS consumer, one thread'.padEnd(44)} ${fmt(b).padStart(10)}   1.00x\n`);
    for (const c of configs) {
      const rates: number[] = [];
      for (let r = 0; r < runs; r++) {
        const before = region.counter(0, 'desc_consumed');
        const want = before + BigInt(c.workers * count);
        const task: StressTask = { count, batch, len: 64, stream: 1, mode: c.mode };
        const t0 = process.hrtime.bigint();
        (await Promise.all(Array.from({ length: c.workers }, () => pool.run(task)))) as StressResult[];
        while (region.counter(0, 'desc_consumed') < want) await new Promise((res) => setImmediate(res));
        rates.push((c.workers * count) / (Number(process.hrtime.bigint() - t0) / 1e9));
      }
      const m = median(rates);
      process.stdout.write(`  ${c.name.padEnd(44)} ${fmt(m).padStart(10)}   ${(m / b).toFixed(2)}x\n`);
    }
    const gaps = region.counter(0, 'desc_seq_gap');
    process.stdout.write(`  engine: desc_seq_gap ${gaps}, wakeups ${region.counter(0, 'wakeups')}, sleeps ${region.counter(0, 'sleeps')}\n`);
  } finally {
    await pool.destroy();
    await engine.stop();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (e: Error) => {
      process.stderr.write(`${e.stack ?? e.message}\n`);
      process.exit(1);
    },
  );
}
