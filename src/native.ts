// SPDX-License-Identifier: MIT
// Typed loader of the native addon (build/Release/reflector.node). The addon
// is context aware, so this works in the main thread and in every worker;
// each thread gets its own addon instance (per-environment state).
import * as path from 'node:path';
import type { Layout } from './region/layout';
import type { RegionParams } from './region/params';

/** Layout computed by rf_region_layout(): the same shape as the TypeScript mirror's. */
export type NativeLayout = Layout;

/** What the addon needs to create an engine (struct rf_engine_config). */
export interface NativeEngineConfig {
  backend: 'afpacket' | 'afxdp' | 'null';
  ifname: string;
  netns?: string; // full path, e.g. /run/netns/NAME
  /** path of engine/bpf/relay.bpf.o (the kernel tier); absent: no tc program */
  bpfObject?: string;
  /** 0 default (kernel where allowed), 1 user, 2 kernel */
  relayTier?: number;
  kernelOrphanS?: number;
  txFrames?: number;
  rxBlockSize?: number;
  rxBlocks?: number;
  burst?: number;
  mtu?: number;
  lateDropNs?: number;
  spinNs?: number;
  cpuTx?: number;
  cpuRx?: number;
  txPriority?: number;
  txWindowNs?: number;
}

export interface InterfaceInfo {
  mac: string;
  mtu: number;
  ifindex: number;
}

export type FutexResult = 'ok' | 'not-equal' | 'timed-out';

export interface Native {
  /** rf_region_fields: published constants and byte offsets, e.g. "rf_desc.seq". */
  regionFields(): Record<string, number>;
  /** rf_counter_names in enum order. */
  counterNames(): string[];
  /** rf_lane_fault_names in enum order. */
  laneFaultNames(): string[];
  /** rf_region_layout(): throws an Error with the C message (naming the key and range). */
  regionLayout(p: RegionParams): NativeLayout;
  /** A zeroed, page-aligned SharedArrayBuffer (V8's own are only 16-byte aligned). */
  regionAlloc(bytes: number): SharedArrayBuffer;
  /** rf_region_init(): throws an Error with the C message. */
  regionInit(sab: SharedArrayBuffer, p: RegionParams): void;
  /** rf_region_check(): magic, version, size; throws an Error with the C message. */
  regionCheck(sab: SharedArrayBuffer): void;
  /** Write engine thread `thread`'s doorbell eventfd; false when the engine is stopped. */
  ring(sab: SharedArrayBuffer, thread: number): boolean;
  /** FUTEX_WAIT_PRIVATE on the 32-bit word at byteOffset; blocks the calling thread. */
  futexWait(sab: SharedArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): FutexResult;
  /** FUTEX_WAKE_PRIVATE every waiter of the word; returns how many woke. */
  futexWake(sab: SharedArrayBuffer, byteOffset: number): number;
  /** false while engine/src/engine.c is not part of the build. */
  engineAvailable(): boolean;
  /** rf_engine_create() on a worker thread; resolves with an engine id. */
  engineCreate(sab: SharedArrayBuffer, cfg: NativeEngineConfig): Promise<number>;
  engineStart(id: number): Promise<void>;
  engineStop(id: number): Promise<void>;
  /** Frees the engine; call after engineStop() resolved (it joins otherwise). */
  engineDestroy(id: number): void;
  engineRunning(id: number): boolean;
  /** Which tier relays and why not the kernel one. */
  engineRelayTier(id: number): { tier: 'kernel' | 'user' | 'none'; why: string };
  /** The tc program's counters by engine counter index (64), summed over CPUs. */
  engineKernelCounters(id: number): BigUint64Array;
  /** The tc program's counters of an output slot: packets, bytes, drops, limited. */
  engineKernelOutput(id: number, slot: number): BigUint64Array;
  /** BPF_PROG_TEST_RUN (tests): testOut 0 = as on the wire, k = rewrite for output k-1. */
  engineKernelTestRun(id: number, testOut: number, frame: Uint8Array): { ret: number; frame: Buffer };
  /** MAC, MTU and ifindex of an interface (netns: full path of a namespace). */
  interfaceInfo(ifname: string, netns?: string): InterfaceInfo;
  /**
   * Send one UDP datagram to addr:port from a socket opened inside `netns`
   * (full path; absent = the current namespace) on a short-lived thread, so
   * the kernel resolves the neighbour. ifindex scopes an IPv6 link-local
   * address. Returns "" or what failed (a failed send is not fatal).
   */
  udpProbe(family: 4 | 6, addr: string, port: number, ifindex: number, netns?: string): string;
  /** Gratuitous ARP (family 4) or unsolicited neighbour advertisement (6) for addr, `count` times (engine/include/reflector/announce.h). */
  announceAddress(ifname: string, netns: string | undefined, family: 4 | 6, addr: Uint8Array, count: number): void;
  /**
   * Join `group` on `ifname` in `netns` (engine/include/reflector/mcast.h):
   * any-source without sources, else source-specific. Returns the fd holding
   * the membership; throws an Error with `errno` when the kernel refuses.
   */
  mcastJoin(ifname: string, netns: string | undefined, family: 4 | 6, group: Uint8Array, sources: Uint8Array[]): number;
  /** Close a membership fd from mcastJoin (the kernel leaves the group). */
  mcastLeave(fd: number): void;
  /** One datagram to a service manager's NOTIFY_SOCKET (a path or "@abstract"); "" or what failed (src/server/systemd.ts). */
  sdNotify(socket: string, message: string): string;
}

let loaded: Native | undefined;

/** The addon of this thread, loaded on first use. */
export function native(): Native {
  if (loaded === undefined) {
    // dist/src/native.js -> <root>/build/Release/reflector.node
    const file = path.join(__dirname, '..', '..', 'build', 'Release', 'reflector.node');
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      loaded = require(file) as Native;
    } catch (e) {
      throw new Error(`reflector: cannot load the native addon ${file} (build it with \`npx node-gyp rebuild\`): ${(e as Error).message}`, { cause: e });
    }
  }
  return loaded;
}
