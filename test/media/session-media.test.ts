// SPDX-License-Identifier: MIT
// A session's walk through a file: times across loops, RTP wrapping, loading errors.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearMediaCache, loadMedia, loadMediaAsync } from '../../src/media/load';
import { TsFile } from '../../src/media/mpegts';
import { parseRtpHeader, rtpState } from '../../src/media/rtp';
import { SessionMedia } from '../../src/media/session-media';
import { concat, stream } from './synth';

const MS = 1e6;

t.test('loop: the next pass starts one duration later', async (t) => {
  const f = new TsFile('m.ts', concat(stream(14, 7, MS)));
  const s = new SessionMedia(f, 'mpegts', true);
  const dst = new Uint8Array(1400);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    times.push(s.nextTime());
    s.writeNext(dst);
  }
  t.same(times, [0, 7 * MS, 14 * MS, 21 * MS, 28 * MS]);
  t.equal(s.passes, 2);
  t.equal(s.done, false);
  const once = new SessionMedia(f, 'mpegts', false);
  once.writeNext(dst);
  once.writeNext(dst);
  t.equal(once.done, true);
  t.equal(once.nextTime(), Infinity);
});

t.test('rtp: header then the cells; timestamps follow the schedule', async (t) => {
  const f = new TsFile('m.ts', concat(stream(21, 7, MS)));
  const s = new SessionMedia(f, 'rtp', false, rtpState(42, 100, 0));
  const dst = new Uint8Array(1400);
  t.equal(s.maxPacket, 1328);
  const h: number[][] = [];
  for (let i = 0; i < 3; i++) {
    const len = s.writeNext(dst);
    const r = parseRtpHeader(dst)!;
    h.push([len, r.seq, r.timestamp, r.ssrc, dst[12]]);
  }
  t.same(h, [
    [1328, 100, 0, 42, 0x47],
    [1328, 101, 630, 42, 0x47],
    [1328, 102, 1260, 42, 0x47],
  ]);
});

t.test('loadMedia: missing file and wrong format name', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-media-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.throws(() => loadMedia(join(dir, 'nope.ts'), 'mpegts'), { code: 'ERR_MEDIA', message: `${join(dir, 'nope.ts')}: byte offset 0: cannot read the file: ENOENT` });
  t.throws(() => loadMedia(dir, 'mpegts'), { message: `${dir}: byte offset 0: not a regular file` });
  t.throws(() => loadMedia('x', 'mp4' as never), { code: 'ERR_INVALID_ARG', message: 'format: "mp4" is not one of mpegts, rtp, pcap' });
  const p = join(dir, 'a.ts');
  writeFileSync(p, concat(stream(14, 7, MS)));
  const a = loadMedia(p, 'mpegts');
  t.equal(loadMedia(p, 'rtp'), a, 'parsed once per thread');
  clearMediaCache();
  t.not(loadMedia(p, 'mpegts'), a);
});

t.test('loadMediaAsync: same errors, same cache', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-media-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await t.rejects(loadMediaAsync(join(dir, 'nope.ts'), 'mpegts'), { code: 'ERR_MEDIA', message: `${join(dir, 'nope.ts')}: byte offset 0: cannot read the file: ENOENT` });
  await t.rejects(loadMediaAsync(dir, 'pcap'), { message: `${dir}: byte offset 0: not a regular file` });
  const p = join(dir, 'b.ts');
  writeFileSync(p, concat(stream(14, 7, MS)));
  const a = await loadMediaAsync(p, 'mpegts');
  t.equal(loadMedia(p, 'mpegts'), a, 'the sync loader finds it parsed');
});
