// SPDX-License-Identifier: MIT
// Control messages between the session manager (main thread) and a session
// worker, over the worker's MessagePort. Small control data only: a
// Destination is a few strings and numbers; packet bytes never cross.
import type { Destination } from '../region/lane';
import type { MediaFormat } from '../media/load';
import type { ReflectorErrorCode } from '../errors';
import type { MessagePort } from 'node:worker_threads';

export interface StartRequest {
  op: 'start';
  id: number;
  name: string;
  stream: number;
  file: string;
  format: MediaFormat;
  loop: boolean;
  dest: Destination;
  /** bits/s for MPEG-TS without PCR (or with pace 'bitrate'). */
  bitrate?: number;
  pace?: 'pcr' | 'bitrate';
  /** CLOCK_MONOTONIC ns of the first packet (as a number); default now + the pump's start delay. */
  startAt?: number;
  ssrc?: number;
  /** start at this packet and pass (SessionMedia.seek): the next packet, not the first, leaves at startAt */
  resume?: { packet: number; pass: number };
}

export type ControlRequest =
  | StartRequest
  | { op: 'stop'; id: number; name: string }
  | { op: 'stats'; id: number }
  | { op: 'shutdown'; id: number };

/** Worker-side counters of one session (the engine's are Region.streamCounters). */
export interface SessionCounters {
  /** packets and bytes handed to the engine */
  packets: number;
  bytes: number;
  /** completed passes through the file */
  passes: number;
  /** times the schedule was moved later because the worker fell behind more than the lateness limit */
  rebases: number;
  /** ticks that found no free slot for this session's next packet (backpressure) */
  slotWaits: number;
  /** packets larger than a slot, not sent */
  oversize: number;
  /** the file's recoveries (mpegts: lostSync, bytesSkipped, truncatedBytes, pcrWraps, pcrDiscontinuities; pcap: notUdp, fragments, truncatedPackets, timeBackwards, truncatedBytes) */
  media: Record<string, number>;
  /** the next packet to hand over and the pass through the file (a checkpoint: StartRequest.resume) */
  position: { packet: number; pass: number };
}

export interface SessionInfo {
  name: string;
  stream: number;
  dest: number;
  lane: number;
  file: string;
  format: MediaFormat;
  loop: boolean;
  /** CLOCK_MONOTONIC ns of the first packet */
  startAt: number;
  /** one pass through the file, ns */
  durationNs: number;
  packetsPerPass: number;
  pacedBy: 'pcr' | 'bitrate' | 'capture';
  /** the file's recoveries so far, as "byte offset N: what" */
  problems: string[];
}

export type ControlReply =
  | { op: 'reply'; id: number; ok: true; result: unknown }
  | { op: 'reply'; id: number; ok: false; code: ReflectorErrorCode; message: string };

export type WorkerEvent =
  | { op: 'ready'; lane: number; destCount: number; threadId: number }
  | { op: 'ended'; name: string; counters: SessionCounters }
  | { op: 'failed'; name: string; code: ReflectorErrorCode; message: string; counters: SessionCounters };

export type WorkerMessage = ControlReply | WorkerEvent;

/** What the manager hands to the worker's one long task. */
export interface PumpTask {
  sab: SharedArrayBuffer;
  port: MessagePort;
  /** a lane a closed manager of this region used (reused: lanes are claimed for the region's life); absent = claim one */
  lane?: number;
  windowMs: number;
  leadMs: number;
  startDelayMs: number;
  lateLimitMs: number;
  /** slots of this lane no producer holds any more (a dead worker's, found by src/session/reclaim.ts): used first */
  spares?: number[];
  /** one Int32 the worker bumps every loop and request: the manager's hang detector reads it */
  heartbeat: SharedArrayBuffer;
  /** media_root: the worker opens only files whose real path is inside it */
  mediaRoot?: string;
}
