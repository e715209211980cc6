// SPDX-License-Identifier: MIT
// Payloads of the relay tests: sequence number (uint32 BE) in the first 4
// bytes, the length in the next 2, then bytes derived from both, so a
// receiver can tell exactly which packet it got and whether any byte changed.
export function makePayload(seq: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(Math.max(len, 6));
  b.writeUInt32BE(seq >>> 0, 0);
  b.writeUInt16BE(b.length, 4);
  let x = (seq * 2654435761 + b.length) >>> 0 || 1;
  for (let i = 6; i < b.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** The seq of a payload made by makePayload, or -1 if any byte differs. */
export function checkPayload(b: Buffer): number {
  if (b.length < 6 || b.readUInt16BE(4) !== b.length) return -1;
  const seq = b.readUInt32BE(0);
  return makePayload(seq, b.length).equals(b) ? seq : -1;
}
