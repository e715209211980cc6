// SPDX-License-Identifier: MIT
// Loads the engine's TypeScript API (src/engine/engine.ts, src/region/region.ts)
// and the addon at run time, so end-to-end tests and benches can skip with a
// reason while those pieces are still being built instead of failing to
// compile. The interfaces are the parts of the brief's API these tests use.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Destination } from '../../src/net/destination';

export type { Destination };

export interface PacketDesc {
  slot: number;
  len: number;
  dest: number;
  stream: number;
  txTime: bigint;
}

export interface LaneApi {
  readonly index: number;
  readonly destFirst: number;
  readonly destCount: number;
  allocSlot(timeoutMs?: number): number;
  payload(slot: number): Uint8Array;
  writeDest(index: number, d: Destination): void;
  submit(descs: PacketDesc[], timeoutMs?: number): void;
}

export interface RegionApi {
  readonly sab: SharedArrayBuffer;
  lane(index: number): LaneApi;
  claimWorkerLane(): LaneApi;
  counter(thread: 0 | 1, name: string): bigint;
}

export interface RegionStatic {
  fromShared(sab: SharedArrayBuffer): RegionApi;
}

export interface EngineOptionsApi {
  interface: string;
  netns?: string;
  backend?: 'afpacket' | 'null';
  region?: Record<string, number>;
  lateDropMs?: number;
}

export interface EngineApi {
  readonly region: RegionApi;
  readonly running: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  interfaceInfo(): { mac: string; mtu: number; ifindex: number };
}

export interface EngineModule {
  Engine: new (opts: EngineOptionsApi) => EngineApi;
  Region: RegionStatic;
}

const ROOT = join(__dirname, '..', '..', '..'); // dist/test/helpers -> repo root

/** The engine API, or the reason it cannot be used yet. */
export function loadEngineApi(): EngineModule | string {
  const need: Array<[string, string]> = [
    [join(ROOT, 'build', 'Release', 'reflector.node'), 'the native addon build/Release/reflector.node is not built (npx node-gyp rebuild)'],
    [join(ROOT, 'dist', 'src', 'region', 'region.js'), 'src/region/region.ts (Region, Lane) does not exist yet'],
    [join(ROOT, 'dist', 'src', 'engine', 'engine.js'), 'src/engine/engine.ts (Engine) does not exist yet'],
  ];
  for (const [file, why] of need) if (!existsSync(file)) return why;
  try {
    /* eslint-disable @typescript-eslint/no-require-imports */
    const region = require(join(ROOT, 'dist', 'src', 'region', 'region.js')) as { Region?: RegionStatic };
    const engine = require(join(ROOT, 'dist', 'src', 'engine', 'engine.js')) as { Engine?: EngineModule['Engine'] };
    const native = require(join(ROOT, 'dist', 'src', 'native.js')) as { native(): { engineAvailable?: () => boolean } };
    /* eslint-enable @typescript-eslint/no-require-imports */
    if (typeof region.Region?.fromShared !== 'function') return 'src/region/region.ts does not export Region.fromShared yet';
    if (typeof engine.Engine !== 'function') return 'src/engine/engine.ts does not export Engine yet';
    const n = native.native();
    if (typeof n.engineAvailable === 'function' && !n.engineAvailable()) return 'the addon was built without engine/src/engine.c (engineAvailable() is false)';
    return { Engine: engine.Engine, Region: region.Region };
  } catch (e) {
    return `the engine API does not load: ${(e as Error).message.split('\n')[0]}`;
  }
}
