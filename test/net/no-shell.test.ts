// SPDX-License-Identifier: MIT
// Next-hop resolution never hands a name to a shell. A device named
// `v$(>FILE)` (the kernel allows "$", "(", ")" and ">" in interface
// names) routes to a link-local gateway that does not answer, so the
// resolver would probe it; the old probe ran `bash -c "printf p
// >/dev/udp/fe80::1%<dev>/9"`, which ran the command in the name as root and
// created FILE. Now the name is refused by src/names.ts before any probe, and
// the probe itself is a socket the addon opens inside the namespace.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ReflectorError } from '../../src/errors';
import { resolveNextHop } from '../../src/net/neighbour';
import { Testbed, skipUnlessRoot } from '../helpers/testbed';

if (!skipUnlessRoot(t)) {
  t.test('a device name with a command substitution runs nothing', async (t) => {
    const tb = await Testbed.create(t, { hosts: ['a'] });
    const marker = `rfpw${process.pid % 1000}`;
    const dev = `v$(>${marker})`;
    // the probe's shell ran where the resolver's process runs
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-noshell-'));
    t.teardown(() => fs.rmSync(cwd, { recursive: true, force: true }));
    const was = process.cwd();
    process.chdir(cwd);
    t.teardown(() => process.chdir(was));
    await tb.exec('a', ['ip', 'link', 'add', 'name', dev, 'type', 'veth', 'peer', 'name', 'vpeer']);
    await tb.exec('a', ['ip', 'link', 'set', dev, 'up']);
    await tb.exec('a', ['ip', 'link', 'set', 'vpeer', 'up']);
    await tb.exec('a', ['ip', '-6', 'route', 'add', '2001:db8:5::/64', 'via', 'fe80::1', 'dev', dev]);
    const route = JSON.parse((await tb.exec('a', ['ip', '-j', '-6', 'route', 'get', '2001:db8:5::9'])).stdout) as Array<{ dev: string; gateway: string }>;
    t.equal(route[0].dev, dev, 'the kernel routes through the oddly named device');
    t.equal(route[0].gateway, 'fe80::1', 'via a link-local gateway (the probe would carry %dev)');
    let err: unknown;
    try {
      await resolveNextHop('2001:db8:5::9', { netns: tb.ns('a'), probeTimeoutMs: 200 });
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof ReflectorError, `refused with a typed error: ${(err as Error)?.message}`);
    t.match((err as Error).message, /device: "v\$\(>rfpw\d+\)" is not a valid interface name/, 'naming the device');
    t.notOk(fs.existsSync(path.join(cwd, marker)), 'no command ran: the marker file does not exist');
    t.notOk(fs.existsSync(path.join(was, marker)), 'not in the first folder either');
  });
}
