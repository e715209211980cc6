// SPDX-License-Identifier: MIT
// Multicast egress (issue #14): a relay output that is a group leaves the
// engine's interface as one frame to the group's Ethernet address
// (01:00:5e + the low 23 bits), with the configured TTL (default 16), no
// neighbour asked. Receivers are ordinary kernel sockets: the three that
// joined the group with IP_ADD_MEMBERSHIP get every datagram, the one bound
// to the group and port without joining gets none.
import t from 'tap';
import { TIERS, cannotRun, endpoint, makeBed, send, startPorts, until } from './bed';
import { hasTcpdump, tcpdump } from './mcast';

const COUNT = 1000;

if (!cannotRun(t)) {
  for (const tier of TIERS) t.test(`a relay output to 239.2.2.2: every joined receiver gets every datagram, a receiver that did not join gets none (${tier} tier)`, async (t) => {
    // the neighbour resolver must not be asked for a group: a refusing one proves it
    const bed = await makeBed(t, { resolve: async (dst) => { throw new Error(`the resolver was asked for ${dst}`); } }, 4, { relayTier: tier });
    const { tb, relays, engine } = bed;
    const listen = endpoint(tb.addr('relay'), 5000);
    const group = '239.2.2.2';
    await relays.addRelay({ name: 'out', listen, sources: ['198.18.0.0/15'], multicastTtl: 7 });
    await relays.addOutput('out', endpoint(group, 6000));
    const joined = ['s1', 's2', 's3'];
    const rx = await Promise.all(joined.map((h) => startPorts(bed, h, group, [6000], COUNT, 20_000, 2000, tb.addr(h))));
    const stranger = await startPorts(bed, 's4', group, [6000], COUNT, 8000, 8000);
    const wire = hasTcpdump()
      ? await tcpdump(tb, 's4', `udp and dst host ${group}`, /ttl \d+[^\n]*\n[^\n]*> 239\.2\.2\.2\.6000/, 8000, ['-e'])
      : null;
    const sent = await send(bed, endpoint(tb.addr('origin'), 4444), listen, COUNT, 1000, 300);
    t.equal(sent.sent, COUNT, `origin sent ${COUNT}`);
    const results = await Promise.all(rx.map((r) => r.result));
    results.forEach((r, i) => {
      const p = r.ports['6000'];
      t.same({ received: p.received, missing: p.missing, dups: p.dups, bad: p.bad, sources: p.sources },
        { received: COUNT, missing: 0, dups: 0, bad: 0, sources: { [listen]: COUNT } }, `${joined[i]} (joined ${group}): every datagram once, from ${listen}`);
    });
    const s = (await stranger.result).ports['6000'];
    t.equal(s.received, 0, 's4 (bound to the group, not joined) got none');
    if (wire) {
      const lines = await wire.lines;
      t.match(lines, /> 01:00:5e:02:02:02/, 'the frame goes to the group\'s Ethernet address 01:00:5e:02:02:02');
      t.match(lines, /ttl 7,/, 'TTL 7 on the wire, as configured (multicastTtl)');
    } else {
      t.comment('tcpdump not installed: the wire is not checked');
    }
    await until(() => relays.outputStats('out', `${group}:6000`)?.packets === BigInt(COUNT));
    t.equal(relays.outputStats('out', `${group}:6000`)?.packets, BigInt(COUNT), 'one output counted every datagram once (one frame for every receiver)');
    t.equal(engine.region.counter(1, 'drop_no_neighbour'), 0n, 'no neighbour needed');
  });

  t.test('a multicast output without a configured TTL leaves with 16; an IPv6 group with hop limit 16 to 33:33:..', async (t) => {
    const bed = await makeBed(t, { resolve: async (dst) => { throw new Error(`the resolver was asked for ${dst}`); } }, 1);
    const { tb, relays } = bed;
    if (!hasTcpdump()) {
      t.comment('tcpdump not installed: nothing to look at');
      return;
    }
    await relays.addRelay({ name: 'v4', listen: endpoint(tb.addr('relay'), 5000), sources: ['198.18.0.0/15'], subscribers: ['239.2.2.3:6000'] });
    await relays.addRelay({ name: 'v6', listen: endpoint(tb.addr('relay', 6), 5000), sources: ['2001:db8::/32'], subscribers: ['[ff3e::2]:6000'] });
    const w4 = await tcpdump(tb, 's1', 'udp and dst host 239.2.2.3', /ttl \d+/, 8000, ['-e']);
    await send(bed, endpoint(tb.addr('origin'), 4444), endpoint(tb.addr('relay'), 5000), 20, 200, 100);
    const l4 = await w4.lines;
    t.match(l4, /> 01:00:5e:02:02:03/, 'to 01:00:5e:02:02:03');
    t.match(l4, /ttl 16,/, 'TTL 16 by default');
    const w6 = await tcpdump(tb, 's1', 'udp and dst host ff3e::2', /hlim \d+/, 8000, ['-e']);
    await send(bed, endpoint(tb.addr('origin', 6), 4444), endpoint(tb.addr('relay', 6), 5000), 20, 200, 100);
    const l6 = await w6.lines;
    t.match(l6, /> 33:33:00:00:00:02/, 'to 33:33:00:00:00:02');
    t.match(l6, /hlim 16,/, 'hop limit 16 by default');
  });
}
