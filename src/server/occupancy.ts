// SPDX-License-Identifier: MIT
// Ring occupancy and pool use, read at scrape time from the ring headers in
// the shared region (indexes only: a racy but harmless snapshot, each index
// is a single aligned 32-bit word written by one side).
import { HDR, LANE, RING } from '../region/layout';
import type { Region } from '../region/region';
import type { RingSample } from '../metrics/registry';

function ring(u32: Uint32Array, off: number, name: string): RingSample {
  const producer = u32[(off + RING.producer) >> 2];
  const consumer = u32[(off + RING.consumer) >> 2];
  // free-running indexes: the difference is right across wraparound
  return { ring: name, used: (producer - consumer) >>> 0, size: u32[(off + RING.entries) >> 2] };
}

export function ringSamples(region: Region): RingSample[] {
  const u = region.u32;
  const out: RingSample[] = [ring(u, u[HDR.policyOff >> 2], 'policy'), ring(u, u[HDR.eventOff >> 2], 'event')];
  for (let i = 0; i < region.laneCount; i++) {
    const lane = HDR.lanes + i * LANE.size;
    out.push(ring(u, u[(lane + LANE.submitOff) >> 2], `lane${i}.submit`));
  }
  return out;
}

/** Slots not on any lane's free ring are in use (being filled, queued or in flight). */
export function poolSample(region: Region): { used: number; size: number } {
  const u = region.u32;
  let free = 0;
  for (let i = 0; i < region.laneCount; i++) {
    const lane = HDR.lanes + i * LANE.size;
    free += ring(u, u[(lane + LANE.freeOff) >> 2], '').used;
  }
  return { used: Math.max(0, region.slotCount - free), size: region.slotCount };
}
