// SPDX-License-Identifier: MIT
// What a relay must not do (issue #4): relay for a source outside its
// allowed prefixes (an open amplifier), or let the kernel answer datagrams
// the engine consumed (ICMP port unreachable back to the origin). The ICMP
// check reads the origin's own counters (/proc/net/snmp, snmp6); a control
// run with the engine's tc program removed shows the kernel would answer,
// so the check can fail.
import t from 'tap';
import { TIERS, cannotRun, endpoint, makeBed, send, startPorts, until } from './bed';
import type { Testbed } from '../helpers/testbed';

async function snmp(tb: Testbed, host: string, fam: 4 | 6, key: string): Promise<number> {
  if (fam === 4) {
    const lines = (await tb.exec(host, ['cat', '/proc/net/snmp'])).stdout.split('\n');
    const [proto, field] = key.split('.');
    const rows = lines.filter((l) => l.startsWith(`${proto}:`));
    const names = rows[0].split(/\s+/);
    const vals = rows[1].split(/\s+/);
    return Number(vals[names.indexOf(field)]);
  }
  const m = new RegExp(`^${key}\\s+(\\d+)`, 'm').exec((await tb.exec(host, ['cat', '/proc/net/snmp6'])).stdout);
  return m ? Number(m[1]) : NaN;
}

if (!cannotRun(t)) {
  for (const tier of TIERS) t.test(`sources outside the prefixes are dropped and counted; no ICMP unreachable reaches the origin (${tier} tier)`, async (t) => {
    const bed = await makeBed(t, {}, 2, { relayTier: tier });
    const { tb, relays, engine } = bed;
    for (const fam of [4, 6] as const) {
      const name = `g${fam}`;
      const listen = endpoint(tb.addr('relay', fam), 5000);
      const sub = endpoint(tb.addr('s1', fam), 6000);
      // only the origin may send
      await relays.addRelay({ name, listen, sources: [`${tb.addr('origin', fam)}/${fam === 4 ? 32 : 128}`], subscribers: [sub] });
      const unreach = fam === 4 ? 'Icmp.InDestUnreachs' : 'Icmp6InDestUnreachs';
      const icmpBefore = await snmp(tb, 'origin', fam, unreach);
      const icmpS2Before = await snmp(tb, 's2', fam, unreach);
      const noPortsBefore = await snmp(tb, 'relay', fam, fam === 4 ? 'Udp.NoPorts' : 'Udp6NoPorts');
      const rx = await startPorts(bed, 's1', tb.addr('s1', fam), [6000], 200, 8000, 1000);

      const notAllowedBefore = engine.region.counter(1, 'drop_not_allowed');
      // s2 is on the same segment but not allowed
      const child = tb.spawn('s2', [process.execPath, require.resolve('./origin-sender'), '--from', endpoint(tb.addr('s2', fam), 4444),
        '--to', listen, '--count', '50', '--pps', '1000', '--size', '100']);
      await new Promise<void>((r) => child.on('exit', () => r()));
      await send(bed, endpoint(tb.addr('origin', fam), 4444), listen, 200, 1000, 100);
      const res = (await rx.result).ports['6000'];
      t.equal(res.received, 200, `IPv${fam}: the allowed origin's 200 datagrams relayed`);
      t.same(Object.keys(res.sources), [endpoint(tb.addr('relay', fam), 5000)], `IPv${fam}: nothing from the refused source`);
      await until(() => engine.region.counter(1, 'drop_not_allowed') - notAllowedBefore >= 50n);
      t.equal(engine.region.counter(1, 'drop_not_allowed') - notAllowedBefore, 50n, `IPv${fam}: drop_not_allowed counts the 50 refused`);
      t.equal(relays.relayStats(name)?.notAllowed, 50n, `IPv${fam}: the relay's own drop counter says 50`);
      t.equal(relays.relayStats(name)?.packets, 200n, `IPv${fam}: the relay matched 200`);
      t.equal(await snmp(tb, 'origin', fam, unreach), icmpBefore, `IPv${fam}: no ICMP unreachable reached the origin`);
      t.equal(await snmp(tb, 's2', fam, unreach), icmpS2Before, `IPv${fam}: none reached the refused sender either`);
      t.equal(await snmp(tb, 'relay', fam, fam === 4 ? 'Udp.NoPorts' : 'Udp6NoPorts'), noPortsBefore, `IPv${fam}: the relay host's UDP layer never saw them`);
    }

    // control: without the engine's tc program the kernel answers, so the checks above can fail
    await tb.exec('relay', ['tc', 'filter', 'del', 'dev', tb.iface('relay').name, 'ingress']);
    const before = await snmp(tb, 'origin', 4, 'Icmp.InDestUnreachs');
    await send(bed, endpoint(tb.addr('origin', 4), 4445), endpoint(tb.addr('relay', 4), 5000), 20, 1000, 100);
    await until(() => false, 300);
    t.ok((await snmp(tb, 'origin', 4, 'Icmp.InDestUnreachs')) > before, 'control: with the tc program removed, the origin gets ICMP port unreachable');
  });
}
