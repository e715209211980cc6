// SPDX-License-Identifier: MIT
// The testbed itself: namespaces appear, carry traffic, and disappear on
// teardown, on a throwing test process, and through sweep() for dead pids.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startReceiver } from '../helpers/receiver';
import { Testbed, skipUnlessRoot } from '../helpers/testbed';

const TESTBED_JS = join(__dirname, '..', 'helpers', 'testbed.js');

function nsList(): string[] {
  return existsSync('/run/netns') ? execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).filter(Boolean) : [];
}

async function udpSend(tb: Testbed, host: string, to: string, port: number, text: string): Promise<void> {
  const fam = to.includes(':') ? 6 : 4;
  await tb.exec(host, [process.execPath, '-e',
    `const s=require('dgram').createSocket('udp${fam}');s.send(${JSON.stringify(text)},${port},${JSON.stringify(to)},(e)=>{if(e)throw e;s.close()})`]);
}

if (!skipUnlessRoot(t)) {
  t.test('point-to-point link: names, addresses, traffic both families, removal', async (t) => {
    const tb = await Testbed.create(t, { hosts: ['a', 'b'], links: [['a', 'b']] });
    t.match(tb.ns('a'), new RegExp(`^rft-${process.pid}-\\d+-a$`));
    t.equal(tb.nsPath('b'), `/run/netns/${tb.ns('b')}`);
    t.ok(existsSync(tb.nsPath('a')) && existsSync(tb.nsPath('b')), 'both namespaces exist');
    t.equal(tb.addr('a'), '198.18.0.1');
    t.equal(tb.addr('b'), '198.18.0.2');
    t.equal(tb.addr('b', 6), '2001:db8::2');
    t.match(tb.mac('a'), /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    t.not(tb.mac('a'), tb.mac('b'));
    const links = JSON.parse((await tb.exec('a', ['ip', '-j', 'link', 'show'])).stdout) as Array<{ ifname: string; address: string; operstate: string }>;
    t.same(links.map((l) => l.ifname).sort(), ['lo', 'veth0'], 'only lo and the veth end in a');
    t.equal(links.find((l) => l.ifname === 'veth0')?.address, tb.mac('a'));
    t.equal((await tb.exec('a', ['ip', 'route', 'show', 'default'])).stdout.trim(), '', 'no default route');
    for (const fam of [4, 6] as const) {
      const bind = fam === 4 ? `${tb.addr('b')}:7000` : `[${tb.addr('b', 6)}]:7000`;
      const rx = await startReceiver(tb, 'b', { bind, count: 1, timeoutMs: 3000 });
      await udpSend(tb, 'a', tb.addr('b', fam), 7000, `hello v${fam}`);
      const r = await rx.result;
      t.equal(r.received, 1, `one IPv${fam} datagram crossed the link`);
      t.ok(Object.keys(r.sources)[0].includes(tb.addr('a', fam)), 'source is a');
    }
    const names = [tb.ns('a'), tb.ns('b')];
    await tb.destroy();
    t.same(nsList().filter((n) => names.includes(n)), [], 'destroy removed both namespaces');
  });

  t.test('shared segment through a bridge namespace', async (t) => {
    const tb = await Testbed.create(t, { hosts: ['a', 'b', 'c'], segments: [['a', 'b', 'c']] });
    t.equal(tb.addr('c'), '198.18.0.3');
    t.ok(existsSync(tb.nsPath('br0')), 'bridge namespace exists');
    const rx = await startReceiver(tb, 'c', { bind: `${tb.addr('c')}:7001`, count: 2, timeoutMs: 3000 });
    await Promise.all([udpSend(tb, 'a', tb.addr('c'), 7001, 'from a'), udpSend(tb, 'b', tb.addr('c'), 7001, 'from b')]);
    const r = await rx.result;
    t.equal(r.received, 2);
    t.same(Object.keys(r.sources).map((s) => s.split(':')[0]).sort(), [tb.addr('a'), tb.addr('b')]);
  });

  t.test('routes through a forwarding host', async (t) => {
    const tb = await Testbed.create(t, {
      hosts: ['a', 'r', 'b'],
      links: [['a', 'r'], ['r', 'b']],
      forwarding: ['r'],
      routes: [
        { host: 'a', to: '198.18.1.0/24', via: '198.18.0.2' },
        { host: 'b', to: '198.18.0.0/24', via: '198.18.1.1' },
      ],
    });
    t.equal(tb.addr('r', 4, 1), '198.18.1.1');
    const rx = await startReceiver(tb, 'b', { bind: `${tb.addr('b')}:7002`, count: 1, timeoutMs: 3000 });
    await udpSend(tb, 'a', tb.addr('b'), 7002, 'routed');
    t.equal((await rx.result).received, 1, 'datagram forwarded by r');
  });

  t.test('bad specs are refused with the reason', async (t) => {
    await t.rejects(Testbed.create(null, { hosts: [] }), /spec.hosts is empty/);
    await t.rejects(Testbed.create(null, { hosts: ['A'] }), /host name "A" must be/);
    await t.rejects(Testbed.create(null, { hosts: ['a'], links: [['a', 'z']] }), /"z" is not in hosts/);
    await t.rejects(Testbed.create(null, { hosts: ['a', 'a'] }), /duplicate host/);
  });

  t.test('a test process that throws leaves no namespace behind', async (t) => {
    const script = `
      const { Testbed } = require(${JSON.stringify(TESTBED_JS)});
      Testbed.create(null, { hosts: ['a', 'b'], links: [['a', 'b']] }).then((tb) => {
        process.stdout.write(tb.ns('a') + '\\n');
        throw new Error('test failed on purpose');
      });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    t.not(r.status, 0, 'child failed');
    t.match(r.stderr, /test failed on purpose/);
    const name = r.stdout.trim();
    t.match(name, /^rft-\d+-0-a$/);
    t.notOk(existsSync(`/run/netns/${name}`), 'exit handler removed the namespace');
    t.same(Testbed.namespacesOf(r.pid), []);
  });

  t.test('sweep removes namespaces of dead processes only', async (t) => {
    // a pid that cannot be alive: above the kernel's pid_max
    const pidMax = Number(execFileSync('cat', ['/proc/sys/kernel/pid_max'], { encoding: 'utf8' }));
    const dead = `rft-${pidMax + 1}-0-x`;
    execFileSync('ip', ['netns', 'add', dead]);
    t.teardown(() => spawnSync('ip', ['netns', 'del', dead]));
    const mine = await Testbed.create(t, { hosts: ['a'] });
    // create() sweeps first, so it is gone already; sweep() again is a no-op
    t.notOk(existsSync(`/run/netns/${dead}`), 'dead owner namespace swept');
    t.same(await Testbed.sweep(), []);
    t.ok(existsSync(mine.nsPath('a')), 'live owner namespace kept');
  });

  t.test('no namespace of this process is left', async (t) => {
    // every earlier subtest's teardown has run by now
    t.same(Testbed.namespacesOf(), []);
  });
}
