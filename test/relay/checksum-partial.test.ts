// SPDX-License-Identifier: MIT
// Checksums of frames a local sender left to the device (CHECKSUM_PARTIAL),
// checked for real. The origin's UDP socket sends through a veth with
// checksum offload on, so each frame reaches the relay's interface with only
// the pseudo-header sum in its UDP checksum field. Over veth the receivers
// trust such a frame as it is, so every other relay test would pass a wrong
// pseudo-header update. Here the relay's interface has checksum offload off
// (test/fixtures/ethtool_set.c): the kernel completes each relayed frame's
// checksum in software as it leaves, over the addresses the relay wrote and
// the sum the relay left, and the subscribers' kernels check it: a wrong
// update is a missing datagram and a count in Udp InCsumErrors. IPv4 and
// IPv6, outputs to two hosts (the addresses change) and one from another
// source port (the ports change too), on both tiers.
import t from 'tap';
import { compileFixture } from '../helpers/cc';
import { TIERS, cannotRun, endpoint, makeBed, send, startPorts } from './bed';

const COUNT = 400;
const SIZE = 1000;
const P = 5000;

/** InCsumErrors of the Udp: (IPv4) or Udp6 (IPv6) counters of a host's namespace. */
async function csumErrors(run: (argv: string[]) => Promise<{ stdout: string }>, fam: 4 | 6): Promise<number> {
  if (fam === 4) {
    const lines = (await run(['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
    const names = lines[0].split(/\s+/);
    return Number(lines[1].split(/\s+/)[names.indexOf('InCsumErrors')]);
  }
  const line = (await run(['cat', '/proc/net/snmp6'])).stdout.split('\n').find((l) => l.startsWith('Udp6InCsumErrors'));
  return Number(line?.split(/\s+/)[1]);
}

if (!cannotRun(t)) {
  const tool = compileFixture('ethtool_set');
  if ('missing' in tool) {
    process.stderr.write(`# SKIP checksum-partial: ${tool.missing}\n`);
    t.plan(0, tool.missing);
  } else {
    for (const tier of TIERS) t.test(`a local sender's partial checksums, completed after the relay, are right (${tier} tier)`, async (t) => {
      const bed = await makeBed(t, {}, 2, { relayTier: tier });
      const { tb, relays, engine } = bed;
      const dev = tb.iface('relay').name;
      await tb.exec('relay', [tool.bin, dev, 'tx', 'off']);
      const kBefore = engine.region.kernelCounter('relay_out');
      let k = 0;
      for (const fam of [4, 6] as const) {
        k++;
        const name = `p${fam}`;
        const relayAddr = tb.addr('relay', fam);
        const listen = endpoint(relayAddr, P + k);
        const subs = [
          { host: 's1', port: 21000 + k * 10, source: undefined as string | undefined },
          { host: 's2', port: 21001 + k * 10, source: undefined },
          { host: 's2', port: 21002 + k * 10, source: endpoint(relayAddr, 7777) },
        ];
        await relays.addRelay({ name, listen, sources: [fam === 4 ? '198.18.0.0/16' : '2001:db8::/32'] });
        for (const s of subs) await relays.addOutput(name, endpoint(tb.addr(s.host, fam), s.port), s.source ? { source: s.source } : {});
        const errBefore = await Promise.all(['s1', 's2'].map((h) => csumErrors((a) => tb.exec(h, a), fam)));
        const rx = await Promise.all(['s1', 's2'].map((h) =>
          startPorts(bed, h, tb.addr(h, fam), subs.filter((s) => s.host === h).map((s) => s.port), COUNT, 15000)));
        const sent = await send(bed, endpoint(tb.addr('origin', fam), 4444), listen, COUNT, 1000, SIZE);
        t.equal(sent.sent, COUNT, `IPv${fam}: origin sent ${COUNT} from a UDP socket`);
        const results = await Promise.all(rx.map((r) => r.result));
        for (const r of results) {
          for (const [port, pr] of Object.entries(r.ports)) {
            t.ok(pr.received === COUNT && pr.missing === 0 && pr.bad === 0 && pr.dups === 0,
              `IPv${fam} port ${port}: ${pr.received} of ${COUNT} arrived with a checksum the receiver's kernel accepted, byte-identical (${JSON.stringify({ missing: pr.missing, bad: pr.bad, dups: pr.dups })})`);
          }
        }
        const errAfter = await Promise.all(['s1', 's2'].map((h) => csumErrors((a) => tb.exec(h, a), fam)));
        t.same(errAfter.map((e, i) => e - errBefore[i]), [0, 0], `IPv${fam}: no UDP checksum error at either subscriber`);
        await relays.removeRelay(name);
      }
      t.equal(engine.region.kernelCounter('relay_out') - kBefore, tier === 'kernel' ? BigInt(COUNT * 6) : 0n, `the ${tier} tier sent them all`);
    });
  }
}
