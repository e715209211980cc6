// SPDX-License-Identifier: MIT
// A lane that breaks the rules, seen from TypeScript (docs/trust.md): a
// worker's cursor naming slots it does not own is dropped and counted as
// lane faults; past the limit the lane is quarantined, the engine posts
// EVENT_LANE_QUARANTINED, /metrics shows reflector_lane_faults_total and
// reflector_lane_quarantined, and the main thread's lane keeps sending.
// A lane's counters add up: taken = sent + dropped.
import t from 'tap';
import { Engine } from '../../src/engine/engine';
import { createMetrics, type MetricsSource } from '../../src/metrics/registry';
import { native } from '../../src/native';
import { EVENT_LANE_QUARANTINED, LANE_FAULT_LIMIT, LANE_FAULT_NAMES } from '../../src/region/layout';
import { PolicyChannel, type EngineEvent } from '../../src/relay/channel';
import { Relays, type RelaysEvent } from '../../src/relay/relays';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

t.test('a lane naming slots it does not own is counted, then quarantined; the others run on', { skip: native().engineAvailable() ? false : 'the addon was built without the engine' }, async (t) => {
  const engine = new Engine({ interface: 'lo', backend: 'null', region: { lanes: 3, slotsPerLane: 64, submitEntries: 64, destsPerLane: 4 } });
  const region = engine.region;
  await engine.start();
  t.teardown(async () => {
    if (engine.running) await engine.stop();
  });
  const good = region.lane(0);
  const bad = region.lane(1);
  const dest = { family: 4 as const, srcAddr: '198.18.0.1', dstAddr: '198.18.0.2', srcPort: 5000, dstPort: 6000, srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02' };
  good.writeDest(good.destFirst, dest);
  bad.writeDest(bad.destFirst, dest);

  // lane 1's cursor (no validation) names lane 0's slot 0, 40 times
  bad.begin(40);
  for (let k = 0; k < 40; k++) bad.put(k, good.slotFirst, 64, bad.destFirst, 3, 0);
  bad.commit();
  await until('lane 1 quarantined', () => region.laneCounters(1).quarantined);
  const c1 = region.laneCounters(1);
  t.equal(c1.faults.slot, BigInt(LANE_FAULT_LIMIT + 1), 'a fault per descriptor until past the limit');
  t.equal(c1.taken, BigInt(LANE_FAULT_LIMIT + 1), 'nothing taken after that');
  t.equal(c1.dropped, c1.taken, 'every one dropped');
  t.equal(c1.sent, 0n);
  t.equal(region.counter(0, 'drop_bad_slot'), c1.dropped, 'each drop under one reason');

  // the quarantine event, on the event ring (the relays' channel reads it)
  const channel = new PolicyChannel(region);
  const events: EngineEvent[] = [];
  channel.onEvent((e) => events.push(e));
  await until('the quarantine event', () => {
    channel.drain();
    return events.some((e) => e.type === EVENT_LANE_QUARANTINED);
  });
  const q = events.find((e) => e.type === EVENT_LANE_QUARANTINED);
  t.same([q?.a, LANE_FAULT_NAMES[Number(q?.b)], q?.c], [1n, 'slot', BigInt(LANE_FAULT_LIMIT + 1)], 'lane 1, its last fault, the faults so far');
  channel.close();

  // lane 0 keeps running: 20 packets, all sent
  const slots = new Uint32Array(20);
  t.equal(good.allocSlots(slots), 20);
  good.begin(20);
  for (let k = 0; k < 20; k++) good.put(k, slots[k], 100, good.destFirst, 1, 0);
  good.commit();
  await until('lane 0 sent', () => region.laneCounters(0).sent === 20n);
  const c0 = region.laneCounters(0);
  t.same([c0.taken, c0.sent, c0.dropped, c0.quarantined], [20n, 20n, 0n, false], 'lane 0: taken = sent');
  t.same(Object.values(c0.faults), LANE_FAULT_NAMES.map(() => 0n), 'and no fault');
  await until('lane 0 slots back', () => good.freeSlots() === good.slotCount);

  // metrics, read at scrape time from the same counters
  const source: MetricsSource = {
    interfaceName: () => 'lo',
    engine: () => null,
    relayOutputs: () => [],
    relays: () => [],
    sessions: () => [],
    rings: () => [],
    pool: () => null,
    lanes: () => region.laneSamples(),
    relayCount: () => 0,
    sessionCount: () => 0,
    ready: () => true,
  };
  const text = await createMetrics(source, { defaults: false }).registry.metrics();
  t.match(text, new RegExp(`^reflector_lane_faults_total\\{lane="1",reason="slot"\\} ${LANE_FAULT_LIMIT + 1}$`, 'm'));
  t.match(text, /^reflector_lane_faults_total\{lane="0",reason="slot"\} 0$/m);
  t.match(text, /^reflector_lane_faults_total\{lane="control",reason="submit_index"\} 0$/m, 'the control channel too');
  t.match(text, /^reflector_lane_quarantined\{lane="1"\} 1$/m);
  t.match(text, /^reflector_lane_quarantined\{lane="2"\} 0$/m);

  // a restart gives lane 1 a fresh start: its next good packet leaves
  await engine.stop();
  await engine.start();
  t.equal(region.laneCounters(1).quarantined, false, 'not quarantined after a restart');
  const s1 = bad.allocSlot();
  bad.submit([{ slot: s1, len: 10, dest: bad.destFirst, stream: 3, txTime: 0n }]);
  await until('lane 1 sent', () => region.laneCounters(1).sent === 1n);
  t.throws(() => region.laneCounters(4), { code: 'ERR_INVALID_ARG', message: 'lane: 4 is not in 0..3 (3: the control channel)' });
});

t.test('the relays manager reports a quarantine as an event naming the lane and its fault', { skip: native().engineAvailable() ? false : 'the addon was built without the engine' }, async (t) => {
  const engine = new Engine({ interface: 'lo', backend: 'null', region: { lanes: 2, slotsPerLane: 64, submitEntries: 64, destsPerLane: 4 } });
  const region = engine.region;
  await engine.start();
  const relays = new Relays(engine, { refreshMs: 0 });
  await relays.start();
  t.teardown(async () => {
    await relays.stop();
    if (engine.running) await engine.stop();
  });
  const events: RelaysEvent[] = [];
  relays.on('event', (e: RelaysEvent) => events.push(e));
  const good = region.lane(0);
  const bad = region.lane(1);
  bad.begin(40);
  for (let k = 0; k < 40; k++) bad.put(k, good.slotFirst, 64, bad.destFirst, 3, 0);
  bad.commit();
  await until('the lane event', () => events.some((e) => e.type === 'lane'), 5000);
  const q = events.find((e) => e.type === 'lane');
  t.match(q, { type: 'lane', lane: 1, fault: 'slot', faults: LANE_FAULT_LIMIT + 1 });
  t.match(q && 'reason' in q ? q.reason : '', /^lane 1 broke the region's rules 33 times \(last: slot\)/);
});
