// SPDX-License-Identifier: MIT
// Cross-language stress: two Piscina workers each claim a lane and write
// 2.5 million descriptors (per-lane seq numbers) through the TS rings to the
// C engine on the null backend. The engine must see every descriptor in
// order (desc_seq_gap = 0), consume and send exactly the total, and give
// every slot back (each lane's free ring is full again at the end).
import t from 'tap';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { Engine } from '../../src/engine/engine';
import { native } from '../../src/native';
import type { StressResult, StressTask } from '../fixtures/stress-worker';

const WORKERS = 2;
const PER_WORKER = 2_500_000;
const TOTAL = WORKERS * PER_WORKER;

if (!native().engineAvailable()) {
  t.plan(0, 'the addon was built without engine/src/engine.c: no engine to stress');
} else {
  t.test(`${WORKERS} workers x ${PER_WORKER} descriptors through the rings to the null backend`, async (t) => {
    const engine = new Engine({
      interface: 'lo',
      backend: 'null',
      region: { lanes: WORKERS + 1, slotsPerLane: 4096, submitEntries: 4096, slotSize: 512, destsPerLane: 4 },
    });
    const region = engine.region;
    await engine.start();
    t.teardown(async () => {
      if (engine.running) await engine.stop();
    });
    const pool = new Piscina({
      filename: join(__dirname, '..', 'fixtures', 'stress-worker.js'),
      workerData: { sab: region.sab },
      minThreads: WORKERS,
      maxThreads: WORKERS,
      // no tap loader hooks in the workers
      execArgv: [],
    });
    t.teardown(() => pool.destroy());

    const t0 = Date.now();
    const task: StressTask = { count: PER_WORKER, batch: 512, len: 64, stream: 1 };
    const results = (await Promise.all(Array.from({ length: WORKERS }, () => pool.run(task)))) as StressResult[];
    t.same(results.map((r) => r.lane).sort(), [1, 2], 'each task had its own lane');
    t.equal(results.reduce((s, r) => s + r.sent, 0), TOTAL);

    // the engine drains what the workers submitted last
    const deadline = Date.now() + 20_000;
    const freeFull = (): boolean => [1, 2].every((i) => region.lane(i).freeSlots() === region.lane(i).slotCount);
    while ((region.counter(0, 'tx_packets') < BigInt(TOTAL) || !freeFull()) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const ms = Date.now() - t0;
    const c = region.counters(0);
    t.equal(c.desc_seq_gap, 0n, 'no sequence gap: every descriptor seen once, in order');
    t.equal(c.desc_consumed, BigInt(TOTAL), 'desc_consumed = total');
    t.equal(c.tx_packets, BigInt(TOTAL), 'tx_packets = total');
    for (const k of ['drop_bad_slot', 'drop_bad_dest', 'drop_bad_len', 'drop_late', 'drop_tx_error'] as const) {
      t.equal(c[k], 0n, `${k} = 0`);
    }
    for (const i of [1, 2]) t.equal(region.lane(i).freeSlots(), 4096, `lane ${i}: every slot returned`);
    t.equal(region.streamCounters(1).packets, BigInt(TOTAL), 'stream counter');
    t.comment(`${TOTAL} descriptors in ${ms} ms (${Math.round(TOTAL / (ms / 1000))} desc/s end to end); workers: ${results.map((r) => `${Math.round(r.sent / (r.ms / 1000))}/s`).join(', ')}; engine wakeups ${c.wakeups}, sleeps ${c.sleeps}`);
    await engine.stop();
  });
}
