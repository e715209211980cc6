// SPDX-License-Identifier: MIT
// One engine per interface (issue #12's "two servers never touch each
// other's kernel state", with the kernel tier of #10): a second server on
// an interface whose tc program a live server owns refuses to start, naming
// the owner, and the first keeps relaying; once the owner is dead (kill -9)
// the next server adopts its program as a hitless restart does.
import t from 'tap';
import { ServerProcess, serverUnavailable } from './fixtures/harness';
import { relayBed } from './fixtures/relay-bed';

const why = serverUnavailable({ netns: true });
if (why) {
  process.stderr.write(`# SKIP kernel owner: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('a live server keeps a second one off its interface; a dead one does not', { timeout: 90000 }, async (t) => {
    const { config: configs, run } = await relayBed(t, [6000, 6001]);
    const config = (name: string, port: number): string => configs(name, [port]);

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
