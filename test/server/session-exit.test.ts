// SPDX-License-Identifier: MIT
// Sessions that end or fail on their own leave the server's state at once,
// with an event and a log line (a failed one says why): `ctl list` and
// /metrics tell the truth, a stop afterwards says "not found", and the next
// reload starts a config session again while the file still names it (a
// runtime one stays gone).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../../src/log';
import type { StampedEvent } from '../../src/server/events';
import { Server } from '../../src/server/server';
import { FakeDeps } from './fixtures/fake-deps';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-exit-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
fs.writeFileSync(path.join(dir, 'a.ts'), 'x');
const file = path.join(dir, 'reflector.yaml');
fs.writeFileSync(file, `metrics:\n  listen: 127.0.0.1:0\ncontrol:\n  socket: null\nengine:\n  drain_ms: 0\nsessions:\n  - name: s1\n    file: a.ts\n    to: 127.0.0.1:7000\n  - name: s2\n    file: a.ts\n    to: 127.0.0.1:7001\n`);
const logs: Array<Record<string, unknown>> = [];
const log = createLogger({ write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) });
const deps = new FakeDeps();
const server = new Server({ configFile: file, deps: async () => deps, log, watch: false, processMetrics: false });
const events: StampedEvent[] = [];
server.events.subscribe((e) => events.push(e));

const sessionsGauge = async (): Promise<number> => {
  const body = await (await fetch(`http://127.0.0.1:${server.metricsAddress!.port}/metrics`)).text();
  return Number(/^reflector_sessions (\d+)/m.exec(body)?.[1]);
};
const names = (): string[] => [...server.running!.sessions.keys()].sort();

t.before(() => server.start());
t.teardown(() => server.stop());

t.test('an ended session leaves the state, with an event and a log line', async (t) => {
  t.same(names(), ['s1', 's2']);
  t.equal(await sessionsGauge(), 2);
  deps.emit({ type: 'session_ended', session: 's1' });
  t.same(names(), ['s2'], 'ctl list no longer shows it');
  t.equal(await sessionsGauge(), 1, 'reflector_sessions counts it no more');
  t.match(events.at(-1), { type: 'session_ended', session: 's1' });
  t.match(logs.at(-1), { level: 'info', msg: 'session ended', session: 's1' });
  await t.rejects(server.running!.serial(() => server.running!.stopSession('s1')), { controlCode: 'ERR_NOT_FOUND', message: /no session named "s1"/ }, 'a stop afterwards: not running');
});

t.test('a failed session says why', async (t) => {
  deps.emit({ type: 'session_failed', session: 's2', code: 'ERR_MEDIA', reason: 'a.ts: byte offset 0: the file is empty' });
  t.same(names(), []);
  t.match(events.at(-1), { type: 'session_failed', session: 's2', code: 'ERR_MEDIA', reason: /the file is empty/ });
  t.match(logs.at(-1), { level: 'warn', msg: 'session failed', session: 's2', code: 'ERR_MEDIA', reason: /the file is empty/ });
  t.equal(await sessionsGauge(), 0);
});

t.test('an event for a session that is not ours changes nothing', async (t) => {
  const n = events.length;
  deps.emit({ type: 'session_ended', session: 'nobody' });
  t.equal(events.length, n, 'no event');
  t.same(names(), []);
});

t.test('the next reload starts them again while the file names them; a runtime one stays gone', async (t) => {
  deps.take();
  t.equal(await server.reload('SIGHUP'), 'applied');
  t.same(deps.take(), ['startSession s1', 'startSession s2'], 'both started again');
  t.same(names(), ['s1', 's2']);
  t.match(events.at(-1), { type: 'reload_applied', reason: 'SIGHUP', errors: [] });
  await server.running!.serial(() => server.running!.startSession({ name: 'rt', file: path.join(dir, 'a.ts'), to: { family: 4, address: '127.0.0.1', port: 7002 }, format: 'mpegts', loop: false }, 'runtime'));
  deps.emit({ type: 'session_ended', session: 'rt' });
  deps.take();
  // the unchanged file is re-applied too (its text is the same as last time)
  t.equal(await server.reload('file changed'), 'applied', 'a changed file event re-applies after a session left');
  t.same(deps.take(), [], 'nothing to start: s1 and s2 run, rt was the API\'s');
  t.same(names(), ['s1', 's2']);
});
