// SPDX-License-Identifier: MIT
// The consumer side of an engine thread's capture ring (region.h,
// rf_capture_ring; the producer is engine/src/relay_capture.c): records
// from `consumer` up to `producer`, copied out, then the space released.
// Runs on the main thread, polled by src/capture/capture.ts; the engine
// never waits for it (it drops and counts what does not fit).
import { CAPTURE_DATA, CAPTURE_HDR, CAPTURE_REC, CAPTURE_RING, CAPTURE_STRIDE, CAP_KIND, HDR } from '../region/layout';

export type CaptureKind = 'ingress' | 'output' | 'session';

export interface CaptureRecord {
  kind: CaptureKind;
  /** relay id (ingress), output id (output) or stream (session) */
  id: number;
  /** CLOCK_REALTIME in nanoseconds, when the engine copied it */
  tsNs: bigint;
  /** the frame's length on the wire (data may be shorter: CAPTURE_SNAP) */
  wireLen: number;
  /** the Ethernet frame, a copy */
  data: Uint8Array;
}

const KINDS: Record<number, CaptureKind> = { [CAP_KIND.ingress]: 'ingress', [CAP_KIND.output]: 'output', [CAP_KIND.session]: 'session' };

export class CaptureRing {
  private readonly u32: Uint32Array;
  private readonly u8: Uint8Array;
  private readonly dv: DataView;
  private readonly base: number;
  private readonly data: number;

  /** Ring `ring` (0: the TX thread's, 1: the RX thread's) of the region in `sab`. */
  constructor(sab: SharedArrayBuffer, ring: number) {
    this.u32 = new Uint32Array(sab);
    this.u8 = new Uint8Array(sab);
    this.dv = new DataView(sab);
    this.base = this.u32[HDR.captureOff >> 2] + ring * CAPTURE_STRIDE;
    this.data = this.base + CAPTURE_HDR;
  }

  /** TX ring: capture stream `stream` (null: none). The TX thread reads it once per burst. */
  arm(stream: number | null): void {
    Atomics.store(this.u32, (this.base + CAPTURE_RING.armed) >> 2, stream === null ? 0 : stream + 1);
  }

  /** Records copied by the engine, and records it dropped (ring full). */
  get captured(): bigint {
    return this.dv.getBigUint64(this.base + CAPTURE_RING.captured, true);
  }

  get dropped(): bigint {
    return this.dv.getBigUint64(this.base + CAPTURE_RING.dropped, true);
  }

  /** Release everything written so far unread (stale records of an earlier capture). */
  skip(): void {
    const end = Atomics.load(this.u32, (this.base + CAPTURE_RING.producer) >> 2);
    // the space is free for the engine again: pairs with its acquire load of `consumer`
    Atomics.store(this.u32, (this.base + CAPTURE_RING.consumer) >> 2, end);
  }

  /** Take up to `max` records (copies), releasing their space. */
  drain(max = Infinity): CaptureRecord[] {
    const out: CaptureRecord[] = [];
    // the records' bytes are visible once we see the position: pairs with the engine's release store
    const end = Atomics.load(this.u32, (this.base + CAPTURE_RING.producer) >> 2);
    let pos = Atomics.load(this.u32, (this.base + CAPTURE_RING.consumer) >> 2);
    while (pos !== end && out.length < max) {
      const off = pos & (CAPTURE_DATA - 1);
      const tail = CAPTURE_DATA - off;
      // a record never wraps: less than a header before the end is skipped by rule
      if (tail < CAPTURE_REC.size) {
        pos = (pos + tail) >>> 0;
        continue;
      }
      const at = this.data + off;
      const len = this.dv.getUint32(at + CAPTURE_REC.len, true);
      if (len < CAPTURE_REC.size || len > tail || len % 8 !== 0) {
        // not a record the engine writes: give up on what is there rather than read garbage
        pos = end;
        break;
      }
      const kind = KINDS[this.dv.getUint16(at + CAPTURE_REC.kind, true)];
      if (kind) {
        const caplen = Math.min(this.dv.getUint32(at + CAPTURE_REC.caplen, true), len - CAPTURE_REC.size);
        // one copy out of the ring (slice() of a SharedArrayBuffer would allocate another SharedArrayBuffer)
        const data = new Uint8Array(caplen);
        data.set(this.u8.subarray(at + CAPTURE_REC.size, at + CAPTURE_REC.size + caplen));
        out.push({
          kind,
          id: this.dv.getUint32(at + CAPTURE_REC.id, true),
          tsNs: this.dv.getBigUint64(at + CAPTURE_REC.tsNs, true),
          wireLen: this.dv.getUint32(at + CAPTURE_REC.wireLen, true),
          data,
        });
      }
      pos = (pos + len) >>> 0;
    }
    Atomics.store(this.u32, (this.base + CAPTURE_RING.consumer) >> 2, pos);
    return out;
  }
}
