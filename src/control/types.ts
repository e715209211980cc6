// SPDX-License-Identifier: MIT
// The control API's requests and results as TypeScript types: the mirror of
// proto/reflector/v1/control.proto that the handler (src/server/handler.ts),
// the gRPC service and the client share. src/control/wire.ts converts
// between these and the messages on the wire.
import { ReflectorError } from '../errors';

export type Origin = 'config' | 'runtime';

export interface RelayInfo {
  name: string;
  listen: string;
  sources: string[];
  subscribers: string[];
  origin: Origin;
}

export interface SessionInfo {
  name: string;
  file: string;
  to: string;
  format: string;
  loop: boolean;
  origin: Origin;
}

export interface StatsCounter {
  name: string;
  labels: Record<string, string>;
  value: bigint;
}

export interface StatsResult {
  engineRunning: boolean;
  ready: boolean;
  configReloads: bigint;
  configReloadFailures: bigint;
  counters: StatsCounter[];
}

export type Command =
  | { type: 'list' }
  | { type: 'subscribe'; relay: string; subscriber: string }
  | { type: 'unsubscribe'; relay: string; subscriber: string }
  | { type: 'addRelay'; name: string; listen: string; sources: string[]; subscribers: string[]; ssm?: boolean; multicastTtl?: number }
  | { type: 'removeRelay'; name: string }
  | { type: 'startSession'; name: string; file: string; to: string; format: string; loop: boolean }
  | { type: 'stopSession'; name: string }
  | { type: 'stats' };

export type CommandType = Command['type'];

export type ControlErrorCode =
  | 'ERR_INVALID_ARG'
  | 'ERR_NOT_FOUND'
  | 'ERR_EXISTS'
  | 'ERR_CONFLICT'
  | 'ERR_UNAUTHENTICATED'
  | 'ERR_BAD_MESSAGE'
  | 'ERR_UNAVAILABLE'
  | 'ERR_TIMEOUT'
  | 'ERR_INTERNAL';

export type Result =
  /** cluster: the change was written to etcd's desired state, not applied here */
  | { type: 'ok'; cluster?: boolean }
  | { type: 'list'; relays: RelayInfo[]; sessions: SessionInfo[] }
  | { type: 'stats'; stats: StatsResult }
  | { type: 'error'; code: ControlErrorCode | string; message: string };

/** Capture's request: at least one of count and seconds (0 = no such bound). */
export interface CaptureRequest {
  name: string;
  count: number;
  seconds: number;
  /** "ADDR:PORT": that output only; "" = the ingress and every output */
  subscriber: string;
}

/** One packet of a capture stream. */
export interface CapturePacket {
  tsNs: bigint;
  direction: 'ingress' | 'output';
  /** output: the subscriber (a session: its destination) "ADDR:PORT"; ingress: "" */
  output: string;
  frame: Uint8Array;
  wireLength: number;
}

/** How a capture ended: packets sent, packets the engine's capture ring could not take. */
export interface CaptureEnd {
  packets: number;
  dropped: number;
}

/** An error the control API reports to its client; `controlCode` is the ERR_* code on the wire. */
export class ControlError extends ReflectorError {
  readonly controlCode: ControlErrorCode | string;
  constructor(controlCode: ControlErrorCode | string, message: string) {
    super('ERR_CONTROL', message);
    this.controlCode = controlCode;
  }
}

/** Carries out control commands (src/server/handler.ts is the one that runs a server's). */
export interface ControlHandler {
  /** Throw ControlError (or a piece's ReflectorError) for a typed error reply. */
  handle(command: Command): Promise<Result>;
  /**
   * Capture's packets (absent: Capture is UNAVAILABLE). Checks throw before
   * the first packet; `onArmed` is called once the engine captures; the
   * generator ends (returning the summary) at its bound or when `signal` aborts.
   */
  capture?(req: CaptureRequest, opts: { signal: AbortSignal; onArmed: () => void }): AsyncGenerator<CapturePacket, CaptureEnd>;
}
