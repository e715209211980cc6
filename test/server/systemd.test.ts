// SPDX-License-Identifier: MIT
// The notify protocol on a real NOTIFY_SOCKET (a datagram socket a Python
// process binds, as systemd does): READY=1 once the relay and the session
// run, RELOADING=1 with MONOTONIC_USEC then READY=1 around a SIGHUP reload,
// WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 at SIGTERM, in that order.
// An abstract socket (@name) works too; a socket nobody listens on is one
// warning, not a stop. `systemd-analyze verify` accepts the shipped unit.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { Testbed } from '../helpers/testbed';
import { Peer, ServerProcess, scrape, serverUnavailable, sleep, ROOT } from './fixtures/harness';
import { native } from '../../src/native';
import { systemdNotifier } from '../../src/server/systemd';
import { silentLogger, createLogger } from '../../src/log';

const PY = '/usr/bin/python3';
const UNIT = path.join(ROOT, 'deploy', 'systemd', 'reflector.service');

interface Datagram {
  fields: Record<string, string>;
  raw: string;
  /** CLOCK_MONOTONIC us when the test read it */
  at: bigint;
}

/** A service manager's socket: python3 binds it and prints each datagram. */
async function managerSocket(t: { teardown(fn: () => void): void }, where: string): Promise<{ got: Datagram[]; next: (pred: (d: Datagram) => boolean, ms?: number) => Promise<Datagram> }> {
  const child = spawn(PY, [path.join(ROOT, 'test', 'fixtures', 'notify-socket.py'), where], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => child.stdin.end());
  const got: Datagram[] = [];
  const waiters: Array<() => void> = [];
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  createInterface({ input: child.stdout }).on('line', (l) => {
    const o = JSON.parse(l) as { ready?: boolean; fields: Record<string, string>; raw: string };
    if (o.ready) return ready();
    got.push({ fields: o.fields, raw: o.raw, at: process.hrtime.bigint() / 1000n });
    waiters.splice(0).forEach((w) => w());
  });
  await isReady;
  const next = async (pred: (d: Datagram) => boolean, ms = 30000): Promise<Datagram> => {
    const end = Date.now() + ms;
    for (let seen = 0; ; ) {
      const d = got.slice(seen).find(pred);
      if (d) return d;
      seen = got.length;
      if (Date.now() > end) throw new Error(`no matching datagram in ${ms} ms; got: ${JSON.stringify(got.map((x) => x.raw))}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 200);
      });
    }
  };
  return { got, next };
}

t.test('addon sdNotify: path and abstract sockets; failures are returned, not thrown', { skip: fs.existsSync(PY) ? false : `${PY} is not installed` }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-notify-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'notify.sock');
  const m = await managerSocket(t, sock);
  t.equal(native().sdNotify(sock, 'READY=1\nSTATUS=hello'), '');
  t.same((await m.next(() => true)).fields, { READY: '1', STATUS: 'hello' });
  const abstract = `@reflector-test-${process.pid}`;
  const a = await managerSocket(t, abstract);
  t.equal(native().sdNotify(abstract, 'WATCHDOG=1'), '');
  t.same((await a.next(() => true)).fields, { WATCHDOG: '1' });
  t.match(native().sdNotify(path.join(dir, 'nobody.sock'), 'READY=1'), /^sendto .*nobody\.sock: No such file or directory$/);
  t.match(native().sdNotify('relative.sock', 'READY=1'), /neither an absolute path nor @abstract/);
  t.match(native().sdNotify('/' + 'x'.repeat(200), 'READY=1'), /longer than 107 bytes/);
});

t.test('notifier: nothing without NOTIFY_SOCKET; a dead socket is one warning; the variables are consumed', async (t) => {
  t.equal(systemdNotifier({ env: {}, log: () => silentLogger, healthy: () => true }), null);
  const lines: string[] = [];
  const log = createLogger({ write: (l) => void lines.push(l) });
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/nonexistent/notify.sock', WATCHDOG_USEC: '1000000', WATCHDOG_PID: String(process.pid + 1) };
  const sent: string[] = [];
  const n = systemdNotifier({ env, log: () => log, healthy: () => true, send: (_s, m) => (sent.push(m), 'sendto: No such file or directory') })!;
  t.same(env, {}, 'NOTIFY_SOCKET and WATCHDOG_* removed (children must not notify for this server)');
  n.ready('a');
  n.ready('b');
  n.stopping();
  n.close();
  t.equal(sent.length, 3);
  t.equal(lines.filter((l) => /cannot notify the service manager/.test(l)).length, 1, 'warned once');
  t.notOk(lines.some((l) => /watchdog on/.test(l)), 'WATCHDOG_PID of another process: no watchdog');
});

t.test('watchdog: pings while the engine runs, stops when it died under a running server', { skip: fs.existsSync(PY) ? false : `${PY} is not installed` }, async (t) => {
  const { Server } = await import('../../src/server/server');
  const { FakeDeps } = await import('./fixtures/fake-deps');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-wd-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'notify.sock');
  const m = await managerSocket(t, sock);
  fs.writeFileSync(path.join(dir, 'r.yaml'), 'metrics:\n  listen: null\ncontrol:\n  socket: null\n');
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '200000' };
  const deps = new FakeDeps();
  const server = new Server({
    configFile: path.join(dir, 'r.yaml'), deps: async () => deps, log: silentLogger, watch: false, processMetrics: false,
    // the default notifier and its health rule, reading this env instead of process.env
    notifyEnv: env,
  });
  await server.start();
  t.teardown(() => server.stop());
  await m.next((d) => d.fields.READY === '1');
  await sleep(700);
  const pings = (): number => m.got.filter((d) => d.fields.WATCHDOG === '1').length;
  const before = pings();
  t.ok(before >= 3, `WATCHDOG=1 every 100 ms while the engine runs (${before} in 0.7 s)`);
  deps.running = false;
  await sleep(150);
  const at = pings();
  await sleep(600);
  t.equal(pings(), at, 'no WATCHDOG=1 once the engine is gone: the manager restarts the service');
});

t.test('systemd-analyze verify accepts deploy/systemd/reflector.service', async (t) => {
  const sa = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => fs.existsSync(p));
  if (!sa) {
    t.plan(0, 'systemd-analyze is not installed (Debian package systemd)');
    return;
  }
  // verify wants ExecStart's binary to exist: the unit's path, as the package installs it
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-unit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const unit = fs.readFileSync(UNIT, 'utf8');
  const exec = /^ExecStart=(\S+)/m.exec(unit)?.[1];
  t.ok(exec, 'ExecStart is set');
  const copy = path.join(dir, 'reflector.service');
  const fake = path.join(dir, 'reflector');
  fs.writeFileSync(fake, '#!/bin/sh\n');
  fs.chmodSync(fake, 0o755);
  fs.writeFileSync(copy, exec && !fs.existsSync(exec) ? unit.replaceAll(exec, fake) : unit);
  const r = spawnSync(sa, ['verify', copy], { encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_LEVEL: 'warning' } });
  // lines about other units on this host (its own unit files) are not ours to judge
  const ours = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('reflector.service'));
  t.equal(r.status, 0, `systemd-analyze verify: ${r.stdout}${r.stderr}`);
  t.same(ours, [], 'no warning about the unit');
  for (const want of ['Type=notify', 'NotifyAccess=main', 'ProtectSystem=strict', 'ProtectHome=yes', 'NoNewPrivileges=yes', 'RuntimeDirectory=reflector', 'WatchdogSec=']) {
    t.match(unit, new RegExp(`^${want}`, 'm'), want);
  }
  const caps = /^AmbientCapabilities=(.*)$/m.exec(unit)?.[1].split(/\s+/).sort();
  t.same(caps, /^CapabilityBoundingSet=(.*)$/m.exec(unit)?.[1].split(/\s+/).sort(), 'the bounding set is the ambient set');
});

const why = serverUnavailable({ netns: true }) ?? (fs.existsSync(PY) ? null : `${PY} is not installed`);
if (why) {
  process.stderr.write(`# SKIP notify protocol with a real server: ${why}\n`);
  t.test('notify protocol with a real server', { skip: why }, async () => undefined);
} else {
  t.test('notify protocol with a real server: READY, RELOADING/READY, WATCHDOG, STOPPING', { timeout: 90000 }, async (t) => {
    const tb = await Testbed.create(t, { hosts: ['client', 'relay'], links: [['client', 'relay']] });
    const client = tb.addr('client');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-sd-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'reflector.yaml');
    fs.writeFileSync(file, `engine:
  interface: ${tb.iface('relay').name}
  netns: ${tb.ns('relay')}
  workers: 1
metrics:
  listen: 127.0.0.1:0
control:
  socket: ctl.sock
media_root: ${ROOT}
relays:
  - name: cam
    listen: ${tb.addr('relay')}:5000
    sources: [${client}/32]
    subscribers: [${client}:6000]
sessions:
  - name: movie
    file: ${path.join(ROOT, 'media/sample.ts')}
    to: ${client}:7000
    loop: true
`);
    const peer = new Peer(tb.spawn('client', [process.execPath, path.join(__dirname, 'fixtures/udp-peer.js'), client], { stdio: ['pipe', 'pipe', 'pipe'] }));
    t.teardown(() => peer.close());
    await peer.ready;
    await peer.call('bind', { ports: [6000, 7000] });

    const m = await managerSocket(t, path.join(dir, 'notify.sock'));
    const WATCHDOG_USEC = 600000;
    const server = new ServerProcess(['serve', '--config', file], { env: { NOTIFY_SOCKET: path.join(dir, 'notify.sock'), WATCHDOG_USEC: String(WATCHDOG_USEC) } });
    t.teardown(() => server.kill('SIGKILL'));

    const ready = await m.next((d) => d.fields.READY === '1');
    // READY=1 comes after the relay and the session run
    t.ok(server.logs.some((l) => l.msg === 'server ready'), '"server ready" logged before READY=1');
    const port = Number(String(server.logs.find((l) => l.msg === 'metrics listening')?.address).split(':').pop());
    t.equal((await scrape(port, '/readyz')).status, 200, '/readyz 200 when READY=1 arrives');
    t.match(ready.fields.STATUS, /^serving 1 relays, 1 sessions$/);
    t.match(server.logs.find((l) => l.msg === 'systemd watchdog on'), { intervalMs: WATCHDOG_USEC / 2000 });

    // watchdog: at half of WATCHDOG_USEC
    const w0 = m.got.filter((d) => d.fields.WATCHDOG === '1').length;
    await sleep(1600);
    const w = m.got.filter((d) => d.fields.WATCHDOG === '1').length - w0;
    t.ok(w >= 2, `WATCHDOG=1 every ~${WATCHDOG_USEC / 2000} ms (${w} in 1.6 s)`);

    // reload: RELOADING=1 with MONOTONIC_USEC of this moment, then READY=1
    const before = process.hrtime.bigint() / 1000n;
    const seen = m.got.length;
    server.child.kill('SIGHUP');
    const reloading = await m.next((d) => d.fields.RELOADING === '1');
    const after = process.hrtime.bigint() / 1000n;
    const mono = BigInt(reloading.fields.MONOTONIC_USEC ?? '0');
    t.ok(mono >= before && mono <= after, `MONOTONIC_USEC ${mono} is CLOCK_MONOTONIC between ${before} and ${after}`);
    const ready2 = await m.next((d) => d.fields.READY === '1' && m.got.indexOf(d) >= seen);
    t.ok(m.got.indexOf(ready2) > m.got.indexOf(reloading), 'READY=1 after RELOADING=1');
    await server.waitLog((l) => l.msg === 'config file unchanged since the last applied load' || l.msg === 'config reloaded', 10000).catch(() => undefined);

    // a refused reload still ends in READY=1 (the old config keeps serving)
    const seen2 = m.got.length;
    fs.writeFileSync(file, 'engine: [broken\n');
    await m.next((d) => d.fields.RELOADING === '1' && m.got.indexOf(d) >= seen2, 10000);
    await m.next((d) => d.fields.READY === '1' && m.got.indexOf(d) >= seen2, 10000);
    await server.waitLog((l) => l.msg === 'config reload refused, keeping the running config', 10000);

    const seen3 = m.got.length;
    server.child.kill('SIGTERM');
    const stopping = await m.next((d) => d.fields.STOPPING === '1');
    t.ok(m.got.indexOf(stopping) >= seen3, 'STOPPING=1 after SIGTERM');
    const e = await server.exited;
    t.equal(e.code, 0, 'exit 0');
    const order = m.got.filter((d) => !d.fields.WATCHDOG).map((d) => Object.keys(d.fields)[0]);
    t.same(order, ['READY', 'RELOADING', 'READY', 'RELOADING', 'READY', 'STOPPING'], 'the order systemd expects');
    t.notOk(m.got.slice(m.got.indexOf(stopping) + 1).some((d) => d.fields.READY), 'nothing but watchdog after STOPPING=1');
  });
}
