// SPDX-License-Identifier: MIT
// A session worker that dies in the middle of an aggregate (an uncaught
// error, process.exit inside the worker) or hangs: the manager notices
// (the task fails, or the heartbeat stands still), rejects what was pending,
// reclaims the lane's slots once the engine gave back what it had, starts a
// worker on the lane and moves the sessions there; the other worker's
// sessions never stop. A session whose worker keeps dying fails with the
// reason. In the end no slot is lost. The engine runs the null backend
// (it counts what it would send), the faults come from a fixture worker
// (test/fixtures/faulty-session-worker.ts).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../src/engine/engine';
import type { ReflectorError } from '../../src/errors';
import type { Destination } from '../../src/region/lane';
import { SessionManager, type WorkerDeath } from '../../src/session/manager';
import { laneCensus } from '../../src/session/reclaim';
import { concat, stream } from '../media/synth';

const FIXTURE = join(__dirname, '..', 'fixtures', 'faulty-session-worker.js');
const DEST: Destination = { family: 4, srcAddr: '198.18.0.1', dstAddr: '198.18.0.2', srcPort: 5004, dstPort: 6000, srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02' };

let engine: Engine | null = null;
try {
  engine = new Engine({ interface: 'lo', backend: 'null', region: { lanes: 3, slotsPerLane: 256, submitEntries: 256, destsPerLane: 8, maxStreams: 16 } });
} catch (e) {
  t.plan(0, `the addon is not built: ${(e as Error).message}`);
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

if (engine) {
  const e = engine;
  t.test('crashes and hangs in the middle of an aggregate', { timeout: 120_000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'rf-faults-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const fault = join(dir, 'fault');
    process.env.RF_FAULT_FILE = fault;
    // 1 s of MPEG-TS at 200 datagrams/s, looped
    const clip = join(dir, 'clip.ts');
    writeFileSync(clip, concat(stream(1400, 7, 714_286)));
    await e.start();
    t.teardown(() => e.close());
    const m = await SessionManager.create({
      region: e.region, workers: 2, workerFile: FIXTURE, resolveDestination: async () => DEST,
      hangMs: 1000, restartLimit: 2, restartWindowMs: 60_000, requestTimeoutMs: 3000,
    });
    const died: WorkerDeath[] = [];
    const restarted: string[] = [];
    const failed: Array<[string, ReflectorError]> = [];
    m.on('workerdied', (d: WorkerDeath) => died.push(d));
    m.on('restarted', (name: string) => restarted.push(name));
    m.on('failed', (name: string, err: ReflectorError) => failed.push([name, err]));
    const lanes = new Map<string, number>();
    for (const n of ['a', 'b', 'c', 'd']) lanes.set(n, (await m.start(n, clip, '198.18.0.2:6000', 'mpegts', true)).lane);
    const byLane = (l: number): string[] => [...lanes].filter(([, x]) => x === l).map(([n]) => n);
    const [l1, l2] = [...new Set(lanes.values())].sort();
    t.same([byLane(l1).length, byLane(l2).length], [2, 2], 'two sessions per worker');
    const sent = (n: string): bigint => m.engineCounters(n).packets;
    await until('packets', () => [...lanes.keys()].every((n) => sent(n) > 20n));

    for (const [i, kind] of (['throw', 'exit', 'hang'] as const).entries()) {
      const lane = i === 1 ? l2 : l1;
      const victims = byLane(lane);
      const others = byLane(lane === l1 ? l2 : l1);
      const before = new Map(others.map((n) => [n, sent(n)]));
      const victimBefore = new Map(victims.map((n) => [n, sent(n)]));
      const r0 = restarted.length;
      writeFileSync(fault, `${kind} ${lane}`);
      await until(`${kind}: workerdied`, () => died.length === i + 1);
      const d = died[i];
      t.equal(d.lane, lane, `${kind}: the dead worker's lane`);
      t.match(d.error, { code: 'ERR_WORKER', message: kind === 'hang' ? /hung: no heartbeat for \d+ ms/ : /died/ }, `${kind}: why (${d.error.message})`);
      t.same([...d.sessions].sort(), victims, `${kind}: its sessions`);
      t.ok(d.reclaimed !== null && d.reclaimed > 0, `${kind}: the slots it held mid-aggregate were reclaimed (${d.reclaimed})`);
      await until(`${kind}: restarted`, () => restarted.length === r0 + victims.length);
      t.same(restarted.slice(r0).sort(), victims, `${kind}: its sessions restarted on the new worker`);
      t.same(m.names().sort(), ['a', 'b', 'c', 'd'], `${kind}: every session still runs`);
      await until(`${kind}: the victims send again`, () => victims.every((n) => sent(n) > victimBefore.get(n)! + 10n));
      t.ok(others.every((n) => sent(n) > before.get(n)!), `${kind}: the other worker's sessions kept sending meanwhile`);
      const stats = await m.stats();
      t.same(Object.keys(stats).sort(), ['a', 'b', 'c', 'd'], `${kind}: stats from both workers`);
    }
    t.equal(failed.length, 0, 'nothing failed so far');

    // lane l1's worker died twice already (throw, hang): the third time within the window, its sessions fail
    const victims = byLane(l1);
    writeFileSync(fault, `exit ${l1}`);
    await until('failed', () => failed.length === victims.length);
    t.same(failed.map(([n]) => n).sort(), victims, 'the sessions of a worker that keeps dying fail');
    t.match(failed[0][1], { code: 'ERR_WORKER', message: /died 3 times within 60000 ms, not restarted again/ }, 'with the reason');
    t.same(m.names().sort(), byLane(l2), 'and leave; the others run on');
    await until('the replacement', () => m.workerCount === 2);
    // a new session goes to the replacement worker too
    t.ok((await m.start('e', clip, '198.18.0.2:6000', 'mpegts', false)).lane > 0, 'a new session starts');

    for (const n of m.names()) await m.stop(n);
    await m.close();
    // every slot of both lanes is back on its free ring or known as held (the next manager takes those)
    await until('the engine gave everything back', () => [l1, l2].every((l) => laneCensus(e.region, l).settled), 5000);
    for (const l of [l1, l2]) {
      const c = laneCensus(e.region, l);
      t.equal(c.back + c.held, 256, `lane ${l}: ${c.back} slots free, ${c.held} held by the stopped worker, none in limbo`);
    }
    const next = await SessionManager.create({ region: e.region, workers: 2, resolveDestination: async () => DEST });
    await next.close();
    t.pass('a new manager takes the lanes over (and their held slots)');
  });
}
