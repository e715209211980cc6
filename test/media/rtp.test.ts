// SPDX-License-Identifier: MIT
// RTP header for MPEG-TS (RFC 2250 / 3551 PT 33): fields, 90 kHz, wraparound.
import t from 'tap';
import { parseRtpHeader, rtpState, rtpTimestamp, writeRtpHeader } from '../../src/media/rtp';

t.test('header fields', async (t) => {
  const s = rtpState(0xdeadbeef, 0xfffe, 0xffffff00);
  const b = new Uint8Array(12);
  writeRtpHeader(b, 0, s, 0);
  t.same(Array.from(b), [0x80, 33, 0xff, 0xfe, 0xff, 0xff, 0xff, 0x00, 0xde, 0xad, 0xbe, 0xef]);
  writeRtpHeader(b, 0, s, 10e6); // 10 ms = 900 ticks
  const h = parseRtpHeader(b)!;
  t.equal(h.payloadType, 33);
  t.equal(h.seq, 0xffff);
  t.equal(h.timestamp, (0xffffff00 + 900) % 2 ** 32, '90 kHz, wraps at 2^32');
  t.equal(h.ssrc, 0xdeadbeef);
  writeRtpHeader(b, 0, s, 20e6);
  t.equal(parseRtpHeader(b)!.seq, 0, 'sequence wraps at 2^16');
  t.equal(rtpTimestamp(rtpState(1, 0, 0), 1e9), 90_000);
  t.equal(parseRtpHeader(new Uint8Array(12)), null, 'version 0 is not RTP');
});

t.test('random start values differ per session', async (t) => {
  const a = rtpState();
  const b = rtpState();
  t.not(a.ssrc, b.ssrc);
});
