// SPDX-License-Identifier: MIT
// On-demand sessions end to end: the session manager spreads sessions over
// Piscina workers, the workers packetize files into pool slots, the engine
// paces them out of a veth in namespace a, and real clients in namespace b
// save what arrives. A real client: ffprobe identifies the saved stream,
// ffmpeg decodes it without error, the bytes equal the file, and the
// delivery takes the media's duration (paced, not a burst).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SessionManager } from '../../src/session/manager';
import { Testbed, skipUnlessRoot } from '../helpers/testbed';
import { engineOrSkip, startCapture, tcpdumpMissing } from '../aggregate/capture';
import { ethernet, ipv4Udp, pcap, cell, concat, stream } from '../media/synth';
import { ffmpegMissing, makeTs, startSaver } from './media-tools';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
// leadMs 100 / startDelayMs 200 (instead of 40 / 50): two test files run at once, and a stalled
// worker must not turn a paced session into a rebased or late one

if (!skipUnlessRoot(t)) {
  t.test('sessions through the engine', async (t) => {
    const missing = ffmpegMissing() ?? tcpdumpMissing();
    if (missing) {
      process.stderr.write(`# SKIP sessions: ${missing}\n`);
      t.plan(0, missing);
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'rf-sess-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const tb = await Testbed.create(t, { hosts: ['a', 'b'], links: [['a', 'b']] });
    const engine = engineOrSkip(t, { interface: 'veth0', netns: tb.ns('a') });
    if (!engine) return;
    await engine.start();
    const sessions = await SessionManager.create({ region: engine.region, workers: 2, leadMs: 100, startDelayMs: 200, destination: { netns: tb.ns('a'), dev: 'veth0' } });
    t.teardown(() => sessions.close());
    const clip = makeTs(dir, 'clip.ts', 2);
    const clipBytes = readFileSync(clip);
    const B = tb.addr('b');

    await t.test('a real client saves an MPEG-TS session: ffprobe identifies it, ffmpeg decodes it, paced over its duration', async (t) => {
      const saved = join(dir, 'saved.ts');
      const rx = await startSaver(tb, 'b', `${B}:8000`, saved, { timeoutMs: 10_000, idleMs: 600 });
      const info = await sessions.start('clip', clip, `${B}:8000`, 'mpegts', false);
      t.equal(info.pacedBy, 'pcr');
      t.ok(info.durationNs > 1.5e9 && info.durationNs < 2.5e9, `media duration ${(info.durationNs / 1e9).toFixed(3)} s`);
      const ended = new Promise((resolve) => sessions.once('ended', (name, stats) => resolve([name, stats])));
      const r = await rx.result;
      const [name] = (await ended) as [string];
      t.equal(name, 'clip', 'the session ended by itself');
      const bytes = readFileSync(saved);
      t.equal(r.received, info.packetsPerPass, 'every datagram arrived');
      t.equal(bytes.length, clipBytes.length, 'every cell arrived');
      t.equal(sha(bytes), sha(clipBytes), 'byte for byte the file: cells unchanged, none added or dropped');
      const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=format_name:stream=codec_name', '-of', 'json', saved], { encoding: 'utf8' }));
      t.equal(probe.format.format_name, 'mpegts', 'ffprobe: MPEG-TS');
      t.equal(probe.streams[0].codec_name, 'mpeg2video', 'ffprobe: the MPEG-2 video stream');
      const dec = execFileSync('ffmpeg', ['-v', 'error', '-i', saved, '-f', 'null', '-'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      t.equal(dec, '', 'ffmpeg decodes without error');
      const took = Number(BigInt(r.lastNs) - BigInt(r.firstNs));
      const last = info.durationNs - info.durationNs / info.packetsPerPass; // first to last datagram
      t.comment(`delivery took ${(took / 1e9).toFixed(3)} s for ${(info.durationNs / 1e9).toFixed(3)} s of media`);
      t.ok(took >= 0.8 * last, 'paced: the delivery takes about the media duration, not a burst');
      t.ok(took <= 1.5 * info.durationNs, 'and not much longer');
      const sc = engine.region.streamCounters(info.stream);
      t.equal(sc.packets, BigInt(info.packetsPerPass), 'the engine counted every packet on the session\'s stream');
      const framing = sc.bytes - BigInt(clipBytes.length);
      t.ok(framing >= 0n && framing <= 64n * sc.packets, `and its bytes: every payload byte + ${framing / sc.packets} header bytes per frame`);
      t.equal(sc.dropped, 0n, 'none dropped');
    });

    await t.test('RTP (PT 33, 90 kHz, consecutive sequence numbers) carries the same cells', async (t) => {
      const saved = join(dir, 'saved-rtp.ts');
      const rx = await startSaver(tb, 'b', `${B}:8002`, saved, { rtp: true, timeoutMs: 10_000, idleMs: 600 });
      const info = await sessions.start('clip-rtp', clip, `${B}:8002`, 'rtp', false, { ssrc: 0x1234abcd });
      const r = await rx.result;
      t.equal(r.received, info.packetsPerPass);
      t.same(r.rtp!.payloadTypes, [33]);
      t.same(r.rtp!.ssrcs, [0x1234abcd]);
      t.equal(r.rtp!.seqErrors, 0, 'sequence numbers consecutive');
      t.equal(r.rtp!.tsBackwards, 0, 'timestamps never go back');
      const span = ((r.rtp!.lastTs - r.rtp!.firstTs) >>> 0) / 90_000;
      const want = (info.durationNs - info.durationNs / info.packetsPerPass) / 1e9;
      t.ok(Math.abs(span - want) < 0.05, `90 kHz timestamps span ${span.toFixed(3)} s ~ ${want.toFixed(3)} s`);
      t.equal(sha(readFileSync(saved)), sha(clipBytes), 'RTP payloads are the file, byte for byte');
    });

    await t.test('50 sessions to 50 destinations, spread over the workers', async (t) => {
      const short = makeTs(dir, 'short.ts', 0.5);
      const bytes = readFileSync(short);
      const n = 50;
      const cells = bytes.length / 188;
      const perSession = Math.ceil(cells / 7);
      const cap = await startCapture(tb, 'b', 'veth0', 'udp and portrange 9000-9049', n * perSession, 15_000);
      const infos = await Promise.all(Array.from({ length: n }, (_, i) => sessions.start(`s${i}`, short, `${B}:${9000 + i}`, 'mpegts', false)));
      t.same(new Set(infos.map((i) => i.lane)).size, 2, 'both workers have sessions');
      t.equal(new Set(infos.map((i) => i.stream)).size, n, 'one stream id per session');
      const got = await cap.done;
      t.equal(got.length, n * perSession, 'every datagram of every session');
      let intact = 0;
      for (let i = 0; i < n; i++) {
        const mine = got.filter((p) => p.dstPort === 9000 + i).map((p) => p.payload);
        if (sha(Buffer.concat(mine)) === sha(bytes)) intact++;
      }
      t.equal(intact, n, 'each destination got its stream byte for byte');
      const stats = await sessions.stats();
      t.same(Object.keys(stats).filter((k) => /^s\d+$/.test(k)), [], 'all 50 ended');
    });

    await t.test('pcap replay keeps the original inter-packet timing, to the session\'s destination', async (t) => {
      const gapsMs = [0, 10, 5, 20, 2, 15, 8, 30];
      let at = 0;
      const recs = gapsMs.map((g, i) => {
        at += g;
        return { timeNs: at * 1e6, frame: ethernet(ipv4Udp(new Uint8Array(300).fill(i + 1))) };
      });
      const file = join(dir, 'replay.pcap');
      writeFileSync(file, pcap(recs, { epochSec: 1_700_000_000 }));
      const cap = await startCapture(tb, 'b', 'veth0', 'udp and port 8100', recs.length, 5000);
      await sessions.start('replay', file, `${B}:8100`, 'pcap', false);
      const got = await cap.done;
      t.same(got.map((p) => p.payload[0]), [1, 2, 3, 4, 5, 6, 7, 8], 'every packet, in order, rewritten to port 8100');
      const gaps = got.slice(1).map((p, i) => (p.timeNs - got[i].timeNs) / 1e6);
      t.comment(`gaps ms: ${gaps.map((g) => g.toFixed(2)).join(' ')}`);
      // Timing kept: the whole replay spans the capture's 90 ms, and nearly
      // every gap is its original one. One packet held back by a host pause
      // (this shared 2-vCPU machine stalls a thread for milliseconds now and
      // then) stretches one gap and shrinks the next, so two may miss; a
      // replay that ignored the timing (a burst) misses them all.
      const span = (got[got.length - 1].timeNs - got[0].timeNs) / 1e6;
      const total = gapsMs.reduce((a, b) => a + b, 0);
      t.ok(Math.abs(span - total) < 8, `replay spans ${span.toFixed(2)} ms ~ ${total} ms`);
      const kept = gaps.filter((g, i) => Math.abs(g - gapsMs[i + 1]) < 3).length;
      t.ok(kept >= gaps.length - 2, `${kept} of ${gaps.length} gaps within 3 ms of the capture's`);
    });

    await t.test('bad input: an error or the documented recovery for that session; the others go on', async (t) => {
      const good = makeTs(dir, 'good.ts', 1);
      const goodBytes = readFileSync(good);
      const saved = join(dir, 'saved-good.ts');
      const rx = await startSaver(tb, 'b', `${B}:8200`, saved, { timeoutMs: 10_000, idleMs: 600 });
      await sessions.start('good', good, `${B}:8200`, 'mpegts', false);

      const nosync = join(dir, 'nosync.ts');
      writeFileSync(nosync, Buffer.alloc(10_000, 0x11));
      await t.rejects(sessions.start('nosync', nosync, `${B}:8201`), {
        code: 'ERR_MEDIA',
        message: `${nosync}: byte offset 0: no MPEG-TS sync byte (0x47 every 188 bytes) found`,
      });
      await t.rejects(sessions.start('missing', join(dir, 'missing.ts'), `${B}:8201`), { code: 'ERR_MEDIA', message: /missing\.ts: byte offset 0: cannot read the file: ENOENT/ });
      const badPcap = join(dir, 'bad.pcap');
      writeFileSync(badPcap, Buffer.alloc(100, 0x42));
      await t.rejects(sessions.start('badpcap', badPcap, `${B}:8201`, 'pcap'), { code: 'ERR_MEDIA', message: `${badPcap}: byte offset 0: not a pcap file (unknown magic number)` });
      const truncated = join(dir, 'truncated.ts');
      writeFileSync(truncated, goodBytes.subarray(0, goodBytes.length - 100));
      const tr = await sessions.start('truncated', truncated, `${B}:8202`);
      t.match(tr.problems[0], /the last cell is truncated \(88 of 188 bytes\), not sent/, 'truncated: the partial cell is left out, counted');
      const jump = join(dir, 'jump.ts');
      const cells = stream(70, 7, 1e6);
      cells[35] = cell({ pcr: 35 * 27_000 + 5 * 27_000_000, cc: 35 });
      writeFileSync(jump, concat(cells));
      const j = await sessions.start('jump', jump, `${B}:8203`);
      t.match(j.problems.join('\n'), /PCR discontinuity, segment timed at the average rate/, 'PCR jump: timed at the average rate, counted');
      t.ok(j.durationNs < 0.1e9, `no 5 s stall: ${(j.durationNs / 1e6).toFixed(1)} ms`);

      const r = await rx.result;
      t.equal(sha(readFileSync(saved)), sha(goodBytes), 'the good session delivered all of its stream meanwhile');
      t.ok(r.received > 0);
    });

    await t.test('a new manager on the same engine reuses the lanes of a closed one', async (t) => {
      await sessions.close();
      // the region has 4 lanes: main + 2 workers; a second pair exists only by reuse
      const again = await SessionManager.create({ region: engine.region, workers: 2, leadMs: 100, startDelayMs: 200, destination: { netns: tb.ns('a'), dev: 'veth0' } });
      t.teardown(() => again.close());
      const short = join(dir, 'short.ts');
      const cap = await startCapture(tb, 'b', 'veth0', 'udp and port 8300', Math.ceil(readFileSync(short).length / 1316), 5000);
      const info = await again.start('again', short, `${B}:8300`);
      t.ok(info.lane >= 1 && info.lane <= 2, `lane ${info.lane} reused`);
      const got = await cap.done;
      t.equal(sha(Buffer.concat(got.map((p) => p.payload))), sha(readFileSync(short)), 'it delivers');
      await again.close();
    });

    t.equal(engine.region.counter(0, 'drop_bad_dest'), 0n, 'no descriptor named a bad destination');
    t.equal(engine.region.counter(0, 'drop_bad_slot'), 0n);
    await engine.stop();
  });
}
