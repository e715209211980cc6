// SPDX-License-Identifier: MIT
// The real server (real engine on the null backend, real relays manager,
// real session workers with faults injected) keeps telling the truth: a
// session that ends leaves `ctl list` and /metrics; a worker that exits in
// the middle of an aggregate is replaced and its sessions restart while
// the others keep sending; a session whose file was truncated while it
// played goes on from memory, and fails with the reason when it has to
// read the file again; bad control input gets a clear error and the
// server keeps running; when every session stopped, no pool slot is
// missing. The engine runs on lo inside a test namespace.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from '../../src/control/types';
import { createLogger } from '../../src/log';
import type { Engine } from '../../src/engine/engine';
import { realDeps } from '../../src/server/adapters';
import { laneCensus } from '../../src/session/reclaim';
import type { StampedEvent } from '../../src/server/events';
import { CommandHandler } from '../../src/server/handler';
import { Server } from '../../src/server/server';
import { concat, stream } from '../media/synth';
import { Testbed } from '../helpers/testbed';
import { metricValue, serverUnavailable } from './fixtures/harness';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'faulty-session-worker.js');
const why = serverUnavailable({ netns: true });

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

if (why) {
  process.stderr.write(`# SKIP server faults: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('the server under faults', { timeout: 120_000 }, async (t) => {
    const tb = await Testbed.create(t, { hosts: ['a'] });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-sfault-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const fault = path.join(dir, 'fault');
    process.env.RF_FAULT_FILE = fault;
    const media = path.join(dir, 'media');
    fs.mkdirSync(media);
    const clip = concat(stream(1400, 7, 714_286)); // 1 s, 200 datagrams/s
    for (const n of ['a', 'b', 'c', 'd']) fs.writeFileSync(path.join(media, `${n}.ts`), clip);
    fs.writeFileSync(path.join(media, 'short.ts'), concat(stream(70, 7, 714_286))); // 50 ms, no loop
    const file = path.join(dir, 'reflector.yaml');
    const session = (n: string, port: number, loop: boolean): string => `  - name: ${n}\n    file: media/${n}.ts\n    to: 127.0.0.1:${port}\n    loop: ${loop}\n`;
    fs.writeFileSync(file, `engine:\n  interface: lo\n  netns: ${tb.ns('a')}\n  backend: "null"\n  workers: 2\n  drain_ms: 0\nmetrics:\n  listen: 127.0.0.1:0\ncontrol:\n  socket: null\nrelays:\n  - name: cam\n    listen: 127.0.0.1:5000\n    sources: [127.0.0.1/32]\n    subscribers: [127.0.0.1:6000]\nsessions:\n${session('a', 7000, true)}${session('b', 7001, true)}${session('c', 7002, true)}${session('d', 7003, true)}${session('short', 7004, false)}`);
    const logs: Array<Record<string, unknown>> = [];
    let engine: Engine | null = null;
    const server = new Server({
      configFile: file, deps: (c, l) => realDeps(c, l, { sessionWorkerFile: FIXTURE, onEngine: (e) => (engine = e) }),
      log: createLogger({ level: 'info', write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) }), watch: false, processMetrics: false,
    });
    const events: StampedEvent[] = [];
    server.events.subscribe((e) => events.push(e));
    await server.start();
    t.teardown(() => server.stop());
    const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${server.metricsAddress!.port}/metrics`)).text();
    const packets = async (n: string): Promise<number> => metricValue(await metrics(), `reflector_session_packets_total{session="${n}"}`) ?? -1;
    const handler = new CommandHandler({ state: server.running!, mediaRoot: () => server.currentConfig.mediaRoot, stats: async () => ({ engineRunning: true, ready: true, configReloads: 0n, configReloadFailures: 0n, counters: [] }) });
    const list = (): string[] => server.running!.sessionInfos().map((s) => s.name).sort();

    await t.test('a session that ends leaves ctl list and /metrics', async (t) => {
      await until('short ended', () => events.some((e) => e.type === 'session_ended' && e.session === 'short'));
      t.same(list(), ['a', 'b', 'c', 'd'], 'ctl list');
      const m = await metrics();
      t.equal(metricValue(m, 'reflector_sessions'), 4, 'reflector_sessions');
      t.equal(metricValue(m, 'reflector_session_packets_total{session="short"}'), undefined, 'no series for it any more');
      t.ok(logs.some((l) => l.msg === 'session ended' && l.session === 'short'), 'logged');
    });

    await t.test('a worker that exits mid-aggregate: replaced, its sessions restart, the others keep sending', async (t) => {
      await until('packets', async () => (await packets('a')) > 20);
      const logsBefore = logs.length;
      // lane 1's worker runs two of the four
      fs.writeFileSync(fault, 'exit 1');
      await until('worker_died', () => events.some((e) => e.type === 'worker_died'));
      const died = events.find((e) => e.type === 'worker_died') as Extract<StampedEvent, { type: 'worker_died' }>;
      t.equal(died.lane, 1, 'lane 1');
      t.match(died.reason, /worker exited with code: 3/, 'why');
      t.equal(died.sessions.length, 2, 'it ran two sessions');
      const others = ['a', 'b', 'c', 'd'].filter((n) => !died.sessions.includes(n));
      const before = await Promise.all(others.map(packets));
      await until('restarted', () => events.filter((e) => e.type === 'session_restarted').length === 2);
      t.same(list(), ['a', 'b', 'c', 'd'], 'ctl list: all four still run');
      t.equal(metricValue(await metrics(), 'reflector_sessions'), 4, 'reflector_sessions: 4');
      const victimsBefore = await Promise.all(died.sessions.map(packets));
      await new Promise((r) => setTimeout(r, 400));
      const after = await Promise.all(others.map(packets));
      t.ok(after.every((p, i) => p > before[i]), `the other worker's sessions kept sending (${before} -> ${after})`);
      const victimsAfter = await Promise.all(died.sessions.map(packets));
      t.ok(victimsAfter.every((p, i) => p > victimsBefore[i]), 'the restarted ones send again, their counters going on');
      t.ok(logs.slice(logsBefore).some((l) => l.msg === 'session worker died' && l.level === 'error'), 'logged as an error');
    });

    await t.test('a file truncated while it plays: the session goes on, then fails with the reason when it reads it again', async (t) => {
      const victim = (events.find((e) => e.type === 'worker_died') as Extract<StampedEvent, { type: 'worker_died' }>).sessions[0];
      fs.truncateSync(path.join(media, `${victim}.ts`), 0);
      const p0 = await packets(victim);
      await new Promise((r) => setTimeout(r, 300));
      t.ok((await packets(victim)) > p0, 'still playing from memory');
      // its worker dies again: the restart reads the file
      fs.writeFileSync(fault, 'exit 1');
      await until('session_failed', () => events.some((e) => e.type === 'session_failed' && e.session === victim));
      const f = events.find((e) => e.type === 'session_failed') as Extract<StampedEvent, { type: 'session_failed' }>;
      t.match(f, { code: 'ERR_MEDIA', reason: /the file is empty/ }, `failed with the reason: ${f.reason}`);
      t.notOk(list().includes(victim), 'it left ctl list');
      t.equal(metricValue(await metrics(), 'reflector_sessions'), 3, 'reflector_sessions: 3');
      t.ok(logs.some((l) => l.msg === 'session failed' && l.session === victim && /empty/.test(String(l.reason))), 'logged with the reason');
    });

    await t.test('bad control input: a clear error, the server keeps running', async (t) => {
      const bad: Command[] = [
        { type: 'addRelay', name: 'x', listen: '[fe80::1%lo]:5000', sources: ['127.0.0.1/32'], subscribers: [] },
        { type: 'addRelay', name: 'x'.repeat(40), listen: '127.0.0.1:5001', sources: ['127.0.0.1/32'], subscribers: [] },
        { type: 'addRelay', name: 'transit', listen: '198.51.100.7:5001', sources: ['127.0.0.1/32'], subscribers: [] },
        { type: 'startSession', name: 'x', file: '/etc/passwd', to: '127.0.0.1:7100', format: 'mpegts', loop: false },
        { type: 'subscribe', relay: 'cam', subscriber: '127.0.0.1:99999' },
      ];
      for (const c of bad) await t.rejects(handler.handle(c), { code: /ERR_/ }, `${c.type} refused`);
      await t.rejects(handler.handle(bad[2]), { message: /198\.51\.100\.7 is not an address of namespace .* \(a relay takes only traffic addressed to the engine's host/ }, 'a listen address that is not local');
      t.equal((await fetch(`http://127.0.0.1:${server.metricsAddress!.port}/readyz`)).status, 200, 'still ready');
      t.same(await handler.handle({ type: 'subscribe', relay: 'cam', subscriber: '127.0.0.1:6001' }), { type: 'ok' }, 'and still takes good requests');
    });

    await t.test('every session stopped: no pool slot is missing', async (t) => {
      for (const n of list()) await handler.handle({ type: 'stopSession', name: n });
      t.same(list(), [], 'nothing runs');
      const region = engine!.region;
      const lanes = [1, 2]; // the two session workers'
      // nothing in flight any more: every slot of a lane is on its free ring or
      // held by the lane's live worker (a replacement keeps the slots it was
      // handed until it sends them), none lost, none counted twice
      await until('the lanes settle', () => lanes.every((l) => laneCensus(region, l).settled), 5000).catch(() => undefined);
      const census = lanes.map((l) => laneCensus(region, l));
      t.same(census.map((c) => c.settled), [true, true], `every slot on a free ring or held by the lane's worker (${JSON.stringify(census.map(({ held, back }) => ({ held, back })))})`);
      const died = events.filter((e) => e.type === 'worker_died') as Array<Extract<StampedEvent, { type: 'worker_died' }>>;
      t.ok(died.length >= 2 && died.every((d) => d.reclaimed !== null), `each dead worker's slots were reclaimed for its replacement (${died.map((d) => `lane ${d.lane}: ${d.reclaimed}`).join('; ')})`);
      const held = census.reduce((n, c) => n + c.held, 0);
      t.equal(metricValue(await metrics(), 'reflector_pool_used_slots'), held, `reflector_pool_used_slots counts exactly the ${held} slots workers hold`);
    });
  });
}
