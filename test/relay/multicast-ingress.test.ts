// SPDX-License-Identifier: MIT
// Multicast ingress (issue #14): a relay listening on a group joins it on the
// engine's interface (a kernel socket: the IGMPv3 / MLDv2 report is the
// kernel's, seen here on the origin's segment with tcpdump), shows in
// `ip maddr`, relays every datagram sent to the group to its unicast
// subscribers exactly once, and leaves the group when it goes.
import t from 'tap';
import { TIERS, cannotRun, endpoint, makeBed, seqUdp, until } from './bed';
import { IGMP, MLD2, groupRoute, hasTcpdump, maddr, tcpdump } from './mcast';
import { send, startPorts } from './bed';

const COUNT = 20_000;
const IGMP_REPORT = /igmp v3 report[^\n]*gaddr 239\.1\.1\.1/;
const MLD_REPORT = /multicast listener report v2[^\n]*gaddr ff3e::1 /;
const SIZE = 200;

if (!cannotRun(t)) {
  for (const tier of TIERS) for (const fam of [4, 6] as const) {
    t.test(`IPv${fam}: ${COUNT} datagrams to a group split to 3 unicast subscribers, each exactly once (${tier} tier)`, async (t) => {
      const bed = await makeBed(t, {}, 3, { relayTier: tier });
      const { tb, relays, engine } = bed;
      // the C fixtures (a fraction of the CPU) speak IPv4 only: IPv6 uses the Node ones
      const c = seqUdp(bed);
      if ('missing' in c) throw new Error(`seq_udp fixture cannot be built: ${c.missing}`);
      const seq = fam === 4 ? c : {
        startPorts: (h: string, a: string, p: number[], n: number, ms: number) => startPorts(bed, h, a, p, n, ms),
        send: (f: string, to: string, n: number, pps: number, size: number) => send(bed, f, to, n, pps, size),
      };
      if (fam === 4) await groupRoute(tb, 'origin');
      const group = fam === 4 ? '239.1.1.1' : 'ff3e::1';
      const listen = endpoint(group, 5000);
      const dump = hasTcpdump()
        ? await tcpdump(tb, 'origin', fam === 4 ? IGMP : MLD2, fam === 4 ? IGMP_REPORT : MLD_REPORT, 8000)
        : null;
      const subs = ['s1', 's2', 's3'].map((h, i) => ({ host: h, addr: tb.addr(h, fam), port: 7000 + i }));
      await relays.addRelay({ name: 'tv', listen, sources: [fam === 4 ? '198.18.0.0/15' : '2001:db8::/32'], subscribers: subs.map((s) => endpoint(s.addr, s.port)) });
      t.same(relays.list()[0].join, 'asm', 'a prefix (not single hosts) in sources: an any-source join');
      const m = await maddr(tb, 'relay');
      t.match(m, new RegExp(`inet6?\\s+${group.replace(/\./g, '\\.')}\\b`), `ip maddr on the relay host lists ${group}`);
      if (dump) {
        const report = await dump.lines;
        if (fam === 4) t.match(report, IGMP_REPORT, 'an IGMPv3 report for 239.1.1.1 on the origin\'s segment');
        else t.match(report, MLD_REPORT, 'an MLDv2 report for ff3e::1 on the origin\'s segment');
      } else {
        t.comment('tcpdump not installed: the report on the wire is not checked');
      }
      const kBefore = engine.region.kernelCounter('relay_out');
      const rx = await Promise.all(subs.map((s) => seq.startPorts(s.host, s.addr, [s.port], COUNT, 60_000)));
      const sent = await seq.send(endpoint(tb.addr('origin', fam), 4444), listen, COUNT, 5000, SIZE);
      t.equal(sent.sent, COUNT, `origin sent ${COUNT} to ${listen}`);
      const results = await Promise.all(rx.map((r) => r.result));
      results.forEach((r, i) => {
        const p = r.ports[String(subs[i].port)];
        t.same({ received: p.received, missing: p.missing, dups: p.dups, bad: p.bad }, { received: COUNT, missing: 0, dups: 0, bad: 0 },
          `${subs[i].host}: every datagram exactly once, intact`);
      });
      await until(() => relays.relayStats('tv')?.packets === BigInt(COUNT));
      t.equal(relays.relayStats('tv')?.packets, BigInt(COUNT), 'the relay matched every datagram');
      t.equal(engine.region.counter(1, 'drop_not_allowed'), 0n, 'nothing dropped as not allowed');
      t.equal(engine.region.kernelCounter('relay_out') - kBefore, tier === 'kernel' ? BigInt(COUNT * 3) : 0n, `the ${tier} tier sent them all`);
      await relays.removeRelay('tv');
      t.notMatch(await maddr(tb, 'relay'), new RegExp(`${group.replace(/\./g, '\\.')}\\b`), 'the group is left with the relay');
    });
  }

  t.test('source-specific: a second origin to the same group and port is not relayed', async (t) => {
    const bed = await makeBed(t, {}, 2);
    const { tb, relays } = bed;
    const seq = seqUdp(bed);
    if ('missing' in seq) throw new Error(`seq_udp fixture cannot be built: ${seq.missing}`);
    await groupRoute(tb, 'origin');
    await groupRoute(tb, 's2');
    const listen = '232.1.1.1:5000';
    const SSM_REPORT = /gaddr 232\.1\.1\.1 (allow|is_in) \{ [\d.]+ \}/;
    const dump = hasTcpdump() ? await tcpdump(tb, 'origin', IGMP, SSM_REPORT, 8000, ['-v']) : null;
    await relays.addRelay({ name: 'ssm', listen, sources: [`${tb.addr('origin')}/32`], subscribers: [endpoint(tb.addr('s1'), 7100)] });
    t.same(relays.list()[0].join, 'ssm', 'sources of single hosts: a source-specific join (derived)');
    const filt = (await tb.exec('relay', ['cat', '/proc/net/mcfilter'])).stdout;
    const hex = (a: string): string => a.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join('');
    t.match(filt.toLowerCase(), new RegExp(`0x${hex('232.1.1.1')}\\s+0x${hex(tb.addr('origin'))}`), 'the kernel holds the source filter (232.1.1.1, origin)');
    if (dump) t.match(await dump.lines, new RegExp(`gaddr 232\\.1\\.1\\.1 (allow|is_in) \\{ ${tb.addr('origin').replace(/\./g, '\\.')} \\}`), 'the IGMPv3 report names the source (an SSM join)');
    const rx = await seq.startPorts('s1', tb.addr('s1'), [7100], 500, 20_000, 2000);
    // the stranger (s2) first, then the allowed origin: s1 must get the origin's 500 only
    const a = await seqSendFrom(bed, 's2', endpoint(tb.addr('s2'), 4444), listen, 300);
    t.equal(a, 300, 'the stranger sent 300');
    const sent = await seq.send(endpoint(tb.addr('origin'), 4444), listen, 500, 2000, 200);
    t.equal(sent.sent, 500);
    const r = (await rx.result).ports['7100'];
    t.same({ received: r.received, dups: r.dups, missing: r.missing }, { received: 500, dups: 0, missing: 0 }, 's1 got the origin\'s 500 once each, none of the stranger\'s');
    await until(() => (relays.relayStats('ssm')?.notAllowed ?? 0n) >= 300n);
    t.equal(relays.relayStats('ssm')?.notAllowed, 300n, 'the stranger\'s 300 were dropped and counted (not_allowed)');
  });

  t.test('two relays on one port, different groups: no crosstalk', async (t) => {
    const bed = await makeBed(t, {}, 2);
    const { tb, relays } = bed;
    const seq = seqUdp(bed);
    if ('missing' in seq) throw new Error(`seq_udp fixture cannot be built: ${seq.missing}`);
    await groupRoute(tb, 'origin');
    const src = ['198.18.0.0/15'];
    await relays.addRelay({ name: 'g1', listen: '239.1.1.1:5000', sources: src, subscribers: [endpoint(tb.addr('s1'), 7201)] });
    await relays.addRelay({ name: 'g2', listen: '239.1.1.2:5000', sources: src, subscribers: [endpoint(tb.addr('s2'), 7202)] });
    const m = await maddr(tb, 'relay');
    t.match(m, /239\.1\.1\.1\b/, 'joined 239.1.1.1');
    t.match(m, /239\.1\.1\.2\b/, 'joined 239.1.1.2');
    const r1 = await seq.startPorts('s1', tb.addr('s1'), [7201], 1000, 20_000, 2000);
    const r2 = await seq.startPorts('s2', tb.addr('s2'), [7202], 600, 20_000, 2000);
    // a third group on the same port that no relay listens on: left to the kernel
    await seq.send(endpoint(tb.addr('origin'), 4444), '239.1.1.3:5000', 200, 2000, 200);
    await seq.send(endpoint(tb.addr('origin'), 4444), '239.1.1.1:5000', 1000, 2000, 200);
    await seq.send(endpoint(tb.addr('origin'), 4445), '239.1.1.2:5000', 600, 2000, 200);
    const a = (await r1.result).ports['7201'];
    const b = (await r2.result).ports['7202'];
    t.same({ received: a.received, dups: a.dups, missing: a.missing }, { received: 1000, dups: 0, missing: 0 }, 'g1\'s subscriber: 239.1.1.1\'s 1000 only');
    t.same({ received: b.received, dups: b.dups, missing: b.missing }, { received: 600, dups: 0, missing: 0 }, 'g2\'s subscriber: 239.1.1.2\'s 600 only');
    t.equal(relays.relayStats('g1')?.packets, 1000n, 'g1 matched its group only');
    t.equal(relays.relayStats('g2')?.packets, 600n, 'g2 matched its group only');
    await relays.removeRelay('g1');
    const after = await maddr(tb, 'relay');
    t.notMatch(after, /239\.1\.1\.1\b/, 'g1 gone: 239.1.1.1 left');
    t.match(after, /239\.1\.1\.2\b/, 'g2 keeps 239.1.1.2');
  });
}

/** seq_udp send from another host than the origin. */
async function seqSendFrom(bed: Parameters<typeof seqUdp>[0], host: string, from: string, to: string, count: number): Promise<number> {
  const { compileFixture } = await import('../helpers/cc');
  const { followFixture } = await import('../helpers/fixture-process');
  const cc = compileFixture('seq_udp');
  if ('missing' in cc) throw new Error(cc.missing);
  const child = bed.tb.spawn(host, [cc.bin, 'send', '--from', from, '--to', to, '--count', String(count), '--pps', '2000', '--size', '200']);
  return (await followFixture<{ sent: number }>(child, `seq_udp send in ${host}`).result).sent;
}
