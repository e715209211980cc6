// SPDX-License-Identifier: MIT
// The aggregate builder on a fake lane: the three time forms, validation with
// exact messages, one submission per aggregate, no slot leaked on rejection.
import t from 'tap';
import { Aggregate, returnSlot, takeSlot, type AggregateDesc, type AggregateLane } from '../../src/aggregate/aggregate';
import { ReflectorError } from '../../src/errors';

class FakeLane implements AggregateLane {
  readonly pool: Uint8Array[] = [];
  readonly free: number[] = [];
  readonly submissions: AggregateDesc[][] = [];
  constructor(slots = 16, payload = 1400) {
    for (let i = 0; i < slots; i++) {
      this.pool.push(new Uint8Array(payload));
      this.free.push(i);
    }
  }
  allocSlot(): number {
    const s = this.free.shift();
    if (s === undefined) throw new ReflectorError('ERR_RING_TIMEOUT', 'no free slot');
    return s;
  }
  payload(slot: number): Uint8Array {
    return this.pool[slot];
  }
  submit(descs: AggregateDesc[]): void {
    this.submissions.push(descs.map((d) => ({ ...d })));
  }
}

const NOW = 1_000_000_000_000n;
const now = (): bigint => NOW;
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

t.test('form (b): offsets in ms, us and ns from the base', async (t) => {
  const lane = new FakeLane();
  const agg = new Aggregate(lane, { base: NOW, now });
  agg.add(bytes('A'), 1, 7, { offset: 14, unit: 'ms' });
  agg.add(bytes('B'), 2, 7, { offset: 1500, unit: 'us' });
  agg.add(bytes('C'), 3, 8, { offset: 250n, unit: 'ns' });
  agg.add(bytes('D'), 3, 8, { offset: 0.5, unit: 'ms' });
  t.equal(agg.submit(), 4);
  t.equal(lane.submissions.length, 1, 'one submission for the whole aggregate');
  const d = lane.submissions[0];
  t.same(
    d.map((x) => x.txTime - NOW),
    [14_000_000n, 1_500_000n, 250n, 500_000n],
  );
  t.same(
    d.map((x) => [x.dest, x.stream, x.len]),
    [
      [1, 7, 1],
      [2, 7, 1],
      [3, 8, 1],
      [3, 8, 1],
    ],
  );
  t.equal(String.fromCharCode(lane.pool[d[2].slot][0]), 'C', 'bytes copied into the slot');
});

t.test('form (a): sequence numbers with an interval', async (t) => {
  const lane = new FakeLane();
  const agg = new Aggregate(lane, { base: NOW, now, intervalNs: 1_000_000 });
  // the patent's table: A3 B1 C5 D4 E2 F6 G7
  for (const [name, seq] of [['A', 3], ['B', 1], ['C', 5], ['D', 4], ['E', 2], ['F', 6], ['G', 7]] as const) {
    agg.add(bytes(name), 0, 0, { seq });
  }
  agg.submit();
  const times = lane.submissions[0].map((x) => Number(x.txTime - NOW) / 1e6);
  t.same(times, [3, 1, 5, 4, 2, 6, 7]);
  const lane2 = new FakeLane();
  const agg2 = new Aggregate(lane2, { base: NOW, now });
  agg2.add(bytes('x'), 0, 0, { seq: 2, intervalNs: 100_000n });
  agg2.submit();
  t.equal(lane2.submissions[0][0].txTime, NOW + 200_000n, 'interval carried by the time');
  t.throws(() => new Aggregate(new FakeLane(), { base: NOW, now }).add(bytes('x'), 0, 0, { seq: 1 }), {
    code: 'ERR_INVALID_ARG',
    message: "aggregate packet 0: seq 1 has no interval: give intervalNs in the time or in the aggregate's options",
  });
  t.throws(() => new Aggregate(new FakeLane(), { base: NOW, now, intervalNs: 1 }).add(bytes('x'), 0, 0, { seq: -1 }), {
    message: 'aggregate packet 0: seq -1 is not an integer >= 0',
  });
});

t.test('form (c): one range spread evenly in packet order', async (t) => {
  const lane = new FakeLane();
  const agg = new Aggregate(lane, { base: NOW, now, range: { first: 1, last: 7, unit: 'ms' } });
  for (const name of 'ABCDEFG') agg.add(bytes(name), 0, 0);
  agg.submit();
  t.same(
    lane.submissions[0].map((x) => Number(x.txTime - NOW) / 1e6),
    [1, 2, 3, 4, 5, 6, 7],
  );
  const lane2 = new FakeLane();
  const one = new Aggregate(lane2, { base: NOW, now, range: { first: 13, last: 50, unit: 'ms' } });
  one.add(bytes('x'), 0, 0);
  one.submit();
  t.equal(lane2.submissions[0][0].txTime, NOW + 13_000_000n, 'a single packet goes at first');
  t.throws(() => new Aggregate(new FakeLane(), { base: NOW, now, range: { first: 5, last: 1, unit: 'ms' } }), {
    message: 'range: last 1 ms is before first 5 ms',
  });
});

t.test('absolute times pass through', async (t) => {
  const lane = new FakeLane();
  const agg = new Aggregate(lane, { now });
  agg.add(bytes('x'), 0, 0, { at: NOW + 123n });
  agg.submit();
  t.equal(lane.submissions[0][0].txTime, NOW + 123n);
});

t.test('mixed forms are rejected, and take no slot', async (t) => {
  const lane = new FakeLane(4);
  const agg = new Aggregate(lane, { base: NOW, now, intervalNs: 1000 });
  agg.add(bytes('x'), 0, 0, { seq: 1 });
  t.throws(() => agg.add(bytes('y'), 0, 0, { offset: 1, unit: 'ms' }), {
    code: 'ERR_INVALID_ARG',
    message:
      'aggregate packet 1: time form "offset" differs from the aggregate\'s form "sequence"; mixed forms in one aggregate are not accepted',
  });
  t.equal(lane.free.length, 3, 'only the accepted packet took a slot');
  const ranged = new Aggregate(lane, { base: NOW, now, range: { first: 0, last: 1, unit: 'ms' } });
  t.throws(() => ranged.add(bytes('z'), 0, 0, { offset: 1, unit: 'ms' }), {
    message:
      'aggregate packet 0: has its own time but the aggregate has a range (form c); mixed forms in one aggregate are not accepted',
  });
  t.throws(() => new Aggregate(lane, { now }).add(bytes('z'), 0, 0), {
    message: 'aggregate packet 0: no time: give {seq}, {offset, unit} or {at}, or build the aggregate with a range',
  });
  t.throws(() => new Aggregate(lane, { now }).add(bytes('z'), 0, 0, { when: 3 } as never), {
    message: 'aggregate packet 0: expected {seq, intervalNs?}, {offset, unit} or {at}, got {"when":3}',
  });
  t.throws(() => new Aggregate(lane, { now }).add(bytes('z'), 0, 0, { offset: 3, unit: 's' } as never), {
    message: 'aggregate packet 0.offset: unit "s" is not one of ms, us, ns',
  });
  t.equal(lane.free.length, 3);
});

t.test('times beyond the lateness limit or the horizon are rejected with both values', async (t) => {
  const lane = new FakeLane(4);
  const agg = new Aggregate(lane, { base: NOW, now, lateLimitMs: 20, horizonMs: 1000 });
  t.throws(() => agg.add(bytes('x'), 0, 0, { offset: -25, unit: 'ms' }), {
    code: 'ERR_INVALID_ARG',
    message: 'aggregate packet 0: transmission time is 25 ms in the past, beyond the lateness limit of 20 ms (lateLimitMs)',
  });
  t.throws(() => agg.add(bytes('x'), 0, 0, { offset: 1500, unit: 'ms' }), {
    message: 'aggregate packet 0: transmission time is 1500 ms in the future, beyond the horizon of 1000 ms (horizonMs)',
  });
  agg.add(bytes('x'), 0, 0, { offset: -19, unit: 'ms' }); // late but within the limit: the engine sends it at once
  agg.add(bytes('x'), 0, 0, { offset: 999, unit: 'ms' });
  t.equal(lane.free.length, 2);
  t.throws(() => new Aggregate(lane, { base: NOW, now, range: { first: 0, last: 11, unit: 's' } as never }), {
    message: 'range.first: unit "s" is not one of ms, us, ns',
  });
  t.throws(() => new Aggregate(lane, { base: NOW, now, range: { first: 0, last: 11_000, unit: 'ms' } }), {
    message: 'range.last: transmission time is 11000 ms in the future, beyond the horizon of 10000 ms (horizonMs)',
  });
  t.throws(() => new Aggregate(lane, { now, lateLimitMs: -1 }), { message: 'lateLimitMs: -1 is not a number >= 0' });
  // the engine drops what is further ahead than its 16 s horizon (drop_bad_time): refused here first
  t.throws(() => new Aggregate(lane, { now, horizonMs: 20_000 }), { code: 'ERR_INVALID_ARG', message: 'horizonMs: 20000 is not a number in (0, 16000] (the engine\'s horizon, ms)' });
  t.doesNotThrow(() => new Aggregate(lane, { now, horizonMs: 16_000 }));
});

t.test('oversized packets and bad ids are rejected without leaking a slot', async (t) => {
  const lane = new FakeLane(2, 100);
  const agg = new Aggregate(lane, { base: NOW, now });
  t.throws(() => agg.add(new Uint8Array(101), 0, 0, { offset: 0, unit: 'ns' }), {
    message: 'aggregate packet 0: 101 bytes exceed the slot payload of 100 bytes',
  });
  t.throws(() => agg.add(new Uint8Array(1), -1, 0, { offset: 0, unit: 'ns' }), {
    message: 'aggregate packet 0: dest -1 is not an index >= 0',
  });
  // the slot taken by the oversized packet is reused: two packets still fit in two slots
  agg.add(new Uint8Array(10), 0, 0, { offset: 0, unit: 'ns' });
  agg.add(new Uint8Array(10), 0, 0, { offset: 0, unit: 'ns' });
  t.equal(agg.length, 2);
  t.not(agg.descriptors()[0].slot, agg.descriptors()[1].slot);
  // zero-copy path
  const z = new Aggregate(lane, { base: NOW, now });
  returnSlot(lane, 1);
  const s = takeSlot(lane);
  t.equal(s, 1);
  t.throws(() => z.addSlot(s, 101, 0, 0, { offset: 0, unit: 'ns' }), { message: 'aggregate packet 0: len 101 is outside 0..100' });
  z.addSlot(s, 100, 0, 0, { offset: 0, unit: 'ns' });
  t.equal(z.submit(), 1);
  t.throws(() => z.submit(), { message: 'aggregate: already submitted; make a new Aggregate for the next one' });
  t.throws(() => z.add(new Uint8Array(1), 0, 0, { offset: 0, unit: 'ns' }), {
    message: 'aggregate packet 1: the aggregate was already submitted',
  });
});

t.test('an empty aggregate submits nothing', async (t) => {
  const lane = new FakeLane();
  t.equal(new Aggregate(lane, { now }).submit(), 0);
  t.equal(lane.submissions.length, 0);
});

t.test('a lane with the cursor verbs gets one begin/commit per ring-sized part, no objects', async (t) => {
  class CursorLane extends FakeLane {
    readonly ringEntries = 4;
    readonly log: string[] = [];
    begin(n: number): void {
      this.log.push(`begin ${n}`);
    }
    put(k: number, slot: number, len: number, dest: number, stream: number, txTimeNs: number): void {
      this.log.push(`put ${k} ${slot} ${len} ${dest} ${stream} ${txTimeNs - Number(NOW)}`);
    }
    commit(): void {
      this.log.push('commit');
    }
  }
  const lane = new CursorLane(8);
  const agg = new Aggregate(lane, { base: NOW, now });
  for (let i = 0; i < 5; i++) agg.addAt(lane.allocSlot(), 10 + i, 2, 3, Number(NOW) + i * 1000);
  t.equal(agg.submit(), 5);
  t.same(lane.log, ['begin 4', 'put 0 0 10 2 3 0', 'put 1 1 11 2 3 1000', 'put 2 2 12 2 3 2000', 'put 3 3 13 2 3 3000', 'commit', 'begin 1', 'put 0 4 14 2 3 4000', 'commit']);
  t.equal(lane.submissions.length, 0, 'the object path is not used');
  const b = new Aggregate(lane, { base: NOW, now });
  b.addAt(0, 1, 0, 0, Number(NOW));
  t.throws(() => b.addAt(0, 1, 0, 0, Number(NOW) - 60e6), {
    message: 'aggregate packet 1: transmission time is 60 ms in the past, beyond the lateness limit of 50 ms (lateLimitMs)',
  });
  t.throws(() => b.add(bytes('x'), 0, 0, { offset: 1, unit: 'ms' }), { message: /time form "offset" differs from the aggregate's form "absolute"/ });
});
