// SPDX-License-Identifier: MIT
// `npm start` runs the shipped config/reflector.yaml as-is on loopback: it
// becomes ready, the relay and the session move packets, SIGTERM stops it
// with exit 0.
import t from 'tap';
import * as fs from 'node:fs';
import { createSocket, type Socket } from 'node:dgram';
import { ServerProcess, scrape, metricValue, serverUnavailable, sleep, ROOT } from './fixtures/harness';

const why = serverUnavailable();
if (why) {
  process.stderr.write(`# SKIP npm start: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('start failures exit 1 with a log line naming the problem', async (t) => {
    const fs2 = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = fs2.mkdtempSync(path.join(os.tmpdir(), 'rf-startfail-'));
    t.teardown(() => fs2.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'r.yaml');
    fs2.writeFileSync(file, 'engine:\n  interface: nosuchif0\nmetrics:\n  listen: 127.0.0.1:0\ncontrol:\n  socket: ctl.sock\n');
    const s = new ServerProcess(['serve', '--config', file]);
    const e = await s.exited;
    t.equal(e.code, 1);
    const line = s.logs.find((l) => l.msg === 'server failed to start');
    t.match(line, { level: 'error', code: 'ERR_ENGINE_START' });
    t.match(JSON.stringify(line), /nosuchif0/, 'names the interface');
    t.notOk(fs2.existsSync(path.join(dir, 'ctl.sock')), 'no socket left behind');
  });

  t.test('npm start on the shipped config', { timeout: 90000 }, async (t) => {
    const sockets: Socket[] = [];
    const got = new Map<number, number>();
    for (const port of [6000, 6001, 7000]) {
      const s = createSocket('udp4');
      got.set(port, 0);
      s.on('message', () => got.set(port, got.get(port)! + 1));
      await new Promise<void>((r) => s.bind(port, '127.0.0.1', () => r()));
      sockets.push(s);
    }
    t.teardown(() => sockets.forEach((s) => s.close()));

    // detached: npm and its children form one process group we can signal
    const server = new ServerProcess([], { cwd: ROOT, command: ['npm', 'start', '--silent'] });
    t.teardown(async () => {
      if (server.child.exitCode === null && server.child.signalCode === null) await server.kill('SIGKILL');
    });
    const port = await server.ready(60000);
    t.equal(port, 9464, 'metrics on the shipped 127.0.0.1:9464');
    t.equal((await scrape(port, '/readyz')).status, 200, '/readyz answers 200');
    t.ok(fs.existsSync('/run/reflector/control.sock'), 'control socket at the shipped path');

    const origin = createSocket('udp4');
    await new Promise<void>((r) => origin.bind(0, '127.0.0.1', () => r()));
    for (let i = 0; i < 50; i++) {
      await new Promise<void>((r) => origin.send(Buffer.alloc(100, i), 5000, '127.0.0.1', () => r()));
      await sleep(2);
    }
    origin.close();
    await sleep(1000);
    const m = await scrape(port);
    t.comment(m.body.split('\n').filter((l) => /^reflector_(interface_drops|relay_subscriber_drops|engine_events)_total.* [1-9]/.test(l)).join('\n'));
    // the engine relayed each packet to both subscribers, counted exactly
    t.equal(metricValue(m.body, 'reflector_relay_subscriber_packets_total{relay="camera1",subscriber="127.0.0.1:6000"}'), 50);
    t.equal(metricValue(m.body, 'reflector_relay_subscriber_packets_total{relay="camera1",subscriber="127.0.0.1:6001"}'), 50);
    t.ok((metricValue(m.body, 'reflector_session_packets_total{session="movie1"}') ?? 0) > 0, 'session movie1 sends');
    // the server turned on lo's route_localnet and accept_local (src/net/loopback.ts),
    // so what the engine injects on lo reaches local sockets
    t.equal(got.get(6000), 50, 'subscriber 127.0.0.1:6000 received every relayed packet');
    t.equal(got.get(6001), 50, 'subscriber 127.0.0.1:6001 received every relayed packet');
    t.ok(got.get(7000)! > 0, `the session's receiver 127.0.0.1:7000 received packets (${got.get(7000)})`);

    // SIGTERM to the server itself (npm's own signal handling is not ours to test)
    const pid = Number(server.logs.find((l) => l.msg === 'server starting')?.pid);
    t.ok(pid > 0 && pid !== server.child.pid, `server pid ${pid} logged`);
    const t0 = Date.now();
    process.kill(pid, 'SIGTERM');
    const r = await server.exited;
    t.equal(r.code, 0, `the server exits 0 after SIGTERM and npm start with it (${r.at - t0} ms)`);
    t.ok(server.logs.some((l) => l.msg === 'server stopped'), 'the server stopped in order');
  });
}
