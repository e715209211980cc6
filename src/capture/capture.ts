// SPDX-License-Identifier: MIT
// Capture options (validated with exact messages) and the loop that turns
// a running capture's packets into a pcap file. The capture itself (arming
// the engine, draining the ring) is Relays.capture() in src/relay/relays.ts.
import { rm } from 'node:fs/promises';
import { ReflectorError, invalidArg } from '../errors';
import { PcapWriter, putRecord } from './pcap-writer';

const CHUNK = 1 << 20;
import type { CaptureKind } from './ring';

export interface CaptureOptions {
  /** Stop after this many packets (ingress and outputs together); default: no limit (then seconds is required). */
  count?: number;
  /** Stop after this many seconds; default: no limit (then count is required). At most 86400. */
  seconds?: number;
  /** Only this output ("ADDR:PORT"); its ingress packets are not captured then. */
  subscriber?: string;
  /** Abort the capture (it ends as if the limit were reached). */
  signal?: AbortSignal;
  /** Called once the engine captures (packets from then on are in the capture). */
  onArmed?: () => void;
}

export interface CapturedPacket {
  kind: CaptureKind;
  /** 'ingress': the relay's name; 'output': the subscriber "ADDR:PORT" */
  what: string;
  tsNs: bigint;
  wireLen: number;
  data: Uint8Array;
}

export interface CaptureSummary {
  packets: number;
  /** packets the engine could not hand over (the ring was full): not in the capture */
  dropped: number;
  file?: string;
}

/** The end of an async iterator's run: packets seen and the engine's drops. */
export interface CaptureResult {
  dropped: number;
}

export const MAX_CAPTURE_SECONDS = 86_400;

export function checkCaptureOptions(o: CaptureOptions, what: string): { count: number; seconds: number } {
  if (o === null || typeof o !== 'object') throw invalidArg(`${what}: expected { count, seconds, subscriber }`);
  const count = o.count ?? Infinity;
  const seconds = o.seconds ?? Infinity;
  if (o.count !== undefined && (!Number.isInteger(o.count) || o.count < 1)) throw invalidArg(`${what}.count: ${String(o.count)} is not an integer >= 1`);
  if (o.seconds !== undefined && (typeof o.seconds !== 'number' || !(o.seconds > 0) || o.seconds > MAX_CAPTURE_SECONDS)) {
    throw invalidArg(`${what}.seconds: ${String(o.seconds)} is not a number in (0, ${MAX_CAPTURE_SECONDS}]`);
  }
  if (count === Infinity && seconds === Infinity) throw invalidArg(`${what}: give count or seconds (a capture is bounded)`);
  return { count, seconds };
}

/** Write the packets of `packets` to a nanosecond pcap file; the file is opened before the capture starts. */
export async function writePcap(
  file: string, start: () => AsyncGenerator<CapturedPacket, CaptureResult>, what = 'out',
): Promise<CaptureSummary> {
  const w = await PcapWriter.open(file, what);
  let packets = 0;
  let dropped = 0;
  try {
    const it = start();
    // records are packed into one buffer and written when it fills: no allocation per packet
    let chunk = Buffer.allocUnsafe(CHUNK);
    let pos = 0;
    for (;;) {
      const r = await it.next();
      if (r.done) {
        dropped = r.value.dropped;
        break;
      }
      const p = r.value;
      if (pos + 16 + p.data.length > chunk.length) {
        await w.write([chunk.subarray(0, pos)]);
        chunk = Buffer.allocUnsafe(Math.max(CHUNK, 16 + p.data.length));
        pos = 0;
      }
      pos = putRecord(chunk, pos, p.tsNs, p.data, p.wireLen);
      packets++;
    }
    await w.write([chunk.subarray(0, pos)]);
  } catch (e) {
    await w.close().catch(() => undefined);
    // a capture that never started (bad subscriber, engine refused) leaves no empty file behind
    if (packets === 0) await rm(file, { force: true }).catch(() => undefined);
    throw e instanceof ReflectorError ? e : new ReflectorError('ERR_CAPTURE', `${what}: writing ${file} failed: ${String(e)}`, { cause: e });
  }
  await w.close();
  return { packets, dropped, file };
}
