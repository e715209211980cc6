// SPDX-License-Identifier: MIT
// A machine without libbpf.so.1 (issue #10): the server starts, logs one
// line saying why relays are not in the kernel tier, and the user tier
// relays. (REFLECTOR_LIBBPF names a library that does not exist.)
import t from 'tap';
import { ServerProcess, serverUnavailable, sleep } from './fixtures/harness';
import { relayBed } from './fixtures/relay-bed';

const why = serverUnavailable({ netns: true });
if (why) {
  process.stderr.write(`# SKIP kernel fallback: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('no libbpf.so.1: one log line says why, the user tier relays', { timeout: 90000 }, async (t) => {
    const { peer, relay: relayAddr, config } = await relayBed(t, [6000]);
    const file = config('reflector', [6000]);
    process.env.REFLECTOR_LIBBPF = 'libbpf-absent-for-test.so.1';
    let server: ServerProcess;
    try {
      server = new ServerProcess(['serve', '--config', file]);
    } finally {
      delete process.env.REFLECTOR_LIBBPF;
    }
    t.teardown(() => server.kill('SIGKILL'));
    await server.ready();
    const lines = server.logs.filter((l) => l.msg.startsWith('relay tier'));
    t.equal(lines.length, 1, 'one line about the tier');
    t.equal(lines[0]?.level, 'warn', 'a warning');
    t.match(lines[0]?.msg, /^relay tier: none instead of kernel: cannot load libbpf-absent-for-test\.so\.1 \(install the libbpf1 package\)/, `it says why: ${lines[0]?.msg}`);
    await peer.call('send', { to: `${relayAddr}:5000`, count: 200, pps: 1000, first: 0 });
    await sleep(400);
    t.same((await peer.report())[6000], Array.from({ length: 200 }, (_, i) => i), 'the user tier relays all 200, in order, once');
    t.equal((await server.kill('SIGTERM')).code, 0, 'SIGTERM: exit 0');
  });
}
