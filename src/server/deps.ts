// SPDX-License-Identifier: MIT
// The small interfaces the server calls for the pieces it does not own: the
// engine (src/engine), the relays manager (src/relay) and the session manager
// (src/session). src/server/adapters.ts binds them to the real modules; tests
// can pass their own.
import type { Endpoint, Prefix } from '../net/address';
import type { CaptureOptions, CaptureResult, CapturedPacket } from '../capture/capture';
import type { SessionConfig, SessionPosition } from '../config/schema';
import type { EngineCounterReader, LaneSample, RingSample } from '../metrics/registry';
import type { ServerEvent } from './events';

export interface EngineLike {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly running: boolean;
  /** shared counters, read at scrape time */
  counters(): EngineCounterReader;
  rings(): RingSample[];
  pool(): { used: number; size: number } | null;
  /** each lane's faults and state */
  lanes?(): LaneSample[];
}

export interface RelaySpec {
  name: string;
  listen: Endpoint;
  sources: Prefix[];
  subscribers: Endpoint[];
  allowAnySource?: boolean;
  /** ingress limits, 0 = none (maxBps in bits per second) */
  maxPps?: number;
  maxBps?: number;
  /** multicast listen: source-specific join (undefined: derived); TTL of multicast outputs */
  ssm?: boolean;
  multicastTtl?: number;
}

export interface OutputStats {
  packets: bigint;
  bytes: bigint;
  drops: bigint;
}

export interface SessionStats {
  packets: bigint;
  bytes: bigint;
  late: bigint;
  dropped: bigint;
}

export interface RelayManagerLike {
  addRelay(spec: RelaySpec): Promise<void>;
  removeRelay(name: string): Promise<void>;
  addOutput(relay: string, subscriber: Endpoint): Promise<void>;
  removeOutput(relay: string, subscriber: Endpoint): Promise<void>;
  /** counters of one output, null when unknown */
  outputStats(relay: string, subscriber: Endpoint): OutputStats | null;
  /** packets matched by a relay and drops for sources outside its prefixes (and above its limit), null when unknown */
  relayStats?(relay: string): { packets: bigint; bytes: bigint; notAllowed: bigint; rateLimited?: bigint; sent?: OutputStats } | null;
  /** change a relay's ingress limit live (0 = none) */
  setLimit?(relay: string, limit: { maxPps: number; maxBps: number }): Promise<void>;
  /** capture a relay into a pcap file (src/relay/relays.ts captureToFile) */
  captureToFile?(relay: string, file: string, opts: { count?: number; seconds?: number; subscriber?: string }): Promise<{ packets: number; dropped: number; file?: string }>;
  /** capture a relay as an async generator of packets (src/relay/relays.ts capture) */
  capture?(relay: string, opts: CaptureOptions): AsyncGenerator<CapturedPacket, CaptureResult>;
  /** records the capture ring could not take (reflector_capture_dropped_total) */
  captureDropped?(): bigint;
  stop?(): Promise<void>;
  /** the configuration is applied: the kernel tier may replace what a previous server left running */
  commit?(): Promise<void>;
}

export interface SessionManagerLike {
  start(spec: SessionConfig): Promise<void>;
  /** stop producing; packets already handed to the engine still go out. A session that already ended is no error. */
  stop(name: string): Promise<void>;
  stats(name: string): SessionStats | null;
  /** where each running session is in its file (cluster checkpoints, src/cluster/checkpoints.ts) */
  positions?(): Promise<Map<string, SessionPosition>>;
  /** release workers (after the engine drained) */
  close?(): Promise<void>;
  /** a session's frames as an async generator of packets (src/capture/session-capture.ts) */
  capture?(session: string, opts: CaptureOptions): AsyncGenerator<CapturedPacket, CaptureResult>;
  /** capture a session's frames into a pcap file (src/capture/session-capture.ts) */
  captureToFile?(session: string, file: string, opts: { count?: number; seconds?: number }): Promise<{ packets: number; dropped: number; file?: string }>;
}

export interface ServerDeps {
  engine: EngineLike;
  relays: RelayManagerLike;
  sessions: SessionManagerLike;
  /**
   * What the pieces report on their own: sessions that ended or failed (the
   * server drops them from its state), workers that died, sessions that
   * were restarted, relay and engine faults. Called once, at start.
   */
  onEvent?(fn: (e: ServerEvent) => void): void;
}
