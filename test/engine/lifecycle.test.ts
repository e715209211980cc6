// SPDX-License-Identifier: MIT
// Engine lifecycle in child processes (teardown crashes only show at exit):
// start/stop/start/stop, and processes or workers that end WITHOUT stop()
// (the addon's env cleanup hook must stop the threads and release the
// memory). Each asserts exit code 0, no signal and an empty stderr.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../../src/engine/engine';
import { native } from '../../src/native';

const CHILD = join(__dirname, '..', 'fixtures', 'engine-child.js');
// the child runs plain node: without tap's process hooks (NODE_OPTIONS, which
// tap re-adds on spawn, hence env -u too), which
// write into the repository (not writable as nobody) and add exit handlers
const childEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('_TAPJS')));

function child(...args: string[]): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const r = spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, CHILD, ...args], { encoding: 'utf8', timeout: 30_000, env: childEnv });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

if (!native().engineAvailable()) {
  t.plan(0, 'the addon was built without engine/src/engine.c: no engine lifecycle to test');
} else {
  t.test('start/stop/start/stop then exit', async (t) => {
    const r = child('cycle');
    t.same({ status: r.status, signal: r.signal, stderr: r.stderr }, { status: 0, signal: null, stderr: '' });
    t.equal(r.stdout, 'ok 400 0\n', 'both runs consumed their descriptors, no seq gap across the restart');
  });

  for (const mode of ['no-stop', 'exit-no-stop', 'worker-no-stop', 'worker-terminate', 'exit-while-starting']) {
    t.test(`${mode}: the env cleanup hook stops the engine`, async (t) => {
      const r = child(mode);
      t.same({ status: r.status, signal: r.signal, stderr: r.stderr }, { status: 0, signal: null, stderr: '' });
      t.match(r.stdout, /started/);
    });
  }

  // bench/relay.ts counts the engine's CPU as that of these two threads
  t.test('the engine threads are named rf-rx and rf-tx while it runs, and are gone after stop', async (t) => {
    const names = (): string[] => readdirSync('/proc/self/task').map((tid) => {
      try {
        return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      } catch {
        return ''; // exited between the listing and the read
      }
    }).filter((n) => n.startsWith('rf-')).sort();
    t.same(names(), [], 'no engine thread before start');
    const e = new Engine({ interface: 'lo', backend: 'null', region: { lanes: 1, slotsPerLane: 16, submitEntries: 16 } });
    await e.start();
    t.same(names(), ['rf-rx', 'rf-tx'], 'one RX and one TX thread, by name');
    await e.stop();
    t.same(names(), [], 'both joined at stop');
  });

  t.test('state machine: double start/stop refused, start after stop works', async (t) => {
    const e = new Engine({ interface: 'lo', backend: 'null', region: { lanes: 1, slotsPerLane: 16, submitEntries: 16 } });
    t.equal(e.running, false);
    await t.rejects(e.stop(), { code: 'ERR_ENGINE_STATE', message: 'engine: stop() while stopped' });
    const starting = e.start();
    await t.rejects(e.start(), { code: 'ERR_ENGINE_STATE', message: 'engine: start() while starting (call stop() first)' });
    await starting;
    t.equal(e.running, true);
    t.equal(e.region.engineRunning, true, 'the engine published its state');
    await t.rejects(e.start(), { code: 'ERR_ENGINE_STATE', message: 'engine: start() while running (call stop() first)' });
    t.equal(native().ring(e.region.sab, 0), true, 'the doorbell of a running engine rings');
    await e.stop();
    t.equal(e.running, false);
    t.equal(e.region.engineRunning, false);
    t.equal(native().ring(e.region.sab, 0), false, 'a stopped engine has no doorbell to ring');
    await t.rejects(e.stop(), { code: 'ERR_ENGINE_STATE' });
    await e.start();
    t.equal(e.running, true);
    await e.stop();
  });
}
