// SPDX-License-Identifier: MIT
// The kernel tier outlives a crashed server, and its watchdog keeps a dead
// server from leaving an amplifier behind (issue #10): after kill -9 the tc
// program goes on relaying (no packet needs the server), and once no
// heartbeat came for engine.kernel_orphan_s (2 s here) it relays nothing
// and passes the traffic to the kernel stack.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Testbed } from '../helpers/testbed';
import { ServerProcess, Peer, serverUnavailable, sleep, ROOT } from './fixtures/harness';

const why = serverUnavailable({ netns: true });
if (why) {
  process.stderr.write(`# SKIP kernel watchdog: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('kill -9: the kernel tier keeps relaying, then stops after engine.kernel_orphan_s', { timeout: 90000 }, async (t) => {
    const tb = await Testbed.create(t, { hosts: ['client', 'relay'], links: [['client', 'relay']] });
    const client = tb.addr('client');
    const relayAddr = tb.addr('relay');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-orphan-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'reflector.yaml');
    fs.writeFileSync(file, `engine:
  interface: ${tb.iface('relay').name}
  netns: ${tb.ns('relay')}
  workers: 1
  kernel_orphan_s: 2
metrics:
  listen: 127.0.0.1:0
control:
  socket: ctl.sock
media_root: ${ROOT}
relays:
  - name: cam
    listen: ${relayAddr}:5000
    sources: [${client}/32]
    subscribers: [${client}:6000]
`);
    const peer = new Peer(tb.spawn('client', [process.execPath, path.join(__dirname, 'fixtures/udp-peer.js'), client], { stdio: ['pipe', 'pipe', 'pipe'] }));
    t.teardown(() => peer.close());
    await peer.ready;
    await peer.call('bind', { ports: [6000] });
    const server = new ServerProcess(['serve', '--config', file]);
    t.teardown(() => server.kill('SIGKILL'));
    await server.ready();
    t.equal(server.logs.find((l) => l.msg.startsWith('relay tier'))?.tier, 'kernel', 'the kernel tier relays');

    const run = async (first: number, count: number): Promise<number[]> => {
      await peer.call('send', { to: `${relayAddr}:5000`, count, pps: 1000, first });
      await sleep(300);
      return (await peer.report())[6000].filter((s) => s >= first && s < first + count);
    };
    t.equal((await run(0, 100)).length, 100, 'with the server: 100 of 100 relayed');
    const killed = await server.kill('SIGKILL');
    t.equal(killed.signal, 'SIGKILL', 'the server is dead (SIGKILL)');
    const t0 = Date.now();
    const during = await run(1000, 100);
    const elapsed = Date.now() - t0;
    if (elapsed < 1500) t.equal(during.length, 100, `dead server, ${elapsed} ms later: the program still relays all 100`);
    else t.comment(`the first run after the kill took ${elapsed} ms: too close to the 2 s watchdog to assert`);
    await sleep(2500);
    const after = await run(2000, 100);
    t.same(after, [], 'no heartbeat for 2 s: nothing relayed any more');
    const filter = (await tb.exec('relay', ['tc', 'filter', 'show', 'dev', tb.iface('relay').name, 'ingress'])).stdout;
    t.match(filter, /rf_ingress/, 'the program is still attached (it only stopped relaying)');
  });
}
