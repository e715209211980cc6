// SPDX-License-Identifier: MIT
// The kernel tier outlives a crashed server, and its watchdog keeps a dead
// server from leaving an amplifier behind (issue #10): after kill -9 the tc
// program goes on relaying (no packet needs the server), and once no
// heartbeat came for engine.kernel_orphan_s (2 s here) it relays nothing
// and passes the traffic to the kernel stack.
import t from 'tap';
import { ServerProcess, serverUnavailable, sleep } from './fixtures/harness';
import { relayBed } from './fixtures/relay-bed';

const why = serverUnavailable({ netns: true });
if (why) {
  process.stderr.write(`# SKIP kernel watchdog: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('kill -9: the kernel tier keeps relaying, then stops after engine.kernel_orphan_s', { timeout: 90000 }, async (t) => {
    const { tb, config, run: runTo } = await relayBed(t, [6000]);
    const file = config('reflector', [6000], { kernel_orphan_s: 2 });
    const server = new ServerProcess(['serve', '--config', file]);
    t.teardown(() => server.kill('SIGKILL'));
    await server.ready();
    t.equal(server.logs.find((l) => l.msg.startsWith('relay tier'))?.tier, 'kernel', 'the kernel tier relays');

    const run = (first: number, count: number): Promise<number[]> => runTo(first, count, 6000);
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
