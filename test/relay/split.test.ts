// SPDX-License-Identifier: MIT
// Redirect and split through the engine (issue #4): origin -> relay (the
// engine on AF_PACKET) -> 1, 8 and 64 subscriber sockets on one Ethernet
// segment, IPv4 and IPv6. Every datagram arrives byte-identical (the
// receivers check each payload against its generator; the kernel checked
// the IP and UDP checksums), counts are exact, and the source is the one
// configured (the relay's listen address by default, or `source`).
import t from 'tap';
import { TIERS, cannotRun, endpoint, makeBed, send, startPorts, until } from './bed';

const COUNT = 300;
const SIZE = 1316;
const P = 5000;

if (!cannotRun(t)) {
  for (const tier of TIERS) t.test(`split to 1, 8 and 64 subscribers, IPv4 and IPv6 (${tier} tier)`, async (t) => {
    const bed = await makeBed(t, {}, 2, { relayTier: tier });
    const { tb, relays, engine } = bed;
    const cases: Array<{ fam: 4 | 6; n: number; srcPort?: number }> = [
      { fam: 4, n: 1 },
      { fam: 4, n: 8, srcPort: 7777 },
      { fam: 4, n: 64 },
      { fam: 6, n: 8 },
    ];
    let k = 0;
    for (const c of cases) {
      k++;
      const name = `r${k}`;
      const relayAddr = tb.addr('relay', c.fam);
      const listen = endpoint(relayAddr, P + k);
      const subs: Array<{ host: string; addr: string; port: number }> = [];
      for (let i = 0; i < c.n; i++) {
        const host = i % 2 === 0 ? 's1' : 's2';
        subs.push({ host, addr: tb.addr(host, c.fam), port: 20000 + k * 100 + i });
      }
      await relays.addRelay({ name, listen, sources: [c.fam === 4 ? '198.18.0.0/16' : '2001:db8::/32'] });
      for (const s of subs) {
        await relays.addOutput(name, endpoint(s.addr, s.port), c.srcPort ? { source: endpoint(relayAddr, c.srcPort) } : {});
      }
      const rx = await Promise.all(
        ['s1', 's2'].map((h) => {
          const mine = subs.filter((s) => s.host === h);
          return mine.length ? startPorts(bed, h, tb.addr(h, c.fam), mine.map((s) => s.port), COUNT, 15000) : null;
        }),
      );
      const before = engine.region.counter(1, 'relay_out');
      const kBefore = engine.region.kernelCounter('relay_out');
      const sent = await send(bed, endpoint(tb.addr('origin', c.fam), 4444), listen, COUNT, c.n > 8 ? 500 : 1000, SIZE);
      t.equal(sent.sent, COUNT, `${name}: origin sent ${COUNT}`);
      const results = await Promise.all(rx.map((p) => (p ? p.result : null)));
      const wantSrc = endpoint(relayAddr, c.srcPort ?? P + k);
      let exact = 0;
      for (const r of results) {
        if (!r) continue;
        for (const [port, pr] of Object.entries(r.ports)) {
          const ok = pr.received === COUNT && pr.missing === 0 && pr.dups === 0 && pr.bad === 0 &&
            Object.keys(pr.sources).length === 1 && pr.sources[wantSrc] === COUNT;
          if (ok) exact++;
          else t.fail(`${name} port ${port}: ${JSON.stringify({ ...pr })}`);
        }
      }
      if (exact !== c.n) {
        const names = ['rx_packets', 'relay_in', 'relay_out', 'drop_tx_full', 'tx_ring_full', 'drop_malformed', 'rx_unmatched'];
        t.comment(names.map((n) => `${n}=${engine.region.counter(1, n)}`).join(' '));
      }
      t.equal(exact, c.n, `IPv${c.fam} 1:${c.n}: all ${c.n} subscribers got ${COUNT} byte-identical datagrams from ${wantSrc}, no loss, no duplicate`);
      await until(() => engine.region.counter(1, 'relay_out') - before >= BigInt(COUNT * c.n));
      t.equal(engine.region.counter(1, 'relay_out') - before, BigInt(COUNT * c.n), `relay_out counted ${COUNT * c.n}`);
      // the tier under test did the relaying: the tc program (kernel) or the RX thread (user)
      t.equal(engine.region.kernelCounter('relay_out') - kBefore, tier === 'kernel' ? BigInt(COUNT * c.n) : 0n, `the ${tier} tier sent them all`);
      const st = relays.outputStats(name, endpoint(subs[0].addr, subs[0].port));
      t.equal(st?.packets, BigInt(COUNT), 'per-output packet counter exact');
      t.equal(st?.bytes, BigInt(COUNT * (SIZE + (c.fam === 4 ? 42 : 62))), 'per-output byte counter: frames of header + payload');
      t.equal(relays.relayStats(name)?.packets, BigInt(COUNT), 'per-relay counter: every datagram matched');
      await relays.removeRelay(name);
    }
    for (const c of ['drop_malformed', 'drop_not_allowed', 'drop_no_neighbour', 'drop_tx_full']) {
      t.equal(engine.region.counter(1, c), 0n, `${c} stays 0`);
    }
  });
}
