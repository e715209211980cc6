// SPDX-License-Identifier: MIT
// Address takeover (src/cluster/takeover.ts) between two namespaces: the
// address is added with a lifetime, and the announcement (engine/src/
// announce.c through the addon) moves a neighbour's existing entry for it to
// this host's MAC: a gratuitous ARP for IPv4, an unsolicited neighbour
// advertisement for IPv6. Release removes the address; a failed announce
// is logged and the address still taken.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AddressTakeover, isMulticast, movesAddress } from '../../src/cluster/takeover';
import { parseEndpoint } from '../../src/net/address';
import { skipUnlessRoot, Testbed } from '../helpers/testbed';
import { keptLog } from './harness';

const addon = path.resolve(__dirname, '../../../build/Release/reflector.node');

t.test('which relays move their address', async (t) => {
  const r = (listen: string, node: string[]): Parameters<typeof movesAddress>[0] => ({ name: 'r', listen: parseEndpoint(listen), sources: [], subscribers: [], node });
  t.ok(movesAddress(r('198.18.0.100:5000', ['a', 'b'])), 'unicast, two nodes');
  t.notOk(movesAddress(r('198.18.0.100:5000', ['a'])), 'one node: the address is its own');
  t.notOk(movesAddress(r('239.1.1.1:5000', ['a', 'b'])), 'multicast: nothing to take');
  t.ok(isMulticast(parseEndpoint('[ff3e::1]:5000')) && isMulticast(parseEndpoint('224.0.0.1:1')) && !isMulticast(parseEndpoint('223.255.255.255:1')));
});

if (!fs.existsSync(addon)) {
  t.comment(`SKIP takeover in namespaces: the addon is not built (${addon})`);
} else if (!skipUnlessRoot(t)) {
  t.test('take over an address and announce it', async (t) => {
    const tb = await Testbed.create(t, { hosts: ['x', 'y'], links: [['x', 'y']] });
    const { log, lines } = keptLog();
    const to = new AddressTakeover({ interface: 'veth0', netns: tb.ns('x'), lifetimeS: 30, log });
    t.teardown(() => to.releaseAll());
    for (const [family, vip] of [[4, '198.18.0.100'], [6, '2001:db8::100']] as const) {
      // y has an entry for the address at another MAC (the node that held it before)
      await tb.exec('y', ['ip', 'neigh', 'replace', vip, 'lladdr', '02:00:00:00:00:99', 'dev', 'veth0', 'nud', 'stale']);
      const e = parseEndpoint(family === 4 ? `${vip}:5000` : `[${vip}]:5000`);
      await to.acquire(e);
      const addrs = JSON.parse((await tb.exec('x', ['ip', '-j', 'addr', 'show', 'dev', 'veth0'])).stdout) as Array<{ addr_info: Array<{ local: string; prefixlen: number; valid_life_time: number }> }>;
      const info = addrs[0].addr_info.find((a) => a.local === vip);
      t.ok(info, `IPv${family}: ${vip} added`);
      t.equal(info?.prefixlen, family === 4 ? 32 : 128, 'as a host address');
      t.ok(info && info.valid_life_time <= 30, `with a lifetime (${info?.valid_life_time} s): it expires unless renewed`);
      let neigh = '';
      for (let i = 0; i < 50 && !neigh.includes(tb.mac('x')); i++) {
        neigh = (await tb.exec('y', ['ip', 'neigh', 'show', vip, 'dev', 'veth0'])).stdout;
        await new Promise((r) => setTimeout(r, 20));
      }
      t.match(neigh, tb.mac('x'), `IPv${family}: y's entry moved to x's MAC (${family === 4 ? 'gratuitous ARP' : 'unsolicited NA'}): ${neigh.trim()}`);
      await to.release(e);
      t.notMatch((await tb.exec('x', ['ip', 'addr', 'show', 'dev', 'veth0'])).stdout, vip, `IPv${family}: released`);
    }
    t.same(to.addresses(), []);

    // an announce that fails: logged, the address is taken anyway
    const failing = new AddressTakeover({ interface: 'veth0', netns: tb.ns('x'), lifetimeS: 30, log, announce: () => { throw new Error('no such thing'); } });
    await failing.acquire(parseEndpoint('198.18.0.101:5000'));
    t.ok(lines.some((l) => l.msg === 'cluster address announce failed'), 'the failed announce is logged');
    t.same(failing.addresses(), ['198.18.0.101']);
    await failing.releaseAll();
    // an interface that does not exist: a clear error
    const wrong = new AddressTakeover({ interface: 'nope0', netns: tb.ns('x'), lifetimeS: 30, log });
    await t.rejects(wrong.acquire(parseEndpoint('198.18.0.102:5000')), { code: 'ERR_CLUSTER', message: /ip -n .* addr replace 198\.18\.0\.102\/32 dev nope0 .*: Cannot find device "nope0"/ });
  });
}
