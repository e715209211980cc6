// SPDX-License-Identifier: MIT
// Next-hop resolution against real kernel tables in test namespaces.
import t from 'tap';
import { NextHopCache, TableWatch, linkInfo, resolveNextHop } from '../../src/net/neighbour';
import { Testbed, skipUnlessRoot } from '../helpers/testbed';

const ZERO = '00:00:00:00:00:00';

if (!skipUnlessRoot(t)) {
  t.test('loopback needs no neighbour (v4, v6, own address)', async (t) => {
    const tb = await Testbed.create(t, { hosts: ['a', 'b'], links: [['a', 'b']] });
    const ns = tb.ns('a');
    for (const dst of ['127.0.0.1', '::1', tb.addr('a'), tb.addr('a', 6)]) {
      const h = await resolveNextHop(dst, { netns: ns });
      t.equal(h.dev, 'lo', `${dst} goes out lo`);
      t.equal(h.mac, ZERO);
      t.equal(h.srcMac, ZERO);
      t.equal(h.srcAddr, dst);
    }
    // the /run/netns path form names the same namespace
    t.equal((await resolveNextHop('127.0.0.1', { netns: tb.nsPath('a') })).dev, 'lo');
  });

  t.test('on-link neighbour across a veth pair, probed when unknown (v4 and v6)', async (t) => {
    const tb = await Testbed.create(t, { hosts: ['a', 'b'], links: [['a', 'b']] });
    const ns = tb.ns('a');
    for (const fam of [4, 6] as const) {
      const dst = tb.addr('b', fam);
      const before = (await tb.exec('a', ['ip', '-j', 'neigh', 'show', 'to', dst])).stdout.trim();
      t.same(JSON.parse(before || '[]'), [], `IPv${fam}: neighbour unknown before`);
      const h = await resolveNextHop(dst, { netns: ns });
      t.same(h, {
        family: fam, dst, dev: 'veth0', ifindex: h.ifindex, mtu: 1500, gateway: null,
        srcAddr: tb.addr('a', fam), mac: tb.mac('b'), srcMac: tb.mac('a'),
      }, `IPv${fam}: next hop is b itself`);
      const after = JSON.parse((await tb.exec('a', ['ip', '-j', 'neigh', 'show', 'to', dst])).stdout) as Array<{ lladdr: string }>;
      t.equal(after[0]?.lladdr, tb.mac('b'), `IPv${fam}: the probe filled the kernel table`);
      // second time: answered from the table
      t.equal((await resolveNextHop(dst, { netns: ns })).mac, tb.mac('b'));
    }
  });

  t.test('off-link destination resolves to the gateway MAC', async (t) => {
    const tb = await Testbed.create(t, {
      hosts: ['a', 'r', 'b'],
      links: [['a', 'r'], ['r', 'b']],
      forwarding: ['r'],
      routes: [{ host: 'a', to: '198.18.1.0/24', via: '198.18.0.2' }, { host: 'a', to: '2001:db8:0:1::/64', via: '2001:db8::2' }],
    });
    for (const fam of [4, 6] as const) {
      const h = await resolveNextHop(tb.addr('b', fam), { netns: tb.ns('a') });
      t.equal(h.gateway, tb.addr('r', fam), `IPv${fam} gateway`);
      t.equal(h.mac, tb.mac('r', 0), `IPv${fam}: MAC of r's interface facing a`);
      t.equal(h.srcAddr, tb.addr('a', fam));
    }
  });

  t.test('errors name the problem', async (t) => {
    const tb = await Testbed.create(t, { hosts: ['a', 'b'], links: [['a', 'b']] });
    const ns = tb.ns('a');
    await t.rejects(resolveNextHop('198.19.7.7', { netns: ns }), {
      code: 'ERR_NO_NEIGHBOUR',
      message: `no route to 198.19.7.7 in namespace ${ns} (RTNETLINK answers: Network is unreachable)`,
    });
    await t.rejects(resolveNextHop('2001:db8:99::1', { netns: ns }), { code: 'ERR_NO_NEIGHBOUR', message: new RegExp(`^no route to 2001:db8:99::1 in namespace ${ns}`) });
    const t0 = Date.now();
    await t.rejects(resolveNextHop('198.18.0.77', { netns: ns, probeTimeoutMs: 300 }), {
      code: 'ERR_NO_NEIGHBOUR',
      message: `neighbour 198.18.0.77 on veth0 in namespace ${ns} did not answer within 300 ms`,
    });
    t.ok(Date.now() - t0 < 3000, 'bounded by the probe timeout');
    await t.rejects(resolveNextHop('2001:db8::77', { netns: ns, probeTimeoutMs: 200 }), {
      code: 'ERR_NO_NEIGHBOUR',
      message: `neighbour 2001:db8::77 on veth0 in namespace ${ns} did not answer within 200 ms`,
    });
    await t.rejects(linkInfo('nosuch0', { netns: ns }), { code: 'ERR_NO_NEIGHBOUR', message: `device nosuch0 does not exist in namespace ${ns}` });
    t.same(await linkInfo('veth0', { netns: ns }), { mac: tb.mac('a'), mtu: 1500, ifindex: (await linkInfo('veth0', { netns: ns })).ifindex });
  });

  t.test('bad input is refused before any lookup', async (t) => {
    await t.rejects(resolveNextHop('198.18.0.300'), { code: 'ERR_INVALID_ARG', message: 'resolveNextHop: "198.18.0.300" is not an IPv4 or IPv6 address' });
    await t.rejects(resolveNextHop('veth0'), { code: 'ERR_INVALID_ARG', message: 'resolveNextHop: "veth0" is not an IPv4 or IPv6 address' });
    await t.rejects(resolveNextHop(42 as unknown as string), { code: 'ERR_INVALID_ARG', message: 'resolveNextHop: "42" is not an IPv4 or IPv6 address' });
    await t.rejects(resolveNextHop('127.0.0.1', { netns: 'rft-does-not-exist' }), {
      code: 'ERR_INVALID_ARG', message: 'netns: namespace "rft-does-not-exist" does not exist (no /run/netns/rft-does-not-exist)',
    });
    await t.rejects(resolveNextHop('127.0.0.1', { netns: '../etc' }), { code: 'ERR_INVALID_ARG', message: /^netns: "\.\.\/etc" is not a valid netns name \(accepted: 1\.\.64 characters/ });
    await t.rejects(resolveNextHop('127.0.0.1', { probeTimeoutMs: -1 }), { code: 'ERR_INVALID_ARG', message: 'probeTimeoutMs: -1 is outside 0..60000' });
    await t.rejects(linkInfo('a b'), { code: 'ERR_INVALID_ARG', message: /^device: "a b" is not a valid interface name \(accepted: 1\.\.15 characters/ });
  });

  t.test('cache refresh and table watch follow a MAC change', async (t) => {
    const tb = await Testbed.create(t, { hosts: ['a', 'b'], links: [['a', 'b']] });
    const ns = tb.ns('a');
    const cache = new NextHopCache({ netns: ns });
    const dst = tb.addr('b');
    t.equal((await cache.get(dst)).mac, tb.mac('b'));
    let changes = 0;
    const watch = new TableWatch(() => changes++, { netns: ns, debounceMs: 10 });
    t.teardown(() => watch.close());
    await new Promise((r) => setTimeout(r, 100)); // let `ip monitor` subscribe
    const newMac = '02:00:c6:12:00:02';
    await tb.exec('b', ['ip', 'link', 'set', 'veth0', 'address', newMac]);
    await tb.exec('a', ['ip', 'neigh', 'flush', 'dev', 'veth0']);
    t.same(await cache.refresh(), [dst], 'refresh reports the changed destination');
    t.equal((await cache.get(dst)).mac, newMac);
    t.same(await cache.refresh(), [], 'nothing changed since');
    // `ip monitor` may subscribe late on a loaded host: keep changing the table until it reports
    const deadline = Date.now() + 5000;
    while (changes === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      if (changes === 0) {
        await tb.exec('a', ['ip', 'neigh', 'flush', 'dev', 'veth0']);
        await resolveNextHop(dst, { netns: ns });
      }
    }
    t.ok(changes > 0, 'the watch saw the neighbour table change');
  });

  t.test('a cached next hop expires', async (t) => {
    const tb = await Testbed.create(t, { hosts: ['a', 'b'], links: [['a', 'b']] });
    const cache = new NextHopCache({ netns: tb.ns('a'), ttlMs: 150 });
    const first = await cache.get(tb.addr('b'));
    t.equal(await cache.get(tb.addr('b')), first, 'reused within its time');
    // the neighbour changes its MAC: the cache sees it once the entry expired
    await tb.exec('b', ['ip', 'link', 'set', 'veth0', 'address', '02:00:00:00:77:77']);
    await tb.exec('a', ['ip', 'neigh', 'flush', 'dev', 'veth0']);
    await new Promise((r) => setTimeout(r, 200));
    const again = await cache.get(tb.addr('b'));
    t.not(again, first, 'resolved again after ttlMs');
    t.equal(again.mac, '02:00:00:00:77:77', 'with the new MAC');
    t.throws(() => new NextHopCache({ ttlMs: -1 }), { code: 'ERR_INVALID_ARG', message: 'ttlMs: -1 is not a number of ms >= 0' });
  });
}
