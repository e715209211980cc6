// SPDX-License-Identifier: MIT
// Piscina worker of the engine-path benchmark: claims a lane, then until the
// stop flag is set takes free slots in bursts, copies the payload into each
// slot (what a packetizer does) and submits the burst as one aggregate with
// the cursor verbs (no object per packet). Runs on its own core while the
// engine's TX thread drains the lane into the AF_PACKET TX ring.
import { Region } from '../../src/region/region';
import type { Lane } from '../../src/region/lane';
import type { Destination } from '../../src/region/lane';

export interface EngineBenchTask {
  sab: SharedArrayBuffer;
  /** Int32Array[0] != 0: stop */
  stop: SharedArrayBuffer;
  dest: Destination;
  size: number;
  burst: number;
}

let attached: { sab: SharedArrayBuffer; lane: Lane } | undefined;

export default function run(task: EngineBenchTask): { packets: number; lane: number } {
  if (!attached || attached.sab !== task.sab) attached = { sab: task.sab, lane: Region.fromShared(task.sab).claimWorkerLane() };
  const { lane } = attached;
  lane.writeDest(lane.destFirst, task.dest);
  const stop = new Int32Array(task.stop);
  const template = new Uint8Array(task.size).fill(0x5a);
  const slots = new Uint32Array(Math.min(task.burst, lane.ringEntries));
  const bytes = lane.bytes;
  let packets = 0;
  while (Atomics.load(stop, 0) === 0) {
    const n = lane.allocSlots(slots, 2000);
    lane.begin(n, 2000);
    for (let k = 0; k < n; k++) {
      const off = lane.payloadOffset(slots[k]);
      bytes.set(template, off);
      // a per-packet sequence number, as a packetizer would write
      bytes[off] = packets & 0xff;
      bytes[off + 1] = (packets >>> 8) & 0xff;
      lane.put(k, slots[k], task.size, lane.destFirst, 1, 0);
      packets++;
    }
    lane.commit();
  }
  return { packets, lane: lane.index };
}
