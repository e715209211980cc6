// SPDX-License-Identifier: MIT
// The real server in a child process, its engine on the relay side of a veth
// pair in a namespace testbed, a UDP peer on the other side:
// ctl subscribe -> receive, unsubscribe -> stop; /metrics counts exactly what
// was sent and passes promtool; a reload while streaming loses nothing on the
// outputs it did not change; an invalid file keeps serving and is counted;
// SIGTERM exits 0 within the drain window.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Testbed } from '../helpers/testbed';
import { ServerProcess, Peer, ctl, scrape, metricValue, serverUnavailable, sleep, ROOT } from './fixtures/harness';

const why = serverUnavailable({ netns: true });
if (why) {
  process.stderr.write(`# SKIP server integration: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('server on a namespace testbed', { timeout: 120000 }, async (t) => {
    const tb = await Testbed.create(t, { hosts: ['client', 'relay'], links: [['client', 'relay']] });
    const client = tb.addr('client');
    const relayAddr = tb.addr('relay');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-serve-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const socket = path.join(dir, 'ctl.sock');
    const file = path.join(dir, 'reflector.yaml');
    const DRAIN_MS = 300;
    const config = (subs: number[], extra = ''): string => `engine:
  interface: ${tb.iface('relay').name}
  netns: ${tb.ns('relay')}
  workers: 1
  drain_ms: ${DRAIN_MS}
metrics:
  listen: 127.0.0.1:0
control:
  socket: ctl.sock
relays:
  - name: cam
    listen: ${relayAddr}:5000
    sources: [${client}/32]
    subscribers: [${subs.map((p) => `${client}:${p}`).join(', ')}]
sessions:
  - name: movie
    file: ${path.join(ROOT, 'media/sample.ts')}
    to: ${client}:7000
    loop: true
${extra}`;
    fs.writeFileSync(file, config([6000, 6001]));

    const peer = new Peer(tb.spawn('client', [process.execPath, path.join(__dirname, 'fixtures/udp-peer.js'), client], { stdio: ['pipe', 'pipe', 'pipe'] }));
    t.teardown(() => peer.close());
    await peer.ready;
    await peer.call('bind', { ports: [6000, 6001, 6002, 6003, 7000] });

    const server = new ServerProcess(['serve', '--config', file]);
    t.teardown(() => server.kill('SIGKILL'));
    const port = await server.ready();
    t.ok(port > 0, `metrics on port ${port}`);
    t.equal((await scrape(port, '/readyz')).status, 200, '/readyz 200');

    let seq = 0;
    const send = async (count: number, pps = 2000): Promise<[number, number]> => {
      const first = seq;
      seq += count;
      await peer.call('send', { to: `${relayAddr}:5000`, count, pps, first });
      await sleep(300);
      return [first, first + count];
    };
    const got = async (p: number, [a, b]: [number, number]): Promise<number[]> => (await peer.report())[p].filter((s) => s >= a && s < b);
    const range = ([a, b]: [number, number]): number[] => Array.from({ length: b - a }, (_, i) => a + i);
    const series = (p: number): string => `reflector_relay_subscriber_packets_total{relay="cam",subscriber="${client}:${p}"}`;

    await t.test('ctl subscribe -> the new subscriber receives', async (t) => {
      const r = ctl(socket, 'subscribe', 'cam', `${client}:6002`);
      t.equal(r.code, 0, r.err);
      t.equal(r.out, 'ok\n');
      const run = await send(200);
      for (const p of [6000, 6001, 6002]) t.same(await got(p, run), range(run), `${p} received every packet once, in order`);
      const list = ctl(socket, 'list');
      t.match(list.out, new RegExp(`subscriber ${client.replace(/\./g, '\\.')}:6002`));
    });

    await t.test('/metrics counts exactly what was sent and passes promtool', async (t) => {
      const m = await scrape(port);
      t.equal(metricValue(m.body, series(6000)), 200);
      t.equal(metricValue(m.body, series(6002)), 200);
      t.equal(metricValue(m.body, `reflector_relay_subscriber_bytes_total{relay="cam",subscriber="${client}:6000"}`), 200 * (14 + 20 + 8 + 200), 'frame bytes: Ethernet + IPv4 + UDP headers + 200-byte payload');
      t.ok((metricValue(m.body, 'reflector_session_packets_total{session="movie"}') ?? 0) > 0, 'the session sends');
      t.ok(((await peer.report())[7000] ?? []).length > 0, 'the session\'s packets arrive');
      const pt = spawnSync('/usr/bin/promtool', ['check', 'metrics'], { input: m.body, encoding: 'utf8' });
      t.equal(pt.status, 0, `promtool: ${pt.stdout}${pt.stderr}`);
    });

    await t.test('ctl unsubscribe -> it stops receiving', async (t) => {
      const r = ctl(socket, 'unsubscribe', 'cam', `${client}:6002`);
      t.equal(r.code, 0, r.err);
      const run = await send(100);
      t.same(await got(6002, run), [], '6002 got nothing');
      t.same(await got(6000, run), range(run), '6000 still gets everything');
      const again = ctl(socket, 'unsubscribe', 'cam', `${client}:6002`);
      t.equal(again.code, 1);
      t.match(again.err, /ERR_NOT_FOUND: .*6002 does not subscribe to relay "cam"/);
    });

    await t.test('reload while streaming: zero loss on the unchanged output', async (t) => {
      const before = server.logs.length;
      const count = 3000;
      const streaming = send(count, 1500);
      await sleep(700);
      fs.writeFileSync(file, config([6000, 6003]));
      const line = await server.waitLog((l) => l.msg === 'config reloaded', 10000, before);
      t.match(line, { relaysChanged: [{ name: 'cam', subscribersAdded: [`${client}:6003`], subscribersRemoved: [`${client}:6001`] }] });
      const run = await streaming;
      const r6000 = await got(6000, run);
      t.equal(r6000.length, count, 'every packet reached the unchanged output');
      t.same(r6000, range(run), 'in order, no gap, no duplicate');
      const r6001 = await got(6001, run);
      const r6003 = await got(6003, run);
      t.ok(r6001.length > 0 && r6001.length < count, `removed output got a prefix (${r6001.length})`);
      t.ok(r6003.length > 0 && r6003.length < count, `added output got a suffix (${r6003.length})`);
      t.same(r6003, range([r6003[0], run[1]]), 'the added output has no gap once it started');
      const m = await scrape(port);
      t.equal(metricValue(m.body, 'reflector_config_reloads_total'), 1);
    });

    await t.test('an invalid file keeps serving and bumps the failure metric', async (t) => {
      const before = server.logs.length;
      fs.writeFileSync(file, config([6000, 6003]).replace('workers: 1', 'workers: -1'));
      const line = await server.waitLog((l) => l.msg === 'config reload refused, keeping the running config', 10000, before);
      t.match((line.problems as string[])[0], /reflector\.yaml:4:12: engine\.workers: -1 is outside 1\.\.63/);
      const run = await send(100);
      t.same(await got(6000, run), range(run), 'still relaying');
      const m = await scrape(port);
      t.equal(metricValue(m.body, 'reflector_config_reload_failures_total'), 1);
      t.equal((await scrape(port, '/readyz')).status, 200);
    });

    await t.test('SIGHUP reloads', async (t) => {
      fs.writeFileSync(file, config([6000, 6003]));
      await server.waitLog((l) => l.msg === 'config reloaded' && l.reason === 'file changed', 10000, server.logs.length - 1).catch(() => undefined);
      const before = server.logs.length;
      server.child.kill('SIGHUP');
      const line = await server.waitLog((l) => l.msg === 'config reloaded' && l.reason === 'SIGHUP', 10000, before);
      t.same(line.relaysChanged, [], 'nothing changed');
    });

    await t.test('SIGTERM exits 0 within the drain window', async (t) => {
      const r = await server.kill('SIGTERM');
      t.equal(r.code, 0, `exit code (stderr tail: ${server.stderrText.slice(-3).join(' | ')})`);
      t.ok(r.ms < DRAIN_MS + 3000, `exited in ${r.ms} ms (drain ${DRAIN_MS} ms)`);
      const stopped = server.logs.find((l) => l.msg === 'server stopped');
      t.ok(stopped, 'logged server stopped');
      t.ok(Number(stopped?.ms) >= DRAIN_MS, 'waited the drain window for packets already due');
      t.notOk(fs.existsSync(socket), 'control socket removed');
    });
  });
}
