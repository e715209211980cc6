// SPDX-License-Identifier: MIT
// RTP (RFC 3550) for MPEG-TS: RFC 2250 / RFC 3551 payload type 33 (MP2T),
// 90 kHz timestamps taken from the schedule, one sequence number per packet,
// one SSRC per session. The 12-byte header goes in front of the cells.
export const RTP_HEADER = 12;
export const RTP_PT_MP2T = 33;
export const RTP_CLOCK_HZ = 90_000;

export interface RtpState {
  readonly ssrc: number;
  /** Next sequence number (16 bits, wraps). */
  seq: number;
  /** Timestamp of schedule time 0 (32 bits). */
  readonly tsBase: number;
}

/** A fresh state; random start values as RFC 3550 5.1 recommends. */
export function rtpState(ssrc?: number, seq?: number, tsBase?: number): RtpState {
  const r = (bits: number): number => Math.floor(Math.random() * 2 ** bits);
  return { ssrc: (ssrc ?? r(32)) >>> 0, seq: (seq ?? r(16)) & 0xffff, tsBase: (tsBase ?? r(32)) >>> 0 };
}

/** 90 kHz timestamp of a schedule time (ns from the session's start). */
export function rtpTimestamp(state: RtpState, timeNs: number): number {
  return (state.tsBase + Math.floor((timeNs * RTP_CLOCK_HZ) / 1e9)) % 2 ** 32;
}

/** Write the header at dst[at..at+12) for a packet scheduled at timeNs; advances seq. */
export function writeRtpHeader(dst: Uint8Array, at: number, state: RtpState, timeNs: number, marker = false): number {
  const ts = rtpTimestamp(state, timeNs);
  dst[at] = 0x80; // V=2, no padding, no extension, no CSRC
  dst[at + 1] = (marker ? 0x80 : 0) | RTP_PT_MP2T;
  dst[at + 2] = (state.seq >> 8) & 0xff;
  dst[at + 3] = state.seq & 0xff;
  dst[at + 4] = (ts >>> 24) & 0xff;
  dst[at + 5] = (ts >>> 16) & 0xff;
  dst[at + 6] = (ts >>> 8) & 0xff;
  dst[at + 7] = ts & 0xff;
  dst[at + 8] = (state.ssrc >>> 24) & 0xff;
  dst[at + 9] = (state.ssrc >>> 16) & 0xff;
  dst[at + 10] = (state.ssrc >>> 8) & 0xff;
  dst[at + 11] = state.ssrc & 0xff;
  state.seq = (state.seq + 1) & 0xffff;
  return RTP_HEADER;
}

export interface RtpHeader {
  version: number;
  marker: boolean;
  payloadType: number;
  seq: number;
  timestamp: number;
  ssrc: number;
  headerLen: number;
}

/** Parse a header (for tests and receivers); null when it is not RTP version 2. */
export function parseRtpHeader(b: Uint8Array): RtpHeader | null {
  if (b.length < RTP_HEADER || b[0] >> 6 !== 2) return null;
  const cc = b[0] & 0x0f;
  return {
    version: 2,
    marker: (b[1] & 0x80) !== 0,
    payloadType: b[1] & 0x7f,
    seq: (b[2] << 8) | b[3],
    timestamp: ((b[4] << 24) | (b[5] << 16) | (b[6] << 8) | b[7]) >>> 0,
    ssrc: ((b[8] << 24) | (b[9] << 16) | (b[10] << 8) | b[11]) >>> 0,
    headerLen: RTP_HEADER + cc * 4,
  };
}
