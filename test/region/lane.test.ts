// SPDX-License-Identifier: MIT
// Lanes without an engine: slot allocation from the free ring, destination
// bytes and their validation, descriptor bytes of submit() and of the
// cursor, one submission per aggregate, ring-sized splitting, lane claims.
import t from 'tap';
import { DESC, DESC_F_AGG_END, DEST, HDR, LANE, RING, SLOT_HEADROOM } from '../../src/region/layout';
import type { Destination, PacketDesc } from '../../src/region/lane';
import { Region } from '../../src/region/region';
import { RingConsumer } from '../../src/region/ring';

const params = { lanes: 3, slotsPerLane: 16, submitEntries: 16, destsPerLane: 4, slotSize: 512 };

const dest4: Destination = {
  family: 4, srcAddr: '198.18.0.1', dstAddr: '198.18.0.2', srcPort: 5004, dstPort: 6000,
  srcMac: '02:00:00:00:00:01', dstMac: '02:aa:bb:cc:dd:ee', ttl: 9, dscp: 46,
};

/** A TS consumer standing in for the engine on lane `i`'s submit ring. */
function submitConsumer(r: Region, i: number): RingConsumer {
  return new RingConsumer(r.sab, r.u32[(HDR.lanes + i * LANE.size + LANE.submitOff) >> 2]);
}

t.test('slots come from the lane\'s free ring, then the lane waits and times out', async (t) => {
  const r = Region.create(params);
  const lane = r.lane(1);
  t.equal(lane.freeSlots(), 16);
  const got = [lane.allocSlot()];
  const out = new Uint32Array(20);
  t.equal(lane.allocSlots(out), 15, 'the rest at once');
  got.push(...out.subarray(0, 15));
  t.same(got, Array.from({ length: 16 }, (_, k) => 16 + k), 'lane 1 owns slots 16..31');
  t.equal(lane.freeSlots(), 0);
  t.same(r.poolUsage(), { used: 16, size: 48 }, 'the pool sees lane 1\'s slots taken');
  t.same(r.ringSamples().filter((s) => s.ring.startsWith('lane1')), [
    { ring: 'lane1.submit', used: 0, size: 16 },
    { ring: 'lane1.free', used: 0, size: 16 },
  ]);
  // the main thread never waits on a futex: the synchronous form refuses at once
  const t0 = Date.now();
  t.throws(() => lane.allocSlot(30), {
    code: 'ERR_WOULD_BLOCK',
    message: 'lane 1: no free slot now, and allocSlot() does not wait on the main thread (use allocSlotAsync())',
  });
  t.ok(Date.now() - t0 < 25, 'without waiting');
  t.throws(() => lane.allocSlots(new Uint32Array(4), 30), { code: 'ERR_WOULD_BLOCK' });
  await t.rejects(lane.allocSlotAsync(20), {
    code: 'ERR_RING_TIMEOUT',
    message: 'lane 1: no free slot after 20 ms (all 16 slots are in flight; is the engine running?)',
  });
  const p = lane.payload(16);
  t.equal(p.length, 512 - SLOT_HEADROOM);
  t.equal(p.byteOffset, r.poolOff + 16 * 512 + SLOT_HEADROOM);
  t.throws(() => lane.payload(3), { code: 'ERR_INVALID_ARG', message: 'lane 1: slot 3 is not one of this lane\'s (accepted: 16..31)' });
});

t.test('writeDest writes rf_dest bytes (ports big-endian, IPv4 in the first 4 bytes)', async (t) => {
  const r = Region.create(params);
  const lane = r.lane(2);
  t.equal(lane.destFirst, 8);
  lane.writeDest(9, dest4);
  const b = new Uint8Array(r.sab, r.destOff + 9 * DEST.size, DEST.size);
  t.same([b[DEST.family], b[DEST.ttl], b[DEST.dscp], b[DEST.flags]], [4, 9, 46, 1]);
  t.same([...b.subarray(DEST.srcPort, DEST.srcPort + 4)], [0x13, 0x8c, 0x17, 0x70]);
  t.same([...b.subarray(DEST.dstMac, DEST.dstMac + 6)], [2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
  t.same([...b.subarray(DEST.srcMac, DEST.srcMac + 6)], [2, 0, 0, 0, 0, 1]);
  t.same([...b.subarray(DEST.srcAddr, DEST.srcAddr + 16)], [198, 18, 0, 1, ...new Array(12).fill(0)]);
  t.same([...b.subarray(DEST.dstAddr, DEST.dstAddr + 4)], [198, 18, 0, 2]);
  lane.writeDest(10, { ...dest4, family: 6, srcAddr: '2001:db8::1', dstAddr: '2001:db8::2', ttl: undefined, dscp: undefined });
  const c = new Uint8Array(r.sab, r.destOff + 10 * DEST.size, DEST.size);
  t.same([c[DEST.family], c[DEST.ttl], c[DEST.dscp]], [6, 64, 0]);
  t.same([...c.subarray(DEST.dstAddr, DEST.dstAddr + 16)], [0x20, 1, 0xd, 0xb8, ...new Array(11).fill(0), 2]);
});

t.test('writeDest holds the entry\'s sequence lock: gen odd while the fields change, +2 per write', async (t) => {
  const r = Region.create(params);
  const lane = r.lane(2);
  const gen = (r.destOff + 9 * DEST.size + DEST.gen) >> 2;
  t.equal(Atomics.load(r.u32, gen), 0, 'never written');
  lane.writeDest(9, dest4);
  t.equal(Atomics.load(r.u32, gen), 2, 'even after a write');
  // what the fields see while they change: every byte store of the write
  // happens while gen is odd (a Proxy over the byte view records it)
  const seen: number[] = [];
  const bytes = lane.bytes;
  const spy = new Proxy(bytes, {
    set(target, key, value) {
      seen.push(Atomics.load(r.u32, gen));
      return Reflect.set(target, key, value);
    },
    get(target, key) {
      const v = Reflect.get(target, key);
      return typeof v === 'function' ? (...a: unknown[]) => { seen.push(Atomics.load(r.u32, gen)); return (v as (...x: unknown[]) => unknown).apply(target, a); } : v;
    },
  });
  Object.defineProperty(lane, 'bytes', { value: spy });
  lane.writeDest(9, { ...dest4, dstPort: 6001 });
  t.ok(seen.length > 0 && seen.every((g) => g === 3), `every field store saw gen 3 (${[...new Set(seen)].join(',')})`);
  t.equal(Atomics.load(r.u32, gen), 4, 'even again, two more');
  // a writer that died mid-write (gen left odd) does not confuse the next one
  Atomics.store(r.u32, gen, 7);
  Object.defineProperty(lane, 'bytes', { value: bytes });
  lane.writeDest(9, dest4);
  t.equal(Atomics.load(r.u32, gen), 8);
  const b = new Uint8Array(r.sab, r.destOff + 9 * DEST.size, DEST.size);
  t.equal((b[DEST.dstPort] << 8) | b[DEST.dstPort + 1], 6000, 'and the fields are the last version');
});

t.test('writeDest refuses bad entries with exact messages', async (t) => {
  const lane = Region.create(params).lane(1);
  const bad = (index: number, d: Partial<Destination> | null, message: string): void => {
    t.throws(() => lane.writeDest(index, { ...dest4, ...d } as Destination), { code: 'ERR_INVALID_ARG', message });
  };
  bad(0, {}, 'lane 1: destination 0 is not one of this lane\'s (accepted: 4..7)');
  bad(8, {}, 'lane 1: destination 8 is not one of this lane\'s (accepted: 4..7)');
  bad(4, { family: 5 as 4 }, 'destination.family: 5 is not 4 or 6');
  bad(4, { dstAddr: '2001:db8::2' }, 'destination.dstAddr: "2001:db8::2" is not an IPv4 address (family is 4)');
  bad(4, { family: 6, srcAddr: '198.18.0.1' }, 'destination.srcAddr: "198.18.0.1" is not an IPv6 address (family is 6)');
  bad(4, { dstPort: 0 }, 'destination.dstPort: 0 is not a port (accepted: 1..65535)');
  bad(4, { srcPort: 70000 }, 'destination.srcPort: 70000 is not a port (accepted: 1..65535)');
  bad(4, { dstMac: '02:00:00:00:00' }, 'destination.dstMac: "02:00:00:00:00" is not a MAC address (expected "aa:bb:cc:dd:ee:ff")');
  bad(4, { srcMac: 'zz:00:00:00:00:00' }, 'destination.srcMac: "zz:00:00:00:00:00" is not a MAC address (expected "aa:bb:cc:dd:ee:ff")');
  bad(4, { ttl: 0 }, 'destination.ttl: 0 is not in 1..255');
  bad(4, { dscp: 64 }, 'destination.dscp: 64 is not in 0..63');
});

t.test('submit: one submission per aggregate, rf_desc bytes, seq = ring index, AGG_END last', async (t) => {
  const r = Region.create(params);
  const lane = r.lane(1);
  const cons = submitConsumer(r, 1);
  const descs: PacketDesc[] = [0, 1, 2].map((k) => ({ slot: 16 + k, len: 100 + k, dest: 4 + k, stream: 7, txTime: 123456789012345n + BigInt(k) }));
  lane.submit(descs);
  t.equal(cons.peek(16), 3);
  const dv = new DataView(r.sab);
  for (let k = 0; k < 3; k++) {
    const o = cons.entryOffset(k);
    t.equal(dv.getBigUint64(o + DESC.txTime, true), 123456789012345n + BigInt(k));
    t.same(
      [DESC.slot, DESC.dest, DESC.stream, DESC.seq].map((f) => dv.getUint32(o + f, true)),
      [16 + k, 4 + k, 7, k],
    );
    t.equal(dv.getUint16(o + DESC.len, true), 100 + k);
    t.equal(dv.getUint16(o + DESC.flags, true), k === 2 ? DESC_F_AGG_END : 0);
  }
  cons.release(3);
  // the cursor writes the same bytes
  lane.begin(2);
  lane.put(0, 20, 64, 5, 9, 2 ** 40 + 3);
  lane.put(1, 21, 65, 6, 9, 0);
  t.equal(cons.peek(16), 0, 'nothing visible before commit');
  lane.commit();
  t.equal(cons.peek(16), 2);
  const o = cons.entryOffset(0);
  t.equal(dv.getBigUint64(o + DESC.txTime, true), 2n ** 40n + 3n);
  t.same([dv.getUint32(o + DESC.slot, true), dv.getUint16(o + DESC.len, true), dv.getUint16(o + DESC.flags, true), dv.getUint32(o + DESC.seq, true)], [20, 64, 0, 3]);
  const o1 = cons.entryOffset(1);
  t.same([dv.getUint16(o1 + DESC.len, true), dv.getUint16(o1 + DESC.flags, true), dv.getUint32(o1 + DESC.seq, true)], [65, DESC_F_AGG_END, 4]);
  cons.release(2);
  // a new Lane object for the same lane continues the sequence (seq = ring index)
  const again = Region.fromShared(r.sab).lane(1);
  again.submit([{ slot: 16, len: 1, dest: 4, stream: 0, txTime: 0n }]);
  t.equal(cons.peek(1), 1);
  t.equal(dv.getUint32(cons.entryOffset(0) + DESC.seq, true), 5);
});

t.test('submit validates the whole batch before submitting anything', async (t) => {
  const r = Region.create(params);
  const lane = r.lane(1);
  const ok: PacketDesc = { slot: 16, len: 10, dest: 4, stream: 0, txTime: 0n };
  const bad = (d: Partial<PacketDesc>, message: string): void => {
    t.throws(() => lane.submit([ok, { ...ok, ...d }]), { code: 'ERR_INVALID_ARG', message });
  };
  bad({ slot: 0 }, 'descs[1].slot: 0 is not one of lane 1\'s slots (accepted: 16..31)');
  bad({ dest: 8 }, 'descs[1].dest: 8 is not one of lane 1\'s destinations (accepted: 4..7)');
  bad({ len: 385 }, 'descs[1].len: 385 is not in 0..384 (the slot\'s payload size)');
  bad({ stream: -1 }, 'descs[1].stream: -1 is not an integer in 0..4294967295');
  bad({ txTime: 5 as unknown as bigint }, 'descs[1].txTime: 5 is not a CLOCK_MONOTONIC time in ns (a bigint >= 0n)');
  t.equal(submitConsumer(r, 1).peek(16), 0, 'nothing was submitted');
  t.throws(() => lane.begin(17), { code: 'ERR_INVALID_ARG', message: 'lane 1: begin(17): accepted 1..16 (the submit ring\'s size)' });
  t.throws(() => lane.commit(), { code: 'ERR_ENGINE_STATE' });
});

t.test('put() writes only the entries begin() reserved', async (t) => {
  const r = Region.create(params);
  const lane = r.lane(1);
  const ring = new Uint8Array(r.sab, submitConsumer(r, 1).data, 16 * DESC.size);
  lane.begin(2);
  const before = Buffer.from(ring);
  for (const k of [2, 3, -1, 16, 1.5, NaN, 2 ** 32]) {
    t.throws(() => lane.put(k, 16, 1, 4, 0, 0), { code: 'ERR_INVALID_ARG', message: `lane 1: put(${k}): accepted 0..1 (the entries begin() reserved)` });
  }
  t.same(Buffer.from(ring), before, 'no entry was written');
  lane.put(1, 17, 1, 4, 0, 0);
  lane.put(0, 16, 1, 4, 0, 0);
  lane.commit();
  t.throws(() => lane.put(0, 16, 1, 4, 0, 0), { code: 'ERR_ENGINE_STATE', message: 'lane 1: put() without begin()' }, 'nothing open after commit');
  t.equal(submitConsumer(r, 1).peek(16), 2);
});

t.test('a full submit ring times out; a batch larger than the ring goes as ring-sized submissions', async (t) => {
  const r = Region.create(params);
  const lane = r.lane(1);
  const cons = submitConsumer(r, 1);
  const u32 = new Uint32Array(r.sab);
  const prodIdx = (cons.base + RING.producer) >> 2;
  const descs = (n: number): PacketDesc[] => Array.from({ length: n }, (_, k) => ({ slot: 16 + (k % 16), len: 1, dest: 4, stream: 0, txTime: 0n }));
  lane.submit(descs(10));
  t.throws(() => lane.submit(descs(10), 30), {
    code: 'ERR_WOULD_BLOCK',
    message: 'lane 1: the submit ring has no room for 10 descriptors now, and submit() does not wait on the main thread (use submitAsync())',
  });
  t.throws(() => lane.begin(10, 30), { code: 'ERR_WOULD_BLOCK', message: /begin\(\) does not wait on the main thread \(use beginAsync\(\)\)/ });
  await t.rejects(lane.submitAsync(descs(10), 30), {
    code: 'ERR_RING_TIMEOUT',
    message: 'lane 1: submit ring full for 30 ms (10 descriptors wanted; is the engine running?)',
  });
  cons.release(cons.peek(16));
  // 40 descriptors through a 16-entry ring: 16 + 16 + 8, a consumer drains between
  const seen: number[] = [];
  const producerSteps: number[] = [];
  const drain = setInterval(() => {
    producerSteps.push(Atomics.load(u32, prodIdx));
    const n = cons.peek(16);
    for (let k = 0; k < n; k++) seen.push(u32[(cons.entryOffset(k) + DESC.seq) >> 2]);
    cons.release(n);
  }, 2);
  await lane.submitAsync(descs(40), 5000);
  await new Promise((res) => setTimeout(res, 20));
  clearInterval(drain);
  t.same(seen, Array.from({ length: 40 }, (_, k) => 10 + k), 'every descriptor once, in order');
  const distinct = [...new Set(producerSteps)].filter((p) => p > 10);
  t.ok(distinct.every((p) => [26, 42, 50].includes(p)), `the producer index only moves by whole submissions: ${distinct.join(',')}`);
});

t.test('workers claim lanes 1..lanes-1, then get a clear error', async (t) => {
  const r = Region.create(params);
  const w = Region.fromShared(r.sab);
  t.equal(w.claimWorkerLane().index, 1);
  t.equal(Region.fromShared(r.sab).claimWorkerLane().index, 2);
  t.throws(() => w.claimWorkerLane(), {
    code: 'ERR_INVALID_ARG',
    message: 'region: no worker lane left (3 lanes, lane 0 is the main thread\'s, 2 claimed); raise region.lanes',
  });
  t.throws(() => r.lane(3), { code: 'ERR_INVALID_ARG', message: 'lane: 3 is not a lane of this region (accepted: 0..2)' });
});
