// SPDX-License-Identifier: MIT
// The consumer side of a capture ring (src/capture/ring.ts) against records
// laid out by the producer's rules (engine/src/capture.c): 8-byte aligned
// records, a PAD record before the end, the tail shorter than a header
// skipped by rule, positions that wrap at 2^32; a record with an impossible
// length (a region someone scribbled on) ends the drain instead of reading
// garbage. The byte positions are the mirror's (src/region/layout.ts),
// checked against the engine at attach.
import t from 'tap';
import { CaptureRing } from '../../src/capture/ring';
import { CAPTURE_DATA, CAPTURE_HDR, CAPTURE_REC, CAPTURE_RING, CAP_KIND, HDR, PAGE } from '../../src/region/layout';

const CAP_OFF = PAGE;

function region(): { sab: SharedArrayBuffer; dv: DataView; u32: Uint32Array } {
  const sab = new SharedArrayBuffer(CAP_OFF + 2 * (CAPTURE_HDR + CAPTURE_DATA));
  const u32 = new Uint32Array(sab);
  u32[HDR.captureOff >> 2] = CAP_OFF;
  return { sab, dv: new DataView(sab), u32 };
}

/** A producer following capture.c's rules on ring 1; returns the new position. */
function put(r: ReturnType<typeof region>, pos: number, kind: number, id: number, data: Uint8Array): number {
  const base = CAP_OFF + (CAPTURE_HDR + CAPTURE_DATA);
  const need = (CAPTURE_REC.size + data.length + 7) & ~7;
  let off = pos % CAPTURE_DATA;
  const tail = CAPTURE_DATA - off;
  if (tail < need) {
    if (tail >= CAPTURE_REC.size) {
      r.dv.setUint32(base + CAPTURE_HDR + off + CAPTURE_REC.len, tail, true);
      r.dv.setUint16(base + CAPTURE_HDR + off + CAPTURE_REC.kind, CAP_KIND.pad, true);
    }
    pos = (pos + tail) >>> 0;
    off = 0;
  }
  const at = base + CAPTURE_HDR + off;
  r.dv.setUint32(at + CAPTURE_REC.len, need, true);
  r.dv.setUint32(at + CAPTURE_REC.caplen, data.length, true);
  r.dv.setUint32(at + CAPTURE_REC.wireLen, data.length + 1, true);
  r.dv.setUint16(at + CAPTURE_REC.kind, kind, true);
  r.dv.setUint32(at + CAPTURE_REC.id, id, true);
  r.dv.setBigUint64(at + CAPTURE_REC.tsNs, 1_700_000_000_123_456_789n, true);
  new Uint8Array(r.sab, at + CAPTURE_REC.size, data.length).set(data);
  pos = (pos + need) >>> 0;
  Atomics.store(r.u32, (base + CAPTURE_RING.producer) >> 2, pos);
  return pos;
}

t.test('records come out in order, copied, their space released', async (t) => {
  const r = region();
  const ring = new CaptureRing(r.sab, 1);
  let pos = 0;
  pos = put(r, pos, CAP_KIND.ingress, 7, Uint8Array.from([1, 2, 3]));
  pos = put(r, pos, CAP_KIND.output, 3, Uint8Array.from([4, 5]));
  const got = ring.drain();
  t.same(got.map((x) => [x.kind, x.id, [...x.data], x.wireLen, x.tsNs]), [
    ['ingress', 7, [1, 2, 3], 4, 1_700_000_000_123_456_789n],
    ['output', 3, [4, 5], 3, 1_700_000_000_123_456_789n],
  ]);
  const base = CAP_OFF + CAPTURE_HDR + CAPTURE_DATA;
  t.equal(r.u32[(base + CAPTURE_RING.consumer) >> 2], pos, 'consumer = producer: the space is the engine\'s again');
  // the copy is ours: the engine may overwrite the ring
  new Uint8Array(r.sab).fill(0xee, base + CAPTURE_HDR, base + CAPTURE_HDR + 64);
  t.same([...got[0].data], [1, 2, 3], 'a copy, not a view of the ring');
  t.same(ring.drain(), [], 'nothing more');
});

t.test('wrap: a PAD record, and a tail shorter than a header skipped by rule; positions past 2^32', async (t) => {
  const r = region();
  const ring = new CaptureRing(r.sab, 1);
  const base = CAP_OFF + CAPTURE_HDR + CAPTURE_DATA;
  // start near the end of the area and near 2^32 so both wrap
  const start = (0x100000000 - CAPTURE_DATA + CAPTURE_DATA - 100) >>> 0;
  r.u32[(base + CAPTURE_RING.consumer) >> 2] = start;
  r.u32[(base + CAPTURE_RING.producer) >> 2] = start;
  let pos = start;
  pos = put(r, pos, CAP_KIND.ingress, 1, new Uint8Array(40)); // 72 bytes: fits in the 100 left
  // 28 bytes left: less than a header, skipped by rule
  pos = put(r, pos, CAP_KIND.output, 2, new Uint8Array(100));
  t.ok(pos < start, 'the position wrapped past 2^32');
  let got = ring.drain();
  t.same(got.map((x) => [x.kind, x.id, x.data.length]), [['ingress', 1, 40], ['output', 2, 100]], 'both records, across the end of the area');
  // a PAD record: 200 bytes left, a record of 300 does not fit
  const p2 = (CAPTURE_DATA - 200) >>> 0;
  r.u32[(base + CAPTURE_RING.consumer) >> 2] = p2;
  pos = put(r, p2, CAP_KIND.session, 9, new Uint8Array(300));
  got = ring.drain();
  t.same(got.map((x) => [x.kind, x.id, x.data.length]), [['session', 9, 300]], 'the PAD record is skipped, the record after it read');
  t.equal(r.u32[(base + CAPTURE_RING.consumer) >> 2], pos);
});

t.test('a scribbled length ends the drain; max bounds it; arm writes stream + 1', async (t) => {
  const r = region();
  const ring = new CaptureRing(r.sab, 1);
  const base = CAP_OFF + CAPTURE_HDR + CAPTURE_DATA;
  let pos = put(r, 0, CAP_KIND.ingress, 1, new Uint8Array(8));
  pos = put(r, pos, CAP_KIND.ingress, 2, new Uint8Array(8));
  pos = put(r, pos, CAP_KIND.ingress, 3, new Uint8Array(8));
  t.same(ring.drain(2).map((x) => x.id), [1, 2], 'at most max');
  // the third record's length says 12: not a multiple of 8
  r.dv.setUint32(base + CAPTURE_HDR + 80 + CAPTURE_REC.len, 12, true);
  t.same(ring.drain(), [], 'a record the engine never writes is not read');
  t.equal(r.u32[(base + CAPTURE_RING.consumer) >> 2], pos, 'and everything up to the producer is released');
  const tx = new CaptureRing(r.sab, 0);
  tx.arm(41);
  t.equal(r.u32[(CAP_OFF + CAPTURE_RING.armed) >> 2], 42, 'TX ring armed for stream 41 (stored + 1)');
  tx.arm(null);
  t.equal(r.u32[(CAP_OFF + CAPTURE_RING.armed) >> 2], 0, 'disarmed');
});
