// SPDX-License-Identifier: MIT
// A session's capture: the TX thread copies the frames of one stream into
// its capture ring (region.h, rf_capture_ring.armed = stream + 1, read once
// per burst), as they are handed to the port, UDP checksum completed. One
// session capture at a time per engine (one TX ring); relays have their own
// (the RX thread's ring, src/relay/relays.ts).
import { ReflectorError } from '../errors';
import type { Region } from '../region/region';
import { checkCaptureOptions, writePcap, type CaptureOptions, type CaptureResult, type CaptureSummary, type CapturedPacket } from './capture';
import { CaptureRing } from './ring';

const running = new WeakMap<SharedArrayBuffer, string>();
const rings = new WeakMap<SharedArrayBuffer, CaptureRing>();

function ringOf(region: Region): CaptureRing {
  let r = rings.get(region.sab);
  if (!r) {
    r = new CaptureRing(region.sab, 0);
    rings.set(region.sab, r);
  }
  return r;
}

/** The frames of session `name` (stream `stream`) while `live()` holds, bounded by count / seconds. */
export async function* captureSession(
  region: Region, name: string, stream: number, opts: CaptureOptions, live: () => boolean,
): AsyncGenerator<CapturedPacket, CaptureResult> {
  const what = `capture of session "${name}"`;
  const lim = checkCaptureOptions(opts, what);
  if (opts.subscriber !== undefined) throw new ReflectorError('ERR_INVALID_ARG', `${what}.subscriber: a session has one destination; --subscriber applies to relays`);
  const other = running.get(region.sab);
  if (other !== undefined) throw new ReflectorError('ERR_CAPTURE', `${what}: a capture of session "${other}" is running (one session capture at a time per engine); wait for it to end`);
  running.set(region.sab, name);
  const ring = ringOf(region);
  ring.arm(null);
  ring.skip();
  const dropped0 = ring.dropped;
  let n = 0;
  try {
    ring.arm(stream);
    opts.onArmed?.();
    const deadline = lim.seconds === Infinity ? Infinity : Date.now() + lim.seconds * 1000;
    while (n < lim.count && Date.now() < deadline && !opts.signal?.aborted && live()) {
      const recs = ring.drain(lim.count - n);
      for (const x of recs) {
        n++;
        yield { kind: x.kind, what: name, tsNs: x.tsNs, wireLen: x.wireLen, data: x.data };
      }
      if (!recs.length) await new Promise((res) => setTimeout(res, 2));
    }
  } finally {
    ring.arm(null);
    running.delete(region.sab);
  }
  // the TX thread may be inside a burst that read the old value: what it wrote is this stream's
  await new Promise((res) => setTimeout(res, 5));
  for (const x of ring.drain(lim.count - n)) {
    if (x.id !== stream) continue;
    n++;
    yield { kind: x.kind, what: name, tsNs: x.tsNs, wireLen: x.wireLen, data: x.data };
  }
  ring.skip();
  return { dropped: Number(ring.dropped - dropped0) };
}

/** captureSession() into a nanosecond pcap file, created first. */
export async function captureSessionToFile(
  region: Region, name: string, stream: number, file: string, opts: CaptureOptions, live: () => boolean,
): Promise<CaptureSummary> {
  const what = `capture of session "${name}"`;
  checkCaptureOptions(opts, what);
  const other = running.get(region.sab);
  if (other !== undefined) throw new ReflectorError('ERR_CAPTURE', `${what}: a capture of session "${other}" is running (one session capture at a time per engine); wait for it to end`);
  return writePcap(file, () => captureSession(region, name, stream, opts, live), `${what}.out`);
}
