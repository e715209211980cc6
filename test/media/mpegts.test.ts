// SPDX-License-Identifier: MIT
// MPEG-TS reader on synthetic bytes: cells, datagrams, PCR pacing, and the
// documented recoveries (lost sync, truncation, PCR wrap and jumps).
import t from 'tap';
import { PCR_MODULUS, TsFile } from '../../src/media/mpegts';
import { cell, concat, stream } from './synth';

const MS = 1e6;

t.test('datagrams of 7 cells, the last carries what is left, bytes unchanged', async (t) => {
  const cells = stream(30, 10, MS); // PCR every 10 cells, 1 ms per cell
  const buf = concat(cells);
  const f = new TsFile('mem.ts', buf);
  t.equal(f.counters.cells, 30);
  t.equal(f.datagrams, 5, '4 full datagrams + one of 2 cells');
  const dst = new Uint8Array(2000);
  const out: Uint8Array[] = [];
  for (let i = 0; i < f.datagrams; i++) out.push(dst.slice(0, f.writeDatagram(i, dst)));
  t.same(out.map((d) => d.length), [1316, 1316, 1316, 1316, 376]);
  t.same(concat(out), buf, 'the datagrams concatenate to the file');
  t.same(f.counters.lostSync + f.counters.bytesSkipped + f.counters.truncatedBytes, 0);
});

t.test('PCR pacing: interpolated per cell between PCRs, extrapolated at the ends', async (t) => {
  const f = new TsFile('mem.ts', concat([cell(), cell(), ...stream(40, 10, MS)]));
  t.equal(f.pacedBy, 'pcr');
  t.equal(f.pcrPid, 0x100);
  t.equal(f.counters.pcrs, 4);
  // cell i (after the two leading ones) is at (i + 2) ms from the first cell
  for (const i of [0, 1, 2, 5, 12, 30, 41]) t.ok(Math.abs(f.cellTimes[i] - i * MS) < 1, `cell ${i} at ${i} ms`);
  t.ok(Math.abs(f.durationNs - 42 * MS) < 1, 'duration: last cell + one interval');
  t.ok(Math.abs(f.datagramTime(1) - 7 * MS) < 1, 'a datagram leaves at its first cell');
});

t.test('PCR wraparound at 2^33*300 is unwrapped and counted', async (t) => {
  const start = PCR_MODULUS - 27_000 * 15; // 15 ms before the wrap
  const f = new TsFile('mem.ts', concat(stream(50, 10, MS, start)));
  t.equal(f.counters.pcrWraps, 1);
  t.equal(f.counters.pcrDiscontinuities, 0);
  for (let i = 1; i < 50; i++) {
    if (!(f.cellTimes[i] > f.cellTimes[i - 1])) t.fail(`time goes back at cell ${i}`);
  }
  t.ok(Math.abs(f.cellTimes[49] - 49 * MS) < 1, 'no jump across the wrap');
});

t.test('PCR jumps: forward, backward and flagged discontinuities are timed at the average rate', async (t) => {
  const cells = stream(60, 10, MS);
  // cell 30 jumps forward by 10 s, cell 50 jumps back 20 s
  cells[30] = cell({ pcr: 30 * 27_000 + 10 * 27_000_000, cc: 30 });
  cells[40] = cell({ pcr: 40 * 27_000 + 10 * 27_000_000, cc: 40 });
  cells[50] = cell({ pcr: 27_000 * 3, cc: 50 });
  const f = new TsFile('jump.ts', concat(cells));
  t.equal(f.counters.pcrDiscontinuities, 2, 'the 10 s jump and the jump back');
  t.ok(Math.abs(f.cellTimes[59] - 59 * MS) < 1, 'the stream keeps its rate: no stall, no burst');
  t.match(f.problems.join('\n'), /byte offset 5640: PCR discontinuity/);
  // a flagged discontinuity too
  const c2 = stream(30, 10, MS);
  c2[20] = cell({ pcr: 999 * 27_000, discontinuity: true, cc: 20 });
  const g = new TsFile('flag.ts', concat(c2));
  t.equal(g.counters.pcrDiscontinuities, 1);
  t.ok(Math.abs(g.cellTimes[29] - 29 * MS) < 1);
});

t.test('lost sync: skips to the next offset where sync repeats, counted, cells intact', async (t) => {
  const cells = stream(20, 5, MS);
  const garbage = Uint8Array.from([1, 2, 0x47, 4, 5]); // a lone 0x47 must not fool the resync
  const buf = concat([garbage, ...cells.slice(0, 10), garbage, ...cells.slice(10)]);
  const f = new TsFile('lost.ts', buf);
  t.equal(f.counters.cells, 20, 'every real cell found');
  t.equal(f.counters.lostSync, 2);
  t.equal(f.counters.bytesSkipped, 10);
  t.same(f.problems.slice(0, 2), [
    'byte offset 0: lost sync, skipped 5 bytes to byte offset 5',
    'byte offset 1885: lost sync, skipped 5 bytes to byte offset 1890',
  ]);
  const dst = new Uint8Array(1316);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < f.datagrams; i++) parts.push(dst.slice(0, f.writeDatagram(i, dst)));
  t.same(concat(parts), concat(cells), 'the garbage is gone, the cells unchanged');
});

t.test('truncated last cell: not sent, counted', async (t) => {
  const cells = stream(10, 5, MS);
  const buf = concat(cells).subarray(0, 188 * 9 + 100);
  const f = new TsFile('cut.ts', buf);
  t.equal(f.counters.cells, 9);
  t.equal(f.counters.truncatedBytes, 100);
  t.match(f.problems[0], 'byte offset 1692: the last cell is truncated (100 of 188 bytes), not sent');
});

t.test('errors name the file and the byte offset', async (t) => {
  t.throws(() => new TsFile('empty.ts', new Uint8Array(0)), { code: 'ERR_MEDIA', message: 'empty.ts: byte offset 0: the file is empty' });
  t.throws(() => new TsFile('junk.ts', new Uint8Array(5000).fill(7)), {
    code: 'ERR_MEDIA',
    message: 'junk.ts: byte offset 0: no MPEG-TS sync byte (0x47 every 188 bytes) found',
  });
  const mostlyJunk = concat([new Uint8Array(4000).fill(1), ...stream(3, 1, MS)]);
  t.throws(() => new TsFile('mostly.ts', mostlyJunk), { message: 'mostly.ts: byte offset 0: more than half of the file is not in sync: not an MPEG-TS file' });
  const noPcr = concat(Array.from({ length: 10 }, () => cell()));
  t.throws(() => new TsFile('nopcr.ts', noPcr), {
    code: 'ERR_MEDIA',
    message: 'nopcr.ts: byte offset 0: the stream has fewer than 2 usable PCRs: give the session a bitrate',
  });
  t.throws(() => new TsFile('x.ts', noPcr, { bitrate: -5 }), { code: 'ERR_INVALID_ARG', message: 'bitrate: -5 is not a number of bits per second > 0' });
});

t.test('bitrate pacing where there is no PCR, or when asked', async (t) => {
  const noPcr = concat(Array.from({ length: 14 }, () => cell()));
  const f = new TsFile('nopcr.ts', noPcr, { bitrate: 188 * 8 * 1000 }); // 1000 cells/s
  t.equal(f.pacedBy, 'bitrate');
  t.equal(f.datagramTime(1), 7 * MS);
  t.equal(f.durationNs, 14 * MS);
  const g = new TsFile('pcr.ts', concat(stream(14, 7, 5 * MS)), { bitrate: 188 * 8 * 1000, pace: 'bitrate' });
  t.equal(g.pacedBy, 'bitrate');
  t.equal(g.datagramTime(1), 7 * MS);
});
