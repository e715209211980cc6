// SPDX-License-Identifier: MIT
// The server wiring in-process with recording stand-ins for the engine,
// relays and sessions: a reload sends only the difference, an invalid file
// keeps the running config and counts the failure, and control API changes
// and reloads coexist by the documented rule (docs/server.md).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Server } from '../../src/server/server';
import { ControlClient } from '../../src/control/client';
import { createLogger } from '../../src/log';
import { FakeDeps } from './fixtures/fake-deps';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-srv-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
fs.writeFileSync(path.join(dir, 'a.ts'), 'x');
const file = path.join(dir, 'reflector.yaml');
const socket = path.join(dir, 'ctl.sock');

const head = `metrics:
  listen: 127.0.0.1:0
control:
  socket: ctl.sock
engine:
  drain_ms: 100
`;
const relay = (name: string, port: number, subs: number[]): string =>
  `  - name: ${name}\n    listen: 127.0.0.1:${port}\n    sources: [127.0.0.1/32]\n    subscribers: [${subs.map((p) => `127.0.0.1:${p}`).join(', ')}]\n`;
const session = (name: string, port: number): string => `  - name: ${name}\n    file: a.ts\n    to: 127.0.0.1:${port}\n`;

const logs: Array<Record<string, unknown>> = [];
const log = createLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) });

fs.writeFileSync(file, head + 'relays:\n' + relay('a', 5000, [6000, 6001]) + relay('b', 5001, [6100]) + 'sessions:\n' + session('s1', 7000));
const deps = new FakeDeps();
const server = new Server({ configFile: file, deps: async () => deps, log, watch: false, processMetrics: false, version: 'test' });

async function scrape(p: string): Promise<{ status: number; body: string }> {
  const a = server.metricsAddress!;
  const r = await fetch(`http://127.0.0.1:${a.port}${p}`);
  return { status: r.status, body: await r.text() };
}

const metric = (body: string, line: string): number | undefined => {
  const m = body.split('\n').find((l) => l.startsWith(line + ' '));
  return m === undefined ? undefined : Number(m.slice(line.length + 1));
};

t.before(async () => {
  await server.start();
});
t.teardown(() => server.stop());

t.test('start applies the whole config after the engine starts', async (t) => {
  t.same(deps.take(), ['engine.start', 'addRelay a 127.0.0.1:6000,127.0.0.1:6001', 'addRelay b 127.0.0.1:6100', 'startSession s1']);
  t.equal((await scrape('/readyz')).status, 200);
  t.equal((await scrape('/healthz')).status, 200);
  t.ok(fs.existsSync(socket), 'control socket relative to the config folder');
});

t.test('reload sends only the difference', async (t) => {
  fs.writeFileSync(file, head + 'relays:\n' + relay('a', 5000, [6000, 6002]) + relay('c', 5002, [6200]) + 'sessions:\n' + session('s1', 7000) + session('s2', 7001));
  t.equal(await server.reload('SIGHUP'), 'applied');
  t.same(deps.take(), [
    'removeRelay b',
    'removeOutput a 127.0.0.1:6001',
    'addOutput a 127.0.0.1:6002',
    'addRelay c 127.0.0.1:6200',
    'startSession s2',
  ], 'relay a output 6000 and session s1 untouched');
  const m = await scrape('/metrics');
  t.equal(metric(m.body, 'reflector_config_reloads_total'), 1);
  t.equal(metric(m.body, 'reflector_config_reload_failures_total'), 0);
});

t.test('an unchanged file applies nothing', async (t) => {
  t.equal(await server.reload('SIGHUP'), 'applied');
  t.same(deps.take(), []);
});

t.test('an invalid file keeps the running config, logs the errors and counts the failure', async (t) => {
  const good = fs.readFileSync(file, 'utf8');
  fs.writeFileSync(file, good.replace('127.0.0.1:6002', '127.0.0.1:99999'));
  logs.length = 0;
  t.equal(await server.reload('SIGHUP'), 'invalid');
  t.same(deps.take(), [], 'nothing sent to the engine');
  const line = logs.find((l) => l.msg === 'config reload refused, keeping the running config');
  t.ok(line, 'logged');
  t.match((line!.problems as string[])[0], /reflector\.yaml:\d+:\d+: relays\[0\]\.subscribers\[1\]: port 99999/);
  const m = await scrape('/metrics');
  t.equal(metric(m.body, 'reflector_config_reload_failures_total'), 1);
  t.equal((await scrape('/readyz')).status, 200, 'still ready');
  fs.writeFileSync(file, good);
});

t.test('control API and reloads coexist: runtime objects survive reloads unless the file names them', async (t) => {
  const c = await ControlClient.connect({ socket });
  await c.request({ type: 'subscribe', relay: 'a', subscriber: '127.0.0.1:6999' });
  await c.request({ type: 'addRelay', name: 'r', listen: '127.0.0.1:5009', sources: ['127.0.0.1/32'], subscribers: ['127.0.0.1:6900'] });
  await c.request({ type: 'startSession', name: 'rs', file: path.join(dir, 'a.ts'), to: '127.0.0.1:7009', format: 'mpegts', loop: false });
  await c.request({ type: 'unsubscribe', relay: 'a', subscriber: '127.0.0.1:6000' });
  deps.take();
  let l = await c.list();
  t.match(l.relays.find((r) => r.name === 'r'), { origin: 'runtime', subscribers: ['127.0.0.1:6900'] });
  t.match(l.sessions.find((s) => s.name === 'rs'), { origin: 'runtime' });

  // the file is unchanged: the config subscriber removed by the API comes back; runtime objects stay
  t.equal(await server.reload('SIGHUP'), 'applied');
  t.same(deps.take(), ['addOutput a 127.0.0.1:6000']);
  l = await c.list();
  t.same(l.relays.find((r) => r.name === 'a')!.subscribers.sort(), ['127.0.0.1:6000', '127.0.0.1:6002', '127.0.0.1:6999']);
  t.ok(l.relays.find((r) => r.name === 'r'), 'runtime relay survived');
  t.ok(l.sessions.find((s) => s.name === 'rs'), 'runtime session survived');

  // the file now names relay r (other subscribers) and drops relay a: r is taken over, a goes with its runtime subscriber
  const text = fs.readFileSync(file, 'utf8').replace(relay('a', 5000, [6000, 6002]), relay('r', 5009, [6901]));
  fs.writeFileSync(file, text);
  t.equal(await server.reload('SIGHUP'), 'applied');
  t.same(deps.take().sort(), ['addOutput r 127.0.0.1:6901', 'removeRelay a'].sort(), 'runtime subscriber 6900 of r kept');
  l = await c.list();
  t.match(l.relays.find((r) => r.name === 'r'), { origin: 'config' });
  t.same(l.relays.find((r) => r.name === 'r')!.subscribers.sort(), ['127.0.0.1:6900', '127.0.0.1:6901']);
  t.notOk(l.relays.find((r) => r.name === 'a'));
  c.close();
});

t.test('API errors are typed and name the object', async (t) => {
  const c = await ControlClient.connect({ socket });
  await t.rejects(c.request({ type: 'subscribe', relay: 'nope', subscriber: '127.0.0.1:1' }), { controlCode: 'ERR_NOT_FOUND', message: /no relay named "nope" \(have: / });
  await t.rejects(c.request({ type: 'subscribe', relay: 'r', subscriber: '127.0.0.1:6900' }), { controlCode: 'ERR_EXISTS', message: /127\.0\.0\.1:6900 already subscribes to relay "r"/ });
  await t.rejects(c.request({ type: 'subscribe', relay: 'r', subscriber: 'nohost:1' }), { controlCode: 'ERR_INVALID_ARG', message: /"nohost" in "nohost:1" is not an IPv4 or IPv6 address/ });
  await t.rejects(c.request({ type: 'addRelay', name: 'x', listen: '127.0.0.1:5009', sources: ['127.0.0.1/32'], subscribers: [] }), { controlCode: 'ERR_EXISTS', message: /already the listen address of relay "r"/ });
  await t.rejects(c.request({ type: 'addRelay', name: 'x', listen: '127.0.0.1:5077', sources: [], subscribers: [] }), { controlCode: 'ERR_INVALID_ARG', message: /at least one source prefix/ });
  await t.rejects(c.request({ type: 'addRelay', name: 'x', listen: '127.0.0.1:5077', sources: ['127.0.0.1/32'], subscribers: ['127.0.0.1:5077'] }), { controlCode: 'ERR_INVALID_ARG', message: /a loop/ });
  await t.rejects(c.request({ type: 'startSession', name: 'q', file: 'missing.ts', to: '127.0.0.1:1', format: '', loop: false }), { controlCode: 'ERR_INVALID_ARG', message: /missing\.ts" does not exist/ });
  await t.rejects(c.request({ type: 'startSession', name: 'q', file: 'a.ts', to: '127.0.0.1:1', format: 'avi', loop: false }), { controlCode: 'ERR_INVALID_ARG', message: /"avi" is not one of mpegts \| rtp \| pcap/ });
  await t.rejects(c.request({ type: 'stopSession', name: 'zz' }), { controlCode: 'ERR_NOT_FOUND', message: /no session named "zz"/ });
  deps.failNext = 'addOutput';
  await t.rejects(c.request({ type: 'subscribe', relay: 'r', subscriber: '127.0.0.1:6950' }), { controlCode: 'ERR_INTERNAL', message: /injected failure/ });
  t.notOk((await c.list()).relays.find((r) => r.name === 'r')!.subscribers.includes('127.0.0.1:6950'), 'a refused change is not recorded');
  c.close();
});

t.test('metrics and stats read the counters at scrape time', async (t) => {
  deps.outputPackets.set('r 127.0.0.1:6900', 42n);
  const m = await scrape('/metrics');
  t.equal(metric(m.body, 'reflector_relay_subscriber_packets_total{relay="r",subscriber="127.0.0.1:6900"}'), 42);
  t.equal(metric(m.body, 'reflector_relay_subscriber_bytes_total{relay="r",subscriber="127.0.0.1:6900"}'), 4200);
  t.equal(metric(m.body, 'reflector_interface_tx_packets_total{interface="lo"}'), 100 + 200);
  t.equal(metric(m.body, 'reflector_interface_drops_total{interface="lo",reason="not_allowed"}'), 105 + 205);
  t.equal(metric(m.body, 'reflector_session_packets_total{session="s1"}'), 7);
  t.equal(metric(m.body, 'reflector_lateness_seconds_bucket{le="0.000008"}'), 5);
  t.equal(metric(m.body, 'reflector_pool_used_slots'), 3);
  t.equal(metric(m.body, 'reflector_relay_not_allowed_packets_total{relay="r"}'), 1);
  deps.outputPackets.set('r 127.0.0.1:6900', 43n);
  t.equal(metric((await scrape('/metrics')).body, 'reflector_relay_subscriber_packets_total{relay="r",subscriber="127.0.0.1:6900"}'), 43, 'new value at the next scrape');
  const c = await ControlClient.connect({ socket });
  const s = await c.stats();
  t.equal(s.engineRunning, true);
  t.equal(s.configReloads, 4n, 'applied reloads so far');
  t.match(s.counters.find((x) => x.name === 'reflector_relay_subscriber_packets_total' && x.labels.subscriber === '127.0.0.1:6900'), { value: 43n });
  c.close();
});

t.test('restart-only keys are reported, not applied; log.level applies live', async (t) => {
  deps.take();
  const good = fs.readFileSync(file, 'utf8');
  fs.writeFileSync(file, good.replace('engine:\n', 'log:\n  level: warn\nengine:\n  workers: 4\n'));
  logs.length = 0;
  t.equal(await server.reload('SIGHUP'), 'applied');
  t.same(deps.take(), [], 'nothing sent to the engine');
  const warn = logs.find((l) => l.msg === 'config keys changed that take effect only after a restart');
  t.same(warn?.keys, ['engine']);
  t.notOk(logs.some((l) => l.msg === 'config reloaded'), 'info lines are off at level warn');
  t.equal(server.currentConfig.engine.workers, 2, 'the running engine keeps its workers');
  fs.writeFileSync(file, good);
  t.equal(await server.reload('SIGHUP'), 'applied');
  logs.length = 0;
  t.equal(await server.reload('SIGHUP'), 'applied');
  t.ok(logs.some((l) => l.msg === 'config reloaded'), 'level back to info');
});

t.test('stop: control closed, sessions stopped, drain, relays then engine stopped', async (t) => {
  deps.take();
  const t0 = Date.now();
  await server.stop();
  const calls = deps.take();
  t.same(calls.filter((c) => c.startsWith('stopSession')).sort(), ['stopSession rs', 'stopSession s1', 'stopSession s2']);
  t.same(calls.slice(-3), ['relays.stop', 'engine.stop', 'sessions.close']);
  t.ok(Date.now() - t0 >= 100, 'waited the drain window');
  t.notOk(fs.existsSync(socket), 'socket removed');
  t.equal(server.ready, false);
});
