// SPDX-License-Identifier: MIT
// Hitless restart of the kernel tier (issue #10): a server is killed (-9)
// in the middle of a stream; the kernel tier keeps relaying; the next
// server on that interface adopts the program's maps, builds its table from
// its own configuration (one subscriber kept, one gone, one new) and then
// switches each relay in one step. The kept subscriber gets every datagram
// of the stream exactly once, in order; the removed one stops, the new one
// starts.
import t from 'tap';
import { ServerProcess, serverUnavailable, sleep } from './fixtures/harness';
import { relayBed } from './fixtures/relay-bed';

const why = serverUnavailable({ netns: true });
if (why) {
  process.stderr.write(`# SKIP kernel restart: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('kill -9 mid-stream, then a new server: the unchanged subscriber gets every datagram exactly once', { timeout: 120000 }, async (t) => {
    const { peer, relay: relayAddr, config } = await relayBed(t, [6000, 6001, 6002]);

    const a = new ServerProcess(['serve', '--config', config('a', [6000, 6001])]);
    t.teardown(() => a.kill('SIGKILL'));
    await a.ready();
    t.equal(a.logs.find((l) => l.msg.startsWith('relay tier'))?.tier, 'kernel', 'server A: the kernel tier relays');

    const COUNT = 6000;
    const stream = peer.call('send', { to: `${relayAddr}:5000`, count: COUNT, pps: 1000, first: 0 });
    await sleep(1000);
    await a.kill('SIGKILL');
    const b = new ServerProcess(['serve', '--config', config('b', [6000, 6002])]);
    t.teardown(() => b.kill('SIGKILL'));
    await b.ready();
    const readyAt = Date.now();
    t.equal(b.logs.find((l) => l.msg.startsWith('relay tier'))?.tier, 'kernel', 'server B: the kernel tier relays');
    await stream;
    await sleep(500);
    t.ok(Date.now() - readyAt > 1000, 'server B was ready well before the stream ended');
    const r = await peer.report();
    const kept = r[6000];
    t.equal(kept.length, COUNT, `the kept subscriber got ${kept.length} of ${COUNT}`);
    t.same(kept, Array.from({ length: COUNT }, (_, i) => i), 'every datagram exactly once, in order, across the crash and the restart');
    const gone = r[6001] ?? [];
    const added = r[6002] ?? [];
    t.ok(gone.length > 0 && gone.length < COUNT, `the removed subscriber got the first ${gone.length} and then nothing`);
    t.ok(added.length > 0 && added.length < COUNT, `the new subscriber got the last ${added.length}`);
    t.equal(added[added.length - 1], COUNT - 1, 'the new subscriber got the stream\'s end');
    t.equal(new Set(gone).size, gone.length, 'no duplicate at the removed one');
    t.equal(new Set(added).size, added.length, 'no duplicate at the new one');
    t.equal((await b.kill('SIGTERM')).code, 0, 'server B: SIGTERM exits 0');
  });
}
