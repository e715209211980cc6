// SPDX-License-Identifier: MIT
// The small interfaces the server calls for the pieces it does not own: the
// engine (src/engine), the relays manager (src/relay) and the session manager
// (src/session). src/server/adapters.ts binds them to the real modules; tests
// can pass their own.
import type { Endpoint, Prefix } from '../net/address';
import type { SessionConfig, SessionPosition } from '../config/schema';
import type { EngineCounterReader, RingSample } from '../metrics/registry';

export interface EngineLike {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly running: boolean;
  /** shared counters, read at scrape time */
  counters(): EngineCounterReader;
  rings(): RingSample[];
  pool(): { used: number; size: number } | null;
}

export interface RelaySpec {
  name: string;
  listen: Endpoint;
  sources: Prefix[];
  subscribers: Endpoint[];
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
  /** packets matched by a relay and drops for sources outside its prefixes, null when unknown */
  relayStats?(relay: string): { packets: bigint; bytes: bigint; notAllowed: bigint } | null;
  stop?(): Promise<void>;
}

export interface SessionManagerLike {
  start(spec: SessionConfig): Promise<void>;
  /** stop producing; packets already handed to the engine still go out */
  stop(name: string): Promise<void>;
  stats(name: string): SessionStats | null;
  /** where each running session is in its file (cluster checkpoints, src/cluster/checkpoints.ts) */
  positions?(): Promise<Map<string, SessionPosition>>;
  /** release workers (after the engine drained) */
  close?(): Promise<void>;
}

export interface ServerDeps {
  engine: EngineLike;
  relays: RelayManagerLike;
  sessions: SessionManagerLike;
}
