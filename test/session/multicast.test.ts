// SPDX-License-Identifier: MIT
// A session sent to a multicast group (issue #14): the engine paces it out
// of its interface to the group's Ethernet address with TTL 16 (no
// neighbour asked, the interface's address as source); a receiver that
// joined the group with an ordinary socket gets every datagram, one bound to
// the group without joining gets none.
import t from 'tap';
import { join } from 'node:path';
import { SessionManager } from '../../src/session/manager';
import { makeDestination } from '../../src/net/destination';
import { parseEndpoint } from '../../src/net/address';
import { Testbed, skipUnlessRoot } from '../helpers/testbed';
import { engineOrSkip, tcpdumpMissing } from '../aggregate/capture';
import { followFixture } from '../helpers/fixture-process';
import { tcpdump } from '../relay/mcast';

const ROOT = join(__dirname, '..', '..', '..');

// bound to the group and port; joins it on IFADDR when given; counts for ms after the first datagram
const RECEIVER = `
const dgram = require('node:dgram');
const [group, port, ifaddr, ms] = process.argv.slice(1);
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
let n = 0, timer = null;
const done = () => { process.stdout.write(JSON.stringify({ received: n }) + '\\n'); process.exit(0); };
s.on('message', () => { n++; if (timer) clearTimeout(timer); timer = setTimeout(done, 1500); });
s.bind(Number(port), group, () => {
  if (ifaddr !== '-') s.addMembership(group, ifaddr);
  process.stdout.write(JSON.stringify({ ready: true }) + '\\n');
  setTimeout(done, Number(ms));
});
`;

if (!skipUnlessRoot(t)) {
  t.test('a session to 239.3.3.3 reaches a joined receiver, not a non-member, with TTL 16 to 01:00:5e:03:03:03', async (t) => {
    const missing = tcpdumpMissing();
    if (missing) {
      process.stderr.write(`# SKIP multicast session: ${missing}\n`);
      t.plan(0, missing);
      return;
    }
    const tb = await Testbed.create(t, { hosts: ['a', 'b', 'c'], segments: [['a', 'b', 'c']] });
    const engine = engineOrSkip(t, { interface: 'veth0', netns: tb.ns('a') });
    if (!engine) return;
    await engine.start();
    t.teardown(() => engine.stop());
    const d = await makeDestination(parseEndpoint('239.3.3.3:8000'), { netns: tb.ns('a'), dev: 'veth0' });
    t.same({ dstMac: d.dstMac, ttl: d.ttl, srcAddr: d.srcAddr, srcMac: d.srcMac }, { dstMac: '01:00:5e:03:03:03', ttl: 16, srcAddr: tb.addr('a'), srcMac: tb.mac('a') },
      'the destination: group MAC, TTL 16, the interface\'s address and MAC');
    const sessions = await SessionManager.create({ region: engine.region, workers: 1, leadMs: 100, startDelayMs: 200, destination: { netns: tb.ns('a'), dev: 'veth0' } });
    t.teardown(() => sessions.close());
    const member = followFixture<{ received: number }>(tb.spawn('b', [process.execPath, '-e', RECEIVER, '239.3.3.3', '8000', tb.addr('b'), '20000']), 'member');
    const stranger = followFixture<{ received: number }>(tb.spawn('c', [process.execPath, '-e', RECEIVER, '239.3.3.3', '8000', '-', '6000']), 'stranger');
    await Promise.all([member.ready, stranger.ready]);
    const wire = await tcpdump(tb, 'c', 'udp and dst host 239.3.3.3', /ttl \d+[^\n]*\n[^\n]*> 239\.3\.3\.3\.8000/, 8000, ['-e']);
    const info = await sessions.start('mc', join(ROOT, 'media/sample.ts'), '239.3.3.3:8000', 'mpegts', false);
    const got = await member.result;
    t.equal(got.received, info.packetsPerPass, `the joined receiver got all ${info.packetsPerPass} datagrams`);
    t.equal((await stranger.result).received, 0, 'the receiver that did not join got none');
    const lines = await wire.lines;
    t.match(lines, new RegExp(`${tb.mac('a')} > 01:00:5e:03:03:03`), 'to the group\'s Ethernet address');
    t.match(lines, /ttl 16,/, 'TTL 16 (the multicast default)');
  });
}
