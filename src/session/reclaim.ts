// SPDX-License-Identifier: MIT
// Giving back the slots a dead lane producer held. Every slot of a lane is
// in exactly one place: on its free ring (the engine gave it back), held by
// the lane's producer (taken, not submitted), on its submit ring, or in
// flight in the engine. The rings' free-running indexes count the first
// two exactly:
//
//   held = free.consumer - submit.producer    (taken and never submitted)
//   back = free.producer - free.consumer      (given back, not taken again)
//
// Once the producer is dead nothing more is taken or submitted, and the
// engine only gives slots back. When the submit ring is empty and back +
// held = the lane's slots, nothing is in flight any more: the slots that are
// not on the free ring are exactly the held ones, and no descriptor can
// still name one of the lane's destination entries. Only then are they
// handed to the lane's next producer (never earlier: a slot the engine still
// had would then be used twice). This reads the rings, it writes only the
// dead producer's two waiting flags; the engine's side is not touched.
import { HDR, LANE, RING } from '../region/layout';
import type { Region } from '../region/region';

export interface LaneCensus {
  /** nothing in flight: `lost` is exact */
  settled: boolean;
  held: number;
  back: number;
  /** the held slots, when settled */
  lost: number[];
}

export function laneCensus(region: Region, lane: number): LaneCensus {
  const u = region.u32;
  const base = (HDR.lanes + lane * LANE.size) >> 2;
  const sub = u[base + (LANE.submitOff >> 2)];
  const fr = u[base + (LANE.freeOff >> 2)];
  const first = u[base + (LANE.slotFirst >> 2)];
  const count = u[base + (LANE.slotCount >> 2)];
  // the engine's releases of `consumer` (submit) and `producer` (free) are
  // store-release: these acquire loads see the slot numbers before them
  const sp = Atomics.load(u, (sub + RING.producer) >> 2);
  const sc = Atomics.load(u, (sub + RING.consumer) >> 2);
  const fp = Atomics.load(u, (fr + RING.producer) >> 2);
  const fc = Atomics.load(u, (fr + RING.consumer) >> 2);
  const held = (fc - sp) >>> 0;
  const back = (fp - fc) >>> 0;
  if (sp !== sc || held + back !== count || held > count) return { settled: false, held, back, lost: [] };
  const data = fr + u[(fr + RING.dataOff) >> 2];
  const mask = u[(fr + RING.mask) >> 2];
  const free = new Set<number>();
  for (let i = 0; i < back; i++) free.add(u[(data + (((fc + i) >>> 0) & mask) * 4) >> 2]);
  const lost: number[] = [];
  for (let s = first; s < first + count; s++) if (!free.has(s)) lost.push(s);
  // a slot submitted twice or a foreign one on the ring: the counts lie, claim nothing
  if (lost.length !== held) return { settled: false, held, back, lost: [] };
  return { settled: true, held, back, lost };
}

/**
 * Wait (timer polling, never blocking) until the lane is settled, then clear
 * the dead producer's waiting flags and return its held slots; null when the
 * engine did not give everything back within timeoutMs (then nothing is
 * reclaimed: losing slots is safe, using one twice is not).
 */
export async function reclaimLane(region: Region, lane: number, timeoutMs = 5000, pollMs = 5): Promise<number[] | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = laneCensus(region, lane);
    if (c.settled) {
      const u = region.u32;
      const base = (HDR.lanes + lane * LANE.size) >> 2;
      // the dead producer cannot clear them; the next one starts clean
      Atomics.store(u, (u[base + (LANE.freeOff >> 2)] + RING.consumerWaiting) >> 2, 0);
      Atomics.store(u, (u[base + (LANE.submitOff >> 2)] + RING.producerWaiting) >> 2, 0);
      return c.lost;
    }
    if (Date.now() >= deadline) return null;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
