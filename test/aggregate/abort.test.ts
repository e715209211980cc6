// SPDX-License-Identifier: MIT
// An aggregate whose lane ring stays full part-way: it keeps what the ring
// accepted, submit() goes on where it stopped, abort() gives the rest of
// the slots back; nothing is lost or sent twice. On the main thread the
// synchronous forms never wait (ERR_WOULD_BLOCK) and the async ones wait
// without blocking the event loop.
import t from 'tap';
import { Aggregate, spareCount } from '../../src/aggregate/aggregate';
import { DESC, HDR, LANE } from '../../src/region/layout';
import { Region } from '../../src/region/region';
import { RingConsumer, RingProducer } from '../../src/region/ring';

const params = { lanes: 2, slotsPerLane: 64, slotSize: 512, submitEntries: 16, destsPerLane: 4, policyEntries: 16, eventEntries: 16, maxStreams: 4, maxOutputs: 4 };

let available = true;
try {
  Region.create(params);
} catch (e) {
  available = false;
  t.plan(0, `the addon is not built: ${(e as Error).message}`);
}

/** The engine's side of lane 1's rings. */
function engineSide(r: Region): { submit: RingConsumer; free: RingProducer } {
  const base = (HDR.lanes + 1 * LANE.size) >> 2;
  return {
    submit: new RingConsumer(r.sab, r.u32[base + (LANE.submitOff >> 2)]),
    free: new RingProducer(r.sab, r.u32[base + (LANE.freeOff >> 2)]),
  };
}

/** Take every descriptor on the submit ring; their slots and seqs. */
function take(r: Region, c: RingConsumer): Array<{ slot: number; seq: number }> {
  const out: Array<{ slot: number; seq: number }> = [];
  const n = c.peek(1 << 20);
  for (let k = 0; k < n; k++) {
    const off = c.entryOffset(k);
    out.push({ slot: r.u32[(off + DESC.slot) >> 2], seq: r.u32[(off + DESC.seq) >> 2] });
  }
  c.release(n);
  return out;
}

if (available) {
  t.test('part-way: the accepted part stays, submit() goes on, abort() gives the rest back', async (t) => {
    const r = Region.create(params);
    const lane = r.lane(1);
    const eng = engineSide(r);
    const now = process.hrtime.bigint();
    const agg = new Aggregate(lane, { base: now });
    for (let i = 0; i < 40; i++) agg.add(Buffer.from([i]), lane.destFirst, 1, { offset: 10 + i, unit: 'ms' });
    t.equal(lane.freeSlots(), 24, '40 slots taken');
    t.throws(() => agg.submit(), { code: 'ERR_WOULD_BLOCK', message: /submit ring has no room for 16 descriptors now, and begin\(\) does not wait on the main thread/ });
    t.equal(agg.accepted, 16, 'the ring took one ring-full');
    t.throws(() => agg.submit(), { code: 'ERR_WOULD_BLOCK' }, 'not marked submitted: another try is allowed');
    t.equal(agg.accepted, 16, 'and sent nothing twice');
    let got = take(r, eng.submit);
    t.equal(got.length, 16);
    t.throws(() => agg.submit(), { code: 'ERR_WOULD_BLOCK' });
    t.equal(agg.accepted, 32, 'it went on where it stopped');
    got = got.concat(take(r, eng.submit));
    t.same(got.map((d) => d.seq), Array.from({ length: 32 }, (_, k) => k), 'every descriptor once, in order');
    t.equal(agg.abort(), 8, 'the 8 the ring never took are given up');
    t.equal(spareCount(lane), 8, 'their slots wait for the lane\'s next packets');
    t.throws(() => agg.submit(), { message: 'aggregate: aborted; make a new Aggregate for the next one' });
    t.equal(agg.abort(), 0, 'abort() twice gives nothing back twice');
    t.equal(lane.freeSlots() + spareCount(lane) + got.length, 64, 'every slot accounted for: free, spare or with the engine');
    // the next aggregate takes the spares first
    const next = new Aggregate(lane, { base: process.hrtime.bigint() });
    for (let i = 0; i < 8; i++) next.add(Buffer.from([i]), lane.destFirst, 1, { offset: 10, unit: 'ms' });
    t.equal(spareCount(lane), 0, 'spares reused');
    t.equal(lane.freeSlots(), 24, 'before any fresh slot');
  });

  t.test('submitAsync and addAsync wait without blocking the event loop', async (t) => {
    const r = Region.create(params);
    const lane = r.lane(1);
    const eng = engineSide(r);
    const agg = new Aggregate(lane, { base: process.hrtime.bigint() });
    for (let i = 0; i < 20; i++) agg.add(Buffer.from([i]), lane.destFirst, 1, { offset: 20, unit: 'ms' });
    let ticks = 0;
    const iv = setInterval(() => ticks++, 1);
    t.teardown(() => clearInterval(iv));
    await t.rejects(agg.submitAsync(60), { code: 'ERR_RING_TIMEOUT', message: /submit ring full for 60 ms/ });
    t.ok(ticks >= 10, `the event loop ran while it waited (${ticks} timer ticks in 60 ms)`);
    t.equal(agg.accepted, 16);
    const done = agg.submitAsync(5000);
    setTimeout(() => take(r, eng.submit), 20);
    t.equal(await done, 20, 'the rest went once the engine took the first part');
    // a lane with no free slot: addAsync waits for the engine to give one back
    const all = new Aggregate(lane, { base: process.hrtime.bigint() });
    while (lane.freeSlots() > 0) all.add(Buffer.from([0]), lane.destFirst, 1, { offset: 20, unit: 'ms' });
    t.throws(() => all.add(Buffer.from([0]), lane.destFirst, 1, { offset: 20, unit: 'ms' }), { code: 'ERR_WOULD_BLOCK', message: /no free slot now, and allocSlot\(\) does not wait on the main thread \(use allocSlotAsync\(\)\)/ });
    const before = ticks;
    const adding = all.addAsync(Buffer.from([7]), lane.destFirst, 1, { offset: 20, unit: 'ms' }, 5000);
    setTimeout(() => {
      eng.free.reserve(1);
      r.u32[eng.free.entryOffset(0) >> 2] = 64 + 3; // lane 1's slot 3 comes back
      eng.free.submit();
    }, 30);
    await adding;
    t.ok(ticks - before >= 10, 'addAsync waited on timers');
    t.equal(all.length, 45, 'and added the packet in the slot that came back');
  });
}
