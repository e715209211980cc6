// SPDX-License-Identifier: MIT
// One engine per interface (issue #12's "two servers never touch each
// other's kernel state", with the kernel tier of #10): a second server on
// an interface whose tc program a live server owns refuses to start, naming
// the owner, and the first keeps relaying; once the owner is dead (kill -9)
// the next server adopts its program as a hitless restart does.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Testbed } from '../helpers/testbed';
import { ServerProcess, Peer, serverUnavailable, sleep, ROOT } from './fixtures/harness';

const why = serverUnavailable({ netns: true });
if (why) {
  process.stderr.write(`# SKIP kernel owner: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('a live server keeps a second one off its interface; a dead one does not', { timeout: 90000 }, async (t) => {
    const tb = await Testbed.create(t, { hosts: ['client', 'relay'], links: [['client', 'relay']] });
    const client = tb.addr('client');
    const relayAddr = tb.addr('relay');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-owner-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const config = (name: string, port: number): string => {
      const file = path.join(dir, `${name}.yaml`);
      fs.writeFileSync(file, `engine:
  interface: ${tb.iface('relay').name}
  netns: ${tb.ns('relay')}
  workers: 1
metrics:
  listen: 127.0.0.1:0
control:
  socket: ${name}.sock
media_root: ${ROOT}
relays:
  - name: cam
    listen: ${relayAddr}:5000
    sources: [${client}/32]
    subscribers: [${client}:${port}]
`);
      return file;
    };
    const peer = new Peer(tb.spawn('client', [process.execPath, path.join(__dirname, 'fixtures/udp-peer.js'), client], { stdio: ['pipe', 'pipe', 'pipe'] }));
    t.teardown(() => peer.close());
    await peer.ready;
    await peer.call('bind', { ports: [6000, 6001] });
    const run = async (first: number, count: number, port: number): Promise<number[]> => {
      await peer.call('send', { to: `${relayAddr}:5000`, count, pps: 1000, first });
      await sleep(300);
      return (await peer.report())[port].filter((s) => s >= first && s < first + count);
    };

    const a = new ServerProcess(['serve', '--config', config('a', 6000)]);
    t.teardown(() => a.kill('SIGKILL'));
    await a.ready();
    t.equal(a.logs.find((l) => l.msg.startsWith('relay tier'))?.tier, 'kernel', 'a relays in the kernel tier');
    t.equal((await run(0, 100, 6000)).length, 100, 'a relays 100 of 100');

    const b = new ServerProcess(['serve', '--config', config('b', 6001)]);
    t.teardown(() => b.kill('SIGKILL'));
    const bExit = await b.exited;
    t.not(bExit.code, 0, `a second server on the interface exits non-zero (${bExit.code})`);
    const said = b.stderrText.join('\n');
    t.match(said, new RegExp(`another Reflector engine \\(pid ${a.child.pid}, heartbeat \\d+ ms ago\\) serves this interface`), 'naming the live owner');
    t.equal((await run(1000, 100, 6000)).length, 100, 'a still relays 100 of 100 to its subscriber');
    t.same(await run(2000, 100, 6001), [], 'and nothing reached b\'s subscriber');

    await a.kill('SIGKILL');
    const c = new ServerProcess(['serve', '--config', config('c', 6001)]);
    t.teardown(() => c.kill('SIGKILL'));
    await c.ready();
    t.equal(c.logs.find((l) => l.msg.startsWith('relay tier'))?.tier, 'kernel', 'after a died, the next server starts on the kernel tier');
    t.equal((await run(3000, 100, 6001)).length, 100, 'and relays to its own subscriber');
    t.same(await run(4000, 100, 6000), [], 'a\'s old subscriber is no longer served');
    await c.kill('SIGTERM');
  });
}
