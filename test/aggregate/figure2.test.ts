// SPDX-License-Identifier: MIT
// The patent's Figure 2 with real packets: seven packets for three users,
// handed to the engine as ONE aggregate in scrambled order, leave in the
// order of their transmission times, each to its user, with the given
// spacing (1 T = 1 ms). Then the three time forms end to end. Timing is
// asserted loosely (the VM pauses 1-4 ms now and then); order exactly.
import t from 'tap';
import { Aggregate } from '../../src/aggregate/aggregate';
import { parseEndpoint } from '../../src/net/address';
import { makeDestination } from '../../src/net/destination';
import { Testbed, skipUnlessRoot } from '../helpers/testbed';
import { engineOrSkip, startCapture, tcpdumpMissing, type Captured } from './capture';

const USERS = { U1: 7001, U2: 7002, U3: 7003 } as const;
const VIDEOS = { V1: 11, V2: 12, V3: 13 } as const; // stream ids
// loose on purpose: the VM pauses 1-4 ms now and then, and tests run two at a time
const GAP_TOLERANCE_MS = 8;
// the first packet leaves this long after the aggregate is built: a stall of the test process
// (two test files run at once) must not make the whole aggregate late and collapse its spacing
const LEAD_NS = 200_000_000n;

// Figure 2: file F1 -> A B C (V1), F2 -> D E (V2), F3 -> F G (V3)
const FIGURE2 = [
  { label: "A''", t: 14, user: 'U1', video: 'V1' },
  { label: "B''", t: 19, user: 'U1', video: 'V1' },
  { label: "C''", t: 50, user: 'U1', video: 'V1' },
  { label: "D''", t: 15, user: 'U2', video: 'V2' },
  { label: "E''", t: 18, user: 'U2', video: 'V2' },
  { label: "F''", t: 13, user: 'U3', video: 'V3' },
  { label: "G''", t: 16, user: 'U3', video: 'V3' },
] as const;

const label = (p: Captured): string => p.payload.toString('latin1').split('|')[0];
const gapsMs = (ps: Captured[]): number[] => ps.slice(1).map((p, i) => (p.timeNs - ps[i].timeNs) / 1e6);

function payload(text: string): Uint8Array {
  // a recognisable label, padded to a media-like size
  const b = Buffer.alloc(400, 0x2e);
  b.write(`${text}|`, 'latin1');
  return b;
}

if (!skipUnlessRoot(t)) {
  t.test('aggregate timed transmit on a veth pair', async (t) => {
    const noCapture = tcpdumpMissing();
    if (noCapture) {
      process.stderr.write(`# SKIP figure 2: ${noCapture}\n`);
      t.plan(0, noCapture);
      return;
    }
    const tb = await Testbed.create(t, { hosts: ['a', 'b'], links: [['a', 'b']] });
    const engine = engineOrSkip(t, { interface: 'veth0', netns: tb.ns('a') });
    if (!engine) return;
    await engine.start();
    const lane = engine.region.lane(0);
    const dest: Record<string, number> = {};
    let k = 0;
    for (const [user, port] of Object.entries(USERS)) {
      dest[user] = lane.destFirst + k++;
      lane.writeDest(dest[user], await makeDestination(parseEndpoint(`${tb.addr('b')}:${port}`), { netns: tb.ns('a'), dev: 'veth0' }));
    }

    await t.test("Figure 2: F'' A'' D'' G'' E'' B'' C'', each to its user, with the given spacing", async (t) => {
      const want = [1, 1, 1, 2, 1, 31];
      const inTime = (gaps: number[]): boolean => gaps.every((g, i) => Math.abs(g - want[i]) < GAP_TOLERANCE_MS);
      const consumed = engine.region.counter(0, 'desc_consumed');
      const before = Object.fromEntries(Object.entries(VIDEOS).map(([v, s]) => [v, engine.region.streamCounters(s).packets]));
      // The order and the users are asserted on every attempt; the spacing on
      // the first attempt the host did not stall: a vCPU pause or a preempted
      // TX thread (two test files run at once on two vCPUs) delays one packet
      // by 10-15 ms now and then, and a stall is not the engine's schedule.
      // A schedule that is wrong is wrong every time: 3 attempts fail.
      const ATTEMPTS = 3;
      let got: Captured[] = [];
      let attempt = 0;
      const tried: string[] = [];
      for (; attempt < ATTEMPTS; attempt++) {
        const cap = await startCapture(tb, 'b', 'veth0', 'udp and portrange 7001-7003', 7, 5000);
        const agg = new Aggregate(lane, { base: process.hrtime.bigint() + LEAD_NS });
        for (const i of [2, 0, 6, 4, 1, 5, 3]) {
          const p = FIGURE2[i]; // scrambled: C A G E B F D
          agg.add(payload(p.label), dest[p.user], VIDEOS[p.video], { offset: p.t, unit: 'ms' });
        }
        t.equal(agg.submit(), 7, 'one aggregate of 7 packets, one submission');
        got = await cap.done;
        t.same(got.map(label), ["F''", "A''", "D''", "G''", "E''", "B''", "C''"], 'the order of the transmission times');
        const byLabel = Object.fromEntries(FIGURE2.map((p) => [p.label, USERS[p.user]]));
        t.same(got.map((p) => p.dstPort), got.map((p) => byLabel[label(p)]), 'each to its user');
        const gaps = gapsMs(got);
        tried.push(gaps.map((g) => g.toFixed(3)).join(' '));
        t.comment(`attempt ${attempt + 1}: gaps ms: ${tried[attempt]} (want ${want.join(' ')})`);
        if (got.length === 7 && inTime(gaps)) break;
      }
      const gaps = gapsMs(got);
      if (attempt === ATTEMPTS) t.comment(`no attempt in time: ${tried.join(' | ')}`);
      gaps.forEach((g, i) => t.ok(Math.abs(g - want[i]) < GAP_TOLERANCE_MS, `gap ${i}: ${g.toFixed(2)} ms ~ ${want[i]} ms`));
      t.ok(Math.abs((got[6].timeNs - got[0].timeNs) / 1e6 - 37) < GAP_TOLERANCE_MS, 'T13..T50 spans 37 ms');
      const sent = Math.min(attempt + 1, ATTEMPTS);
      t.equal(engine.region.counter(0, 'desc_consumed') - consumed, BigInt(7 * sent), `the engine took 7 descriptors per aggregate (${sent} sent)`);
      const deadline = Date.now() + 1000;
      while (engine.region.streamCounters(VIDEOS.V1).packets - before.V1 < BigInt(3 * sent) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      t.same(
        Object.entries(VIDEOS).map(([v, s]) => Number(engine.region.streamCounters(s).packets - before[v])),
        [3 * sent, 2 * sent, 2 * sent],
        'per-video (stream) counters: V1 3, V2 2, V3 2 per aggregate',
      );
    });

    await t.test('the three time forms end to end', async (t) => {
      const cap = await startCapture(tb, 'b', 'veth0', 'udp and portrange 7001-7003', 15, 5000);
      const base = process.hrtime.bigint() + LEAD_NS;
      // (a) sequence numbers, 4 ms apart, to U1: added 3 1 4 0 2
      const seq = new Aggregate(lane, { base, intervalNs: 4_000_000 });
      for (const s of [3, 1, 4, 0, 2]) seq.add(payload(`seq${s}`), dest.U1, 21, { seq: s });
      // (b) offsets in us from the base, to U2: 2000 us .. 18000 us, added out of order
      const off = new Aggregate(lane, { base });
      for (const us of [18_000, 2_000, 10_000, 6_000, 14_000]) off.add(payload(`off${us}`), dest.U2, 22, { offset: us, unit: 'us' });
      // (c) one range 1..21 ms for 5 packets: 5 ms apart in packet order, to U3
      const range = new Aggregate(lane, { base, range: { first: 1, last: 21, unit: 'ms' } });
      for (let i = 0; i < 5; i++) range.add(payload(`rng${i}`), dest.U3, 23);
      seq.submit();
      off.submit();
      range.submit();
      const got = await cap.done;
      t.equal(got.length, 15, 'every packet arrived');
      const of = (port: number): Captured[] => got.filter((p) => p.dstPort === port);
      const order = (ps: Captured[]): string[] => ps.map(label);
      t.same(order(of(USERS.U1)), ['seq0', 'seq1', 'seq2', 'seq3', 'seq4'], '(a) in sequence order');
      t.same(order(of(USERS.U2)), ['off2000', 'off6000', 'off10000', 'off14000', 'off18000'], '(b) in offset order');
      t.same(order(of(USERS.U3)), ['rng0', 'rng1', 'rng2', 'rng3', 'rng4'], '(c) in packet order');
      // all three share the base: the merged wire order follows the normalised times
      const merged = got.map(label);
      const expectOrder = [
        ['rng0', 1], ['seq0', 0], ['off2000', 2], ['seq1', 4], ['off6000', 6], ['rng1', 6], ['seq2', 8], ['off10000', 10],
        ['rng2', 11], ['seq3', 12], ['off14000', 14], ['seq4', 16], ['rng3', 16], ['off18000', 18], ['rng4', 21],
      ] as const;
      // packets due at the same ms (6, 16) may leave in either order: compare times, not positions
      const t0 = got[merged.indexOf('seq0')].timeNs;
      for (const [name, ms] of expectOrder) {
        const p = got[merged.indexOf(name)];
        t.ok(Math.abs((p.timeNs - t0) / 1e6 - ms) < GAP_TOLERANCE_MS, `${name} at ~${ms} ms (${((p.timeNs - t0) / 1e6).toFixed(2)})`);
      }
      for (const [name, port] of [['seq', USERS.U1], ['off', USERS.U2], ['rng', USERS.U3]] as const) {
        const g = gapsMs(of(port));
        t.comment(`${name} gaps ms: ${g.map((x) => x.toFixed(3)).join(' ')}`);
        g.forEach((x, i) => t.ok(Math.abs(x - (name === 'rng' ? 5 : 4)) < GAP_TOLERANCE_MS, `${name} gap ${i} ${x.toFixed(2)} ms`));
      }
    });

    await engine.stop();
  });
}
