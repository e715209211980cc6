// SPDX-License-Identifier: MIT
// A real stream through the relay (issue #4): ffmpeg sends an MPEG-TS test
// stream (lavfi testsrc, 3 s at 25 fps, MPEG-2 video) to P; the engine
// splits it to two subscribers, each saves what it gets, and ffprobe
// decodes every one of the 75 frames from each capture.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { followFixture } from '../helpers/fixture-process';
import { TIERS, cannotRun, endpoint, makeBed } from './bed';

const CAPTURE = join(__dirname, 'ts-capture.js');
const missing = ['ffmpeg', 'ffprobe'].filter((b) => spawnSync(b, ['-version']).status !== 0);

if (!cannotRun(t)) {
  for (const tier of TIERS) t.test(`ffmpeg MPEG-TS -> relay -> two subscribers, ffprobe decodes all 75 frames at each (${tier} tier)`, { skip: missing.length ? `${missing.join(', ')} not installed` : false }, async (t) => {
    const bed = await makeBed(t, {}, 2, { relayTier: tier });
    const { tb, relays } = bed;
    const dir = mkdtempSync(join(tmpdir(), 'rf-relay-ts-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const listen = endpoint(tb.addr('relay'), 5000);
    await relays.addRelay({ name: 'tv', listen, sources: [`${tb.addr('origin')}/32`], subscribers: [endpoint(tb.addr('s1'), 6000), endpoint(tb.addr('s2'), 6000)] });
    const caps = await Promise.all(['s1', 's2'].map(async (h) => {
      const file = join(dir, `${h}.ts`);
      const f = followFixture<{ datagrams: number; bytes: number }>(
        tb.spawn(h, [process.execPath, CAPTURE, tb.addr(h), '6000', file, '1500', '20000']), `ts-capture in ${h}`);
      await f.ready;
      return { file, done: f.result };
    }));
    const ff = await tb.exec('origin', ['ffmpeg', '-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25',
      '-t', '3', '-c:v', 'mpeg2video', '-f', 'mpegts', `udp://${tb.addr('relay')}:5000?pkt_size=1316&localaddr=${tb.addr('origin')}`], { timeoutMs: 20000 });
    t.equal(ff.stderr.trim(), '', 'ffmpeg sent the stream without complaint');
    const sent = relays.relayStats('tv')?.packets ?? 0n;
    t.ok(sent > 0n, `the relay matched ${sent} datagrams`);
    for (const [i, c] of caps.entries()) {
      const got = await c.done;
      t.equal(BigInt(got.datagrams), sent, `s${i + 1}: every datagram arrived (${got.datagrams}, ${got.bytes} bytes)`);
      const p = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,nb_read_frames',
        '-of', 'json', c.file], { encoding: 'utf8' });
      t.equal(p.status, 0, `s${i + 1}: ffprobe reads the capture`);
      const st = (JSON.parse(p.stdout || '{}') as { streams?: Array<{ codec_name: string; nb_read_frames: string }> }).streams?.[0];
      t.equal(st?.codec_name, 'mpeg2video', `s${i + 1}: an MPEG-2 video stream`);
      t.equal(Number(st?.nb_read_frames), 75, `s${i + 1}: all 75 frames decode`);
      t.equal(p.stderr.trim(), '', `s${i + 1}: no decoding error`);
    }
  });
}
