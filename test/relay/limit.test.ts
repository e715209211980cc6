// SPDX-License-Identifier: MIT
// A relay's ingress limit with real packets: above max_pps / max_bps the
// engine drops and counts (drop_rate_limit, the relay's own drops); what it
// takes in reaches the subscriber; every frame is either taken or counted.
// The limit changes live, and 0 lifts it.
import t from 'tap';
import { TIERS, cannotRun, endpoint, makeBed, send, startPorts } from './bed';

if (!cannotRun(t)) {
  for (const tier of TIERS) t.test(`max_pps and max_bps drop and count above the limit (${tier} tier)`, async (t) => {
    const bed = await makeBed(t, {}, 1, { relayTier: tier });
    const { tb, relays, engine } = bed;
    const listen = endpoint(tb.addr('relay'), 5000);
    const from = endpoint(tb.addr('origin'), 4444);
    await relays.addRelay({ name: 'lim', listen, sources: [`${tb.addr('origin')}/32`], subscribers: [endpoint(tb.addr('s1'), 6000)], maxPps: 500 });
    const c = (n: string): bigint => engine.region.counter(1, n);

    const run = async (count: number, pps: number, size: number): Promise<{ received: number; took: number; d: Record<string, bigint> }> => {
      const names = ['relay_in', 'drop_rate_limit', 'drop_not_allowed'];
      const c0 = Object.fromEntries(names.map((n) => [n, c(n)]));
      const s0 = relays.relayStats('lim')!;
      const rx = await startPorts(bed, 's1', tb.addr('s1'), [6000], count, 8000, 800);
      const t0 = Date.now();
      await send(bed, from, listen, count, pps, size);
      const took = (Date.now() - t0) / 1000;
      const got = (await rx.result).ports['6000'];
      const s1 = relays.relayStats('lim')!;
      const d: Record<string, bigint> = Object.fromEntries(names.map((n) => [n, c(n) - c0[n]]));
      d.packets = s1.packets - s0.packets;
      d.rateLimited = s1.rateLimited - s0.rateLimited;
      d.notAllowed = s1.notAllowed - s0.notAllowed;
      return { received: got?.received ?? 0, took, d };
    };

    const k0 = engine.region.kernelCounter('drop_rate_limit');
    const a = await run(3000, 3000, 200);
    // the tier under test holds the limit: the tc program's token buckets (kernel) or the RX thread's (user)
    t.equal(engine.region.kernelCounter('drop_rate_limit') - k0, tier === 'kernel' ? a.d.drop_rate_limit : 0n, `the ${tier} tier counted the limited frames`);
    t.comment(`3000 at 3000 pps in ${a.took.toFixed(2)} s: relay_in ${a.d.relay_in}, taken ${a.d.packets}, limited ${a.d.rateLimited}, received ${a.received}`);
    t.equal(a.d.packets + a.d.rateLimited, a.d.relay_in, 'every frame that reached the relay was taken in or counted as limited');
    t.equal(a.d.drop_rate_limit, a.d.rateLimited, 'drop_rate_limit = the relay\'s own count');
    t.equal(a.d.notAllowed, 0n, 'none counted as not allowed');
    t.equal(BigInt(a.received), a.d.packets, 'what it took in reached the subscriber');
    // a 100 ms bucket (50 packets) plus 500/s while the sender sent
    t.ok(a.d.packets <= BigInt(Math.ceil(50 + 500 * (a.took + 0.1))), `no more than the limit lets through (${a.d.packets})`);
    t.ok(a.d.packets >= 300n, `and about the limit (${a.d.packets} >= 300)`);
    t.ok(a.d.rateLimited >= 1500n, `most of the excess was dropped (${a.d.rateLimited})`);

    await relays.setLimit('lim', { maxPps: 0 });
    const b = await run(400, 2000, 200);
    t.equal(b.d.rateLimited, 0n, 'no limit: nothing limited');
    t.equal(b.d.packets, b.d.relay_in, 'everything taken in');

    // 100 kB/s of frames (max_bps 800000): 1042-byte frames at 2000/s for 0.5 s offer 1 MB/s
    await relays.setLimit('lim', { maxBps: 800_000 });
    const bb = await run(1000, 2000, 1000);
    t.comment(`bytes: taken ${bb.d.packets}, limited ${bb.d.rateLimited} in ${bb.took.toFixed(2)} s`);
    t.equal(bb.d.packets + bb.d.rateLimited, bb.d.relay_in, 'every frame taken or counted');
    // one 64 KiB datagram's worth of bucket (62 frames) plus 100 kB/s (96 frames/s)
    t.ok(bb.d.packets <= BigInt(Math.ceil(63 + 96 * (bb.took + 0.1))), `bytes per second bounded (${bb.d.packets})`);
    t.ok(bb.d.rateLimited >= 500n, `the rest dropped (${bb.d.rateLimited})`);
  });
}
