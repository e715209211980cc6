// SPDX-License-Identifier: MIT
// The worker's session pump on a fake lane and a fake clock: one aggregate
// per tick across all sessions, bytes straight into slots, times from the
// media, end/loop/stop, falling behind, slot shortage, a bad session alone.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spareCount } from '../../src/aggregate/aggregate';
import { ReflectorError } from '../../src/errors';
import { clearMediaCache } from '../../src/media/load';
import type { Destination } from '../../src/region/lane';
import type { StartRequest } from '../../src/session/protocol';
import { SessionPump, type PumpLane } from '../../src/session/pump';
import { concat, ethernet, ipv4Udp, pcap, stream } from '../media/synth';

const MS = 1e6;
const SLOT = 2048;

class FakeLane implements PumpLane {
  readonly index = 1;
  readonly destFirst = 256;
  readonly destCount = 4;
  readonly payloadSize = SLOT - 128;
  readonly ringEntries = 1024;
  readonly bytes: Uint8Array;
  readonly free: number[] = [];
  readonly dests = new Map<number, Destination>();
  readonly commits: Array<Array<{ slot: number; len: number; dest: number; stream: number; t: number }>> = [];
  private open: Array<{ slot: number; len: number; dest: number; stream: number; t: number }> = [];
  constructor(slots = 64) {
    this.bytes = new Uint8Array(slots * SLOT);
    for (let i = 0; i < slots; i++) this.free.push(i);
  }
  payloadOffset(slot: number): number {
    return slot * SLOT + 128;
  }
  payload(slot: number): Uint8Array {
    return this.bytes.subarray(this.payloadOffset(slot), (slot + 1) * SLOT);
  }
  freeSlots(): number {
    return this.free.length;
  }
  allocSlot(): number {
    const s = this.free.shift();
    if (s === undefined) throw new Error('no slot');
    return s;
  }
  writeDest(i: number, d: Destination): void {
    this.dests.set(i, d);
  }
  submit(): void {
    throw new Error('the pump must use the cursor verbs');
  }
  begin(): void {
    this.open = [];
  }
  put(_k: number, slot: number, len: number, dest: number, stream: number, t: number): void {
    this.open.push({ slot, len, dest, stream, t });
  }
  commit(): void {
    this.commits.push(this.open);
  }
  /** the engine sent these: slots come back */
  release(): void {
    for (const c of this.commits) for (const d of c) this.free.push(d.slot);
  }
}

const DEST: Destination = { family: 4, srcAddr: '198.18.0.1', dstAddr: '198.18.0.2', srcPort: 5004, dstPort: 6000, srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02' };

function setup(t: { teardown(fn: () => void): void }): { dir: string; ts: string; cells: Uint8Array } {
  const dir = mkdtempSync(join(tmpdir(), 'rf-pump-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
    clearMediaCache();
  });
  const cells = concat(stream(35, 7, MS)); // 5 datagrams, one every 7 ms, 35 ms long
  const ts = join(dir, 'a.ts');
  writeFileSync(ts, cells);
  return { dir, ts, cells };
}

function req(name: string, file: string, extra: Partial<StartRequest> = {}): StartRequest {
  return { op: 'start', id: 1, name, stream: 3, file, format: 'mpegts', loop: false, dest: DEST, ...extra };
}

t.test('one aggregate per tick with the packets of all sessions, times from the PCR', async (t) => {
  const { ts, cells } = setup(t);
  let now = 1000 * MS;
  const lane = new FakeLane();
  const pump = new SessionPump(lane, { leadMs: 20, now: () => now });
  const a = pump.start(req('a', ts, { stream: 1, startAt: 1000 * MS }));
  const b = pump.start(req('b', ts, { stream: 2, startAt: 1003 * MS }));
  t.not(a.dest, b.dest);
  t.same(lane.dests.get(a.dest), DEST, 'destination written into the lane');
  t.equal(a.packetsPerPass, 5);
  t.equal(a.pacedBy, 'pcr');
  let r = pump.tick();
  t.equal(lane.commits.length, 1, 'one submission');
  t.equal(r.submitted, 6, 'a: 0 7 14 ms, b: 3 10 17 ms (< now + 20 ms)');
  const c = lane.commits[0];
  t.same(
    c.map((d) => [d.stream, (d.t - 1000 * MS) / MS]).sort((x, y) => x[1] - y[1]),
    [[1, 0], [2, 3], [1, 7], [2, 10], [1, 14], [2, 17]],
  );
  t.same(lane.bytes.subarray(lane.payloadOffset(c[0].slot), lane.payloadOffset(c[0].slot) + c[0].len), cells.subarray(0, 1316), 'cells in the slot');
  now += 20 * MS;
  r = pump.tick();
  t.equal(r.submitted, 4, 'the rest: a 21 28, b 24 31');
  t.same(r.ended.map((e) => e.name).sort(), ['a', 'b'], 'both ended after their last packet');
  t.equal(r.ended[0].counters.packets, 5);
  t.equal(r.ended[0].counters.bytes, 35 * 188);
  t.equal(pump.size, 0);
  t.equal(pump.tick().submitted, 0);
});

t.test('loop, stop, and the destination entry is quarantined before reuse', async (t) => {
  const { ts } = setup(t);
  let now = 0;
  const lane = new FakeLane(256);
  const pump = new SessionPump(lane, { leadMs: 100, destQuarantineMs: 50, now: () => now });
  const a = pump.start(req('a', ts, { loop: true, startAt: 0 }));
  t.equal(pump.tick().submitted, 15, '100 ms of a 35 ms file: 3 passes of 5');
  t.equal(pump.stats().a.passes, 3, 'three passes handed over');
  const final = pump.stop('a');
  t.equal(final.packets, 15);
  t.throws(() => pump.stop('a'), { message: 'session "a" is not running in lane 1' });
  for (const n of ['b', 'c', 'd']) pump.start(req(n, ts, { startAt: 0 }));
  t.throws(() => pump.start(req('e', ts)), { message: 'lane 1: all 4 destination entries are in use (region destsPerLane)' });
  now += 60 * MS;
  const e = pump.start(req('e', ts));
  t.equal(e.dest, a.dest, 'reused after the quarantine');
});

t.test('a worker that falls behind moves the schedule instead of bursting', async (t) => {
  const { ts } = setup(t);
  let now = 0;
  const lane = new FakeLane();
  const pump = new SessionPump(lane, { leadMs: 10, lateLimitMs: 20, now: () => now });
  pump.start(req('a', ts, { startAt: 0 }));
  pump.tick(); // 0 and 7 ms
  now = 500 * MS; // a long pause
  pump.tick();
  const last = lane.commits[1];
  t.equal(pump.stats().a.rebases, 1);
  t.same(last.map((d) => (d.t - now) / MS), [0, 7], 'the next packets from now on, at their spacing');
});

t.test('no free slot: the rest waits for the next tick, counted', async (t) => {
  const { ts } = setup(t);
  const now = 0;
  const lane = new FakeLane(3);
  const pump = new SessionPump(lane, { leadMs: 100, now: () => now });
  pump.start(req('a', ts, { startAt: 0 }));
  t.equal(pump.tick().submitted, 3);
  t.equal(pump.stats().a.slotWaits, 1);
  lane.release();
  t.equal(pump.tick().submitted, 2);
});

t.test('a bad file fails that session only', async (t) => {
  const { dir, ts } = setup(t);
  const now = 0;
  const lane = new FakeLane();
  const pump = new SessionPump(lane, { leadMs: 100, now: () => now });
  pump.start(req('good', ts, { startAt: 0 }));
  const junk = join(dir, 'junk.ts');
  writeFileSync(junk, new Uint8Array(4000).fill(3));
  t.throws(() => pump.start(req('bad', junk)), { code: 'ERR_MEDIA', message: `${junk}: byte offset 0: no MPEG-TS sync byte (0x47 every 188 bytes) found` });
  t.throws(() => pump.start(req('bad', join(dir, 'missing.ts'))), { code: 'ERR_MEDIA' });
  t.throws(() => pump.start(req('good', ts)), { message: 'session "good" is already running' });
  t.throws(() => pump.start(req('bad name', ts)), { code: 'ERR_INVALID_ARG', message: /^session name: "bad name" is not a valid session name \(accepted: 1\.\.128 characters/ });
  t.equal(pump.tick().submitted, 5, 'the good one goes on');
});

t.test('pcap: capture timing and payloads', async (t) => {
  const { dir } = setup(t);
  const file = join(dir, 'a.pcap');
  const pay = (i: number): Uint8Array => new Uint8Array(200).fill(i);
  writeFileSync(file, pcap([0, 5, 6, 30].map((ms, i) => ({ timeNs: ms * MS, frame: ethernet(ipv4Udp(pay(i + 1))) }))));
  const now = 0;
  const lane = new FakeLane();
  const pump = new SessionPump(lane, { leadMs: 100, now: () => now });
  pump.start(req('p', file, { format: 'pcap', startAt: 10 * MS }));
  pump.tick();
  const c = lane.commits[0];
  t.same(c.map((d) => (d.t - 10 * MS) / MS), [0, 5, 6, 30]);
  t.same(c.map((d) => lane.bytes[lane.payloadOffset(d.slot)]), [1, 2, 3, 4]);
  t.same(c.map((d) => d.len), [200, 200, 200, 200]);
});

t.test('sessions ending in the same tick are all served and reported', async (t) => {
  const { ts } = setup(t);
  const now = 0;
  const lane = new FakeLane(256);
  const pump = new SessionPump(lane, { leadMs: 100, now: () => now });
  for (const n of ['a', 'b', 'c', 'd']) pump.start(req(n, ts, { startAt: 0 }));
  const r = pump.tick();
  t.equal(r.submitted, 20);
  t.same(r.ended.map((e) => e.name).sort(), ['a', 'b', 'c', 'd']);
  t.same(r.failed, []);
});

t.test('a ring timeout part-way through a tick: what was not accepted is not counted, its slots come back', async (t) => {
  const { ts } = setup(t);
  const now = 0;
  const lane = new FakeLane(16);
  (lane as { ringEntries: number }).ringEntries = 2;
  let begins = 0;
  lane.begin = function (this: FakeLane): void {
    // the ring takes the first two, then stays full
    if (++begins > 1) throw new ReflectorError('ERR_RING_TIMEOUT', 'lane 1: submit ring full for 5000 ms');
    (this as unknown as { open: unknown[] }).open = [];
  };
  const pump = new SessionPump(lane, { leadMs: 100, now: () => now });
  pump.start(req('a', ts, { startAt: 0 }));
  const r = pump.tick();
  t.match(r.error, { code: 'ERR_RING_TIMEOUT' }, 'the tick reports the refusal instead of throwing');
  t.equal(r.ended.length, 1, 'and still the session that ended in it');
  t.equal(r.ended[0].counters.packets, 2, 'only the 2 packets the ring accepted count as handed over');
  t.equal(lane.commits.flat().length, 2);
  t.equal(spareCount(lane), 3, 'the 3 slots the ring refused wait for the lane\'s next packets');
  t.equal(lane.free.length + spareCount(lane) + 2, 16, 'no slot lost');
});

t.test('resume at a checkpoint: the next packet, not the first, leaves at the start time', async (t) => {
  const { ts, cells } = setup(t);
  let now = 0;
  const lane = new FakeLane(256);
  const pump = new SessionPump(lane, { leadMs: 10, lateLimitMs: 1000, now: () => now });
  pump.start(req('a', ts, { loop: true, startAt: 0 }));
  pump.tick(); // 0 and 7 ms
  now = 50 * MS;
  pump.tick(); // 14, 21, 28 ms, then pass 1: 35, 42, 49, 56 ms
  const at = pump.stats().a.position;
  t.same(at, { packet: 4, pass: 1 }, 'the position is the next packet and the pass');
  pump.stop('a');
  // another node: the same file, from the checkpoint
  const other = new FakeLane(256);
  const resumed = new SessionPump(other, { leadMs: 10, now: () => now });
  const info = resumed.start(req('a', ts, { loop: true, startAt: 100 * MS, resume: at }));
  t.same(info.problems, []);
  now = 100 * MS;
  resumed.tick();
  const first = other.commits[0][0];
  t.equal(first.t, 100 * MS, 'packet 4 leaves at the start time');
  t.same(other.bytes.subarray(other.payloadOffset(first.slot), other.payloadOffset(first.slot) + first.len), cells.subarray(4 * 1316, 5 * 1316), 'the cells of packet 4');
  t.equal(other.commits[0][1].t, 107 * MS, 'then the media timing goes on: packet 0 of pass 2');
  t.same(resumed.stats().a.position, { packet: 1, pass: 2 });
  // a checkpoint outside the file (it changed since) starts from the beginning, said so
  const third = new SessionPump(new FakeLane(), { now: () => now });
  const bad = third.start(req('b', ts, { resume: { packet: 99, pass: 0 } }));
  t.match(bad.problems, [/resume at packet 99 of pass 0 is outside the file: started from the beginning/]);
  t.same(third.stats().b.position, { packet: 0, pass: 0 });
  const noLoop = third.start(req('c', ts, { resume: { packet: 1, pass: 2 } }));
  t.equal(noLoop.problems.length, 1, 'a later pass of a file that does not loop is refused too');
});
