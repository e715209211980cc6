// SPDX-License-Identifier: MIT
// The TypeScript mirror of region.h against what the engine publishes:
// equal today, and refused (naming both versions and the field) when the
// two disagree.
import t from 'tap';
import { native } from '../../src/native';
import {
  DESC,
  DEST,
  HDR,
  LANE_COUNTERS,
  LANE_FAULT_NAMES,
  RING,
  VERSION_MAJOR,
  VERSION_MINOR,
  checkLayout,
  computeLayout,
  mirrorFields,
} from '../../src/region/layout';
import { DEFAULT_REGION_PARAMS } from '../../src/region/params';
import { Region } from '../../src/region/region';

// the version this build speaks, as the messages print it
const V = `${VERSION_MAJOR}.${VERSION_MINOR}`;

t.test('the mirror equals what the addon publishes, key by key', async (t) => {
  const engine = native().regionFields();
  t.same(mirrorFields(), engine);
  t.same(Object.keys(mirrorFields()).sort(), Object.keys(engine).sort());
  t.doesNotThrow(() => checkLayout(native(), DEFAULT_REGION_PARAMS));
});

t.test('exact byte positions (both sides assert them, the Aeron way)', async (t) => {
  t.equal(RING.size, 192);
  t.equal(RING.consumer, 64);
  t.equal(RING.entries, 128);
  t.equal(DESC.size, 32);
  t.equal(DESC.seq, 24);
  t.equal(DEST.size, 64);
  t.equal(DEST.dstAddr, 40);
  t.equal(HDR.doorbell, 128);
  t.equal(HDR.lanes, 384);
  // 2.0: the destination's sequence lock, the lane counters part
  t.equal(DEST.gen, 20);
  t.equal(HDR.laneCountersOff, 92);
  t.equal(LANE_COUNTERS.size, 128);
  t.equal(LANE_COUNTERS.state, 24);
  t.equal(LANE_COUNTERS.lastFault, 28);
  t.equal(LANE_COUNTERS.faults, 32);
  const l = computeLayout(DEFAULT_REGION_PARAMS);
  t.equal(l.laneCountersOff, l.outputCountersOff + 32768, 'after the 1024 output counters');
  t.equal(l.poolOff, l.laneCountersOff + 4096, 'the pool after one page of lane counters');
});

t.test('the lane fault names match the engine\'s enum order', async (t) => {
  t.same([...LANE_FAULT_NAMES], native().laneFaultNames());
  const n = native();
  t.throws(
    () => checkLayout({ regionFields: () => n.regionFields(), counterNames: () => n.counterNames(), laneFaultNames: () => ['submit_index', 'free_index', 'slots'] }),
    { code: 'ERR_LAYOUT_MISMATCH', message: /lane fault 2 is slot in TypeScript, slots in the engine/ },
  );
});

t.test('the layout algorithm gives the engine\'s layout for many parameter sets', async (t) => {
  const sets = [
    DEFAULT_REGION_PARAMS,
    { ...DEFAULT_REGION_PARAMS, lanes: 1, slotsPerLane: 16, slotSize: 512, submitEntries: 16, destsPerLane: 1 },
    { ...DEFAULT_REGION_PARAMS, lanes: 64, slotsPerLane: 64, submitEntries: 65536, maxStreams: 3, maxOutputs: 7 },
    { ...DEFAULT_REGION_PARAMS, lanes: 7, slotsPerLane: 4096, slotSize: 16384, eventEntries: 65536 },
  ];
  for (const p of sets) t.same(computeLayout(p), native().regionLayout(p), JSON.stringify(p));
});

t.test('the counter names match the engine\'s enum order', async (t) => {
  const r = Region.create({ lanes: 1 });
  for (const name of native().counterNames()) t.equal(r.counter(0, name), 0n);
  t.throws(() => r.counter(0, 'tx_packet'), { code: 'ERR_INVALID_ARG', message: /"tx_packet" is not a counter \(accepted: tx_packets, / });
});

t.test('a region with a bumped major version is refused naming both versions', async (t) => {
  const r = Region.create({ lanes: 1 });
  const u32 = new Uint32Array(r.sab);
  t.doesNotThrow(() => Region.fromShared(r.sab));
  Atomics.store(u32, HDR.version >> 2, ((VERSION_MAJOR + 1) << 16) | 3);
  t.throws(() => Region.fromShared(r.sab), {
    code: 'ERR_LAYOUT_MISMATCH',
    message: `region layout mismatch: TypeScript mirror ${VERSION_MAJOR}.${VERSION_MINOR} vs engine ${VERSION_MAJOR + 1}.3: the region was written by major version ${VERSION_MAJOR + 1}, the mirror reads major version ${VERSION_MAJOR}`,
  });
  // the engine refuses it too
  t.throws(() => native().regionCheck(r.sab), { message: `region: version ${VERSION_MAJOR + 1}.3, this engine speaks ${V}` });
  // a newer minor version is fine: additions older readers can ignore
  Atomics.store(u32, HDR.version >> 2, (VERSION_MAJOR << 16) | (VERSION_MINOR + 1));
  t.doesNotThrow(() => Region.fromShared(r.sab));
  u32[HDR.magic >> 2] = 0x12345678;
  t.throws(() => Region.fromShared(r.sab), { code: 'ERR_LAYOUT_MISMATCH', message: 'region: bad magic 0x12345678 (expected 0x58464c52)' });
});

t.test('a region whose version is never written is refused after a bounded wait', async (t) => {
  const sab = new SharedArrayBuffer(8192);
  t.throws(() => Region.fromShared(sab), { code: 'ERR_LAYOUT_MISMATCH', message: /version field still 0 after \d+ ms/ });
});

t.test('a tampered field table is refused naming the field and both versions', async (t) => {
  const n = native();
  const tampered = (edit: (f: Record<string, number>) => void) => ({
    regionFields: () => {
      const f = n.regionFields();
      edit(f);
      return f;
    },
    counterNames: () => n.counterNames(),
  });
  t.throws(() => checkLayout(tampered((f) => { f['rf_desc.seq'] = 28; f['version.minor'] = VERSION_MINOR + 1; })), {
    code: 'ERR_LAYOUT_MISMATCH',
    message: `region layout mismatch: TypeScript mirror ${V} vs engine ${VERSION_MAJOR}.${VERSION_MINOR + 1}: version.minor is ${VERSION_MINOR} in TypeScript, ${VERSION_MINOR + 1} in the engine`,
  });
  t.throws(() => checkLayout(tampered((f) => { f['rf_desc.seq'] = 28; })), {
    code: 'ERR_LAYOUT_MISMATCH',
    message: `region layout mismatch: TypeScript mirror ${V} vs engine ${V}: rf_desc.seq is 24 in TypeScript, 28 in the engine`,
  });
  t.throws(() => checkLayout(tampered((f) => { delete f['rf_dest.ttl']; })), {
    message: `region layout mismatch: TypeScript mirror ${V} vs engine ${V}: rf_dest.ttl is 1 in TypeScript, missing in the engine`,
  });
  t.throws(() => checkLayout(tampered((f) => { f['rf_desc.deadline'] = 32; })), {
    message: `region layout mismatch: TypeScript mirror ${V} vs engine ${V}: rf_desc.deadline is 32 in the engine, missing in TypeScript`,
  });
  t.throws(
    () => checkLayout({ regionFields: () => n.regionFields(), counterNames: () => [...n.counterNames().slice(0, 3), 'tx_drops'] }),
    { message: /counter 3 is tx_syscalls in TypeScript, tx_drops in the engine/ },
  );
});

t.test('a header that disagrees with the computed layout is refused naming the field', async (t) => {
  const r = Region.create({ lanes: 2 });
  const u32 = new Uint32Array(r.sab);
  u32[HDR.poolOff >> 2] += 4096;
  t.throws(() => checkLayout(native(), { ...DEFAULT_REGION_PARAMS, lanes: 2 }, r.sab), {
    code: 'ERR_LAYOUT_MISMATCH',
    message: /: header pool_off is \d+ in TypeScript, \d+ in the engine$/,
  });
});
