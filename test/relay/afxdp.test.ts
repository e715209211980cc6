// SPDX-License-Identifier: MIT
// The relay on backend afxdp (issue #2's AF_XDP port): the engine's TX
// thread owns an AF_XDP socket on the relay's interface, and the RX thread
// keeps its AF_PACKET port (ring, filter, TX ring), so redirect and split
// work unchanged: origin -> relay -> 8 subscriber sockets, every datagram
// byte-identical, counts exact. Skips loudly without AF_XDP sockets.
import t from 'tap';
import { TIERS, cannotRun, endpoint, makeBed, send, startPorts, until } from './bed';

const COUNT = 300;
const SIZE = 1316;
const P = 5100;

if (!cannotRun(t)) {
  for (const tier of TIERS) t.test(`split 1:8 (IPv4) with the engine on backend afxdp (${tier} tier)`, async (t) => {
    let bed;
    try {
      bed = await makeBed(t, {}, 2, { backend: 'afxdp', relayTier: tier });
    } catch (e) {
      const m = (e as Error).message;
      if (/socket\(AF_XDP\) failed/.test(m)) {
        process.stderr.write(`# SKIP relay on afxdp: ${m}\n`);
        t.plan(0, `no AF_XDP sockets here: ${m}`);
        return;
      }
      throw e;
    }
    const { tb, relays, engine } = bed;
    t.equal(engine.backend, 'afxdp');
    const listen = endpoint(tb.addr('relay'), P);
    const subs = Array.from({ length: 8 }, (_, i) => ({ host: i % 2 === 0 ? 's1' : 's2', port: 21000 + i }));
    await relays.addRelay({ name: 'x', listen, sources: ['198.18.0.0/16'] });
    for (const s of subs) await relays.addOutput('x', endpoint(tb.addr(s.host), s.port));
    const rx = await Promise.all(
      ['s1', 's2'].map((h) => startPorts(bed, h, tb.addr(h), subs.filter((s) => s.host === h).map((s) => s.port), COUNT, 15000)),
    );
    const sent = await send(bed, endpoint(tb.addr('origin'), 4444), listen, COUNT, 1000, SIZE);
    t.equal(sent.sent, COUNT, `origin sent ${COUNT}`);
    let exact = 0;
    for (const r of await Promise.all(rx.map((p) => p.result))) {
      for (const [port, pr] of Object.entries(r.ports)) {
        if (pr.received === COUNT && pr.missing === 0 && pr.dups === 0 && pr.bad === 0 && pr.sources[listen] === COUNT) exact++;
        else t.fail(`port ${port}: ${JSON.stringify({ ...pr })}`);
      }
    }
    t.equal(exact, 8, `all 8 subscribers got ${COUNT} byte-identical datagrams from ${listen}, no loss, no duplicate`);
    await until(() => engine.region.counter(1, 'relay_out') >= BigInt(COUNT * 8));
    t.equal(engine.region.counter(1, 'relay_out'), BigInt(COUNT * 8), `relay_out counted ${COUNT * 8}`);
    for (const c of ['drop_malformed', 'drop_not_allowed', 'drop_no_neighbour', 'drop_tx_full', 'drop_tx_error']) {
      t.equal(engine.region.counter(1, c), 0n, `${c} stays 0`);
    }
  });
}
