// SPDX-License-Identifier: MIT
// The region's parameters (struct rf_region_params): names, defaults and the
// type checks TypeScript can do. Ranges are checked by the engine's
// rf_region_layout(), whose message names the key and its accepted range.
import { invalidArg } from '../errors';

export interface RegionParams {
  lanes: number; // 1..64, lane 0 = main thread, 1.. = workers
  slotsPerLane: number; // power of two
  slotSize: number; // power of two >= 512, RF_SLOT_HEADROOM bytes precede the payload
  submitEntries: number; // descriptors per lane ring, power of two
  destsPerLane: number;
  policyEntries: number; // power of two
  eventEntries: number; // power of two
  maxStreams: number;
  maxOutputs: number;
}

export const DEFAULT_REGION_PARAMS: Readonly<RegionParams> = Object.freeze({
  lanes: 4,
  slotsPerLane: 1024,
  slotSize: 2048,
  submitEntries: 1024,
  destsPerLane: 256,
  policyEntries: 64,
  eventEntries: 256,
  maxStreams: 1024,
  maxOutputs: 1024,
});

const KEYS = Object.keys(DEFAULT_REGION_PARAMS) as (keyof RegionParams)[];

/** Defaults filled in; unknown keys and non-integers refused, naming the key. */
export function resolveRegionParams(p: Partial<RegionParams> = {}, what = 'region'): RegionParams {
  if (p === null || typeof p !== 'object') throw invalidArg(`${what}: expected an object of region parameters`);
  for (const k of Object.keys(p)) {
    if (!(KEYS as string[]).includes(k)) {
      throw invalidArg(`${what}.${k} is not a region parameter (accepted: ${KEYS.join(', ')})`);
    }
  }
  const out = { ...DEFAULT_REGION_PARAMS };
  for (const k of KEYS) {
    const v = p[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw invalidArg(`${what}.${k} = ${String(v)} is invalid (accepted: an integer, see the engine's range)`);
    }
    out[k] = v;
  }
  return out;
}
