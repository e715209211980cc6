// SPDX-License-Identifier: MIT
// The engine from TypeScript: validates options (messages name the key and
// the accepted values), owns the region and drives the native lifecycle.
// start() creates the C engine (opening the port) and starts its threads;
// stop() stops them and frees the engine, so a stopped engine holds no
// socket and start() after stop() opens everything again. Both run on a
// libuv worker thread: the JS thread never waits for a join.
import * as path from 'node:path';
import { ReflectorError, invalidArg } from '../errors';
import { checkName } from '../names';
import { childrenOf } from './children';
import { native, type NativeEngineConfig } from '../native';
import { Region, type RegionParams } from '../region/region';

export type Backend = 'afpacket' | 'afxdp' | 'null';
export const BACKENDS: readonly Backend[] = ['afpacket', 'afxdp', 'null'];

export interface EngineOptions {
  /** Interface the engine owns, e.g. "eth0". */
  interface: string;
  /** Network namespace name under /run/netns (as `ip netns` names it). */
  netns?: string;
  /**
   * Default afpacket (AF_PACKET TX and RX rings); afxdp sends from the TX
   * thread through an AF_XDP socket (copy mode, queue 0; RX as afpacket);
   * null discards every frame (tests, benches).
   */
  backend?: Backend;
  region?: Partial<RegionParams>;
  /** Packets later than this are dropped (counter drop_late); 0 or absent = never. */
  lateDropMs?: number;
  /** TX thread sleeps until this long before a deadline, then spins (default: the engine's). */
  spinUs?: number;
  /** CPUs to pin the TX / RX threads to. */
  cpuTx?: number;
  cpuRx?: number;
  /**
   * SCHED_FIFO priority of the TX thread (1..99; 0 or absent = ordinary
   * scheduling). Wakes it on time however busy its CPU is; needs
   * CAP_SYS_NICE (root has it). Best with cpuTx on a CPU of its own.
   */
  txPriority?: number;
  /**
   * A flush also takes the packets due within this many microseconds after
   * now: they leave up to that early, in one send() with the due ones
   * (0..1000, default 0 = each packet at its own time). Cuts system calls
   * when packets are spread evenly in time (many sessions).
   */
  txWindowUs?: number;
  /** Frames per burst: descriptors taken per round and frames per send() (1..256, default 64). */
  burst?: number;
  /** Frames of each AF_PACKET TX ring (afxdp: of the UMEM): a power of two, at least 2 x burst, at most 65536 (default 512). */
  txFrames?: number;
  /**
   * The AF_PACKET RX ring (TPACKET_V3): rxBlocks blocks of rxBlockSize bytes (a power of
   * two, 4096..67108864, above the interface's MTU; 2..4096 blocks; default 256 x 65536).
   * A block is handed over when full or 1 ms after its first frame, so below a few
   * 10 kpps the ring holds ~rxBlocks ms of traffic whatever the block size.
   */
  rxBlocks?: number;
  rxBlockSize?: number;
  /**
   * Where relays run (docs/kernel-tier.md): "kernel" (default) relays in the
   * engine's tc ingress program where the kernel allows it, "user" in the
   * RX thread (the program then only keeps relayed traffic from the kernel
   * stack). A kernel or machine that refuses the program falls back to
   * "user" (relayTier() says why).
   */
  relayTier?: RelayTier;
  /** Watchdog: with no heartbeat from this engine for this many seconds the tc program passes all traffic to the kernel (1..86400, default 30). */
  kernelOrphanS?: number;
}

export type RelayTier = 'kernel' | 'user';
export const RELAY_TIERS: readonly RelayTier[] = ['kernel', 'user'];
/** The committed tc program (engine/bpf/relay.bpf.c, built by `make -C engine bpf`). */
export const BPF_OBJECT = path.join(__dirname, '..', '..', '..', 'engine', 'bpf', 'relay.bpf.o');

const OPTION_KEYS = ['interface', 'netns', 'backend', 'region', 'lateDropMs', 'spinUs', 'cpuTx', 'cpuRx', 'txPriority', 'txWindowUs', 'burst', 'txFrames', 'rxBlocks', 'rxBlockSize', 'relayTier', 'kernelOrphanS'];
/** The engine's RF_BURST_MAX and its defaults (engine/src/engine.c). */
export const BURST_MAX = 256;
export const DEFAULT_BURST = 64;
export const TX_FRAMES_MAX = 65536;
/** The AF_PACKET port's accepted RX ring geometry (engine/src/port_afpacket.c). */
export const RX_BLOCKS_MAX = 4096;
export const RX_BLOCK_SIZE_MIN = 4096;
export const RX_BLOCK_SIZE_MAX = 1 << 26;
const NETNS_DIR = '/run/netns';

type State = 'stopped' | 'starting' | 'running' | 'stopping' | 'closed';

export class Engine {
  readonly region: Region;
  readonly interface: string;
  readonly backend: Backend;
  /** Full path of the namespace, or undefined for the current one. */
  readonly netnsPath: string | undefined;
  private readonly cfg: NativeEngineConfig;
  private state: State = 'stopped';
  private id = 0;
  private closing: Promise<void> | null = null;
  private tier: { tier: 'kernel' | 'user' | 'none'; why: string } = { tier: 'none', why: 'engine not started' };

  constructor(opts: EngineOptions) {
    if (opts === null || typeof opts !== 'object') throw invalidArg('engine: expected an options object');
    for (const k of Object.keys(opts)) {
      if (!OPTION_KEYS.includes(k)) throw invalidArg(`engine.${k} is not an engine option (accepted: ${OPTION_KEYS.join(', ')})`);
    }
    checkName('interface', opts.interface, 'engine.interface');
    const backend = opts.backend ?? 'afpacket';
    if (!BACKENDS.includes(backend)) {
      throw invalidArg(`engine.backend: "${String(backend)}" is not a backend (accepted: ${BACKENDS.join(', ')})`);
    }
    if (opts.netns !== undefined) checkName('netns', opts.netns, 'engine.netns');
    const lateDropMs = opts.lateDropMs ?? 0;
    if (typeof lateDropMs !== 'number' || !Number.isFinite(lateDropMs) || lateDropMs < 0 || lateDropMs > 3_600_000) {
      throw invalidArg(`engine.lateDropMs: ${String(opts.lateDropMs)} is not in 0..3600000 (0 = never drop late packets)`);
    }
    if (opts.spinUs !== undefined && (typeof opts.spinUs !== 'number' || !Number.isInteger(opts.spinUs) || opts.spinUs < 0 || opts.spinUs > 1_000_000)) {
      throw invalidArg(`engine.spinUs: ${String(opts.spinUs)} is not an integer in 0..1000000`);
    }
    for (const k of ['cpuTx', 'cpuRx'] as const) {
      const v = opts[k];
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < -1 || v > 1023)) {
        throw invalidArg(`engine.${k}: ${String(v)} is not a CPU number (accepted: -1 = any, 0..1023)`);
      }
    }
    const tw = opts.txWindowUs;
    if (tw !== undefined && (typeof tw !== 'number' || !Number.isFinite(tw) || tw < 0 || tw > 1000)) {
      throw invalidArg(`engine.txWindowUs: ${String(tw)} is not in 0..1000 (microseconds; 0 = each packet at its own time)`);
    }
    const tp = opts.txPriority;
    if (tp !== undefined && (typeof tp !== 'number' || !Number.isInteger(tp) || tp < 0 || tp > 99)) {
      throw invalidArg(`engine.txPriority: ${String(tp)} is not a SCHED_FIFO priority (accepted: 0 = ordinary scheduling, 1..99)`);
    }
    if (opts.burst !== undefined && (typeof opts.burst !== 'number' || !Number.isInteger(opts.burst) || opts.burst < 1 || opts.burst > BURST_MAX)) {
      throw invalidArg(`engine.burst: ${String(opts.burst)} is not an integer in 1..${BURST_MAX}`);
    }
    const burst = opts.burst ?? DEFAULT_BURST;
    const tf = opts.txFrames;
    if (
      tf !== undefined &&
      (typeof tf !== 'number' || !Number.isInteger(tf) || tf < 2 * burst || tf > TX_FRAMES_MAX || (tf & (tf - 1)) !== 0)
    ) {
      throw invalidArg(`engine.txFrames: ${String(tf)} is not a power of two in ${2 * burst}..${TX_FRAMES_MAX} (at least twice engine.burst = ${burst})`);
    }
    const rb = opts.rxBlocks;
    if (rb !== undefined && (typeof rb !== 'number' || !Number.isInteger(rb) || rb < 2 || rb > RX_BLOCKS_MAX)) {
      throw invalidArg(`engine.rxBlocks: ${String(rb)} is not an integer in 2..${RX_BLOCKS_MAX}`);
    }
    const rbs = opts.rxBlockSize;
    if (
      rbs !== undefined &&
      (typeof rbs !== 'number' || !Number.isInteger(rbs) || rbs < RX_BLOCK_SIZE_MIN || rbs > RX_BLOCK_SIZE_MAX || (rbs & (rbs - 1)) !== 0)
    ) {
      throw invalidArg(`engine.rxBlockSize: ${String(rbs)} is not a power of two in ${RX_BLOCK_SIZE_MIN}..${RX_BLOCK_SIZE_MAX}`);
    }
    const tier = opts.relayTier ?? 'kernel';
    if (!RELAY_TIERS.includes(tier)) throw invalidArg(`engine.relayTier: ${JSON.stringify(opts.relayTier)} is not a tier (accepted: ${RELAY_TIERS.join(', ')})`);
    const orphan = opts.kernelOrphanS ?? 30;
    if (typeof orphan !== 'number' || !Number.isInteger(orphan) || orphan < 1 || orphan > 86400) {
      throw invalidArg(`engine.kernelOrphanS: ${String(opts.kernelOrphanS)} is not an integer in 1..86400 (seconds)`);
    }
    this.interface = opts.interface;
    this.backend = backend;
    this.netnsPath = opts.netns === undefined ? undefined : `${NETNS_DIR}/${opts.netns}`;
    this.cfg = {
      backend,
      ifname: opts.interface,
      netns: this.netnsPath,
      lateDropNs: Math.round(lateDropMs * 1e6),
      spinNs: opts.spinUs === undefined ? undefined : opts.spinUs * 1000,
      cpuTx: opts.cpuTx ?? -1,
      cpuRx: opts.cpuRx ?? -1,
      txPriority: opts.txPriority ?? 0,
      txWindowNs: Math.round((opts.txWindowUs ?? 0) * 1000),
      burst: opts.burst,
      txFrames: tf,
      rxBlocks: rb,
      rxBlockSize: rbs,
      bpfObject: BPF_OBJECT,
      relayTier: tier === 'user' ? 1 : 0,
      kernelOrphanS: orphan,
    };
    this.region = Region.create(opts.region ?? {});
  }

  /** Which tier relays ("none": no tc program, nothing keeps relayed traffic from the kernel) and why it is not "kernel". Valid while running. */
  relayTier(): { tier: 'kernel' | 'user' | 'none'; why: string } {
    return this.tier;
  }

  get running(): boolean {
    return this.state === 'running';
  }

  /** Open the port and start the engine's threads. Rejects with ERR_ENGINE_START naming the interface or setting. */
  async start(): Promise<void> {
    if (this.state === 'closed' || this.closing) throw new ReflectorError('ERR_CLOSED', 'engine: start() after close()');
    if (this.state !== 'stopped') throw new ReflectorError('ERR_ENGINE_STATE', `engine: start() while ${this.state} (call stop() first)`);
    this.state = 'starting';
    const n = native();
    try {
      if (!n.engineAvailable()) throw new Error('engine: this build of the addon has no engine (engine/src/engine.c missing)');
      this.id = await n.engineCreate(this.region.sab, this.cfg);
      const id = this.id;
      this.tier = n.engineRelayTier(id);
      // the tc program's counters join the region's at every read (scrape time)
      this.region.setKernelSource({ reasons: () => n.engineKernelCounters(id), output: (slot) => n.engineKernelOutput(id, slot) });
      await n.engineStart(this.id);
    } catch (e) {
      if (this.id !== 0) {
        this.region.setKernelSource(null);
        n.engineDestroy(this.id);
        this.id = 0;
      }
      this.state = 'stopped';
      const msg = e instanceof Error ? e.message : String(e);
      throw new ReflectorError('ERR_ENGINE_START', `engine on ${this.describe()}: ${msg}`, { cause: e });
    }
    this.state = 'running';
  }

  /** Stop the threads (joined on a worker thread) and close the port. */
  async stop(): Promise<void> {
    if (this.state !== 'running') throw new ReflectorError('ERR_ENGINE_STATE', `engine: stop() while ${this.state}`);
    this.state = 'stopping';
    const n = native();
    try {
      await n.engineStop(this.id);
    } finally {
      // the program's final counts stay in the region's totals (they only go up)
      this.region.setKernelSource(null);
      n.engineDestroy(this.id);
      this.id = 0;
      this.state = 'stopped';
    }
  }

  /**
   * Close everything built on this engine, then the engine: the session
   * managers on its region first (they stop producing), then the relays
   * managers (their policy is removed while the engine still answers), then
   * the engine's threads. Idempotent: every call returns the same promise,
   * and a closed engine does not start again.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      // a start() in progress finishes first (its port must be closed too)
      while (this.state === 'starting' || this.state === 'stopping') await new Promise((r) => setTimeout(r, 5));
      const errors: unknown[] = [];
      for (const kind of ['sessions', 'relays'] as const) {
        for (const c of childrenOf(this.region.sab, kind)) await c.close().catch((e: unknown) => errors.push(e));
      }
      if (this.state === 'running') await this.stop().catch((e: unknown) => errors.push(e));
      this.state = 'closed';
      if (errors.length) throw new ReflectorError('ERR_CLOSED', `engine: closed with errors: ${errors.map((e) => (e as Error).message ?? String(e)).join('; ')}`);
    })();
    return this.closing;
  }

  /** MAC, MTU and ifindex of the engine's interface (in its namespace). */
  interfaceInfo(): { mac: string; mtu: number; ifindex: number } {
    try {
      return native().interfaceInfo(this.interface, this.netnsPath);
    } catch (e) {
      throw invalidArg(`engine.interface: ${(e as Error).message}`);
    }
  }

  private describe(): string {
    return `interface ${this.interface}${this.netnsPath ? ` in ${this.netnsPath}` : ''} (${this.backend} backend)`;
  }
}
