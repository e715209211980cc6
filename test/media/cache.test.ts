// SPDX-License-Identifier: MIT
// A worker's media cache keeps what its sessions play and no more: a copy
// stays while a session holds it, the last session out evicts it, copies
// nobody holds go at the next load, and a changed file is read again.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedMediaCount, clearMediaCache, loadMedia, releaseMedia, retainMedia } from '../../src/media/load';
import type { TsFile } from '../../src/media/mpegts';
import { concat, stream } from './synth';

const dir = mkdtempSync(join(tmpdir(), 'rf-cache-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const files = ['a', 'b', 'c'].map((n) => {
  const f = join(dir, `${n}.ts`);
  writeFileSync(f, concat(stream(14, 7, 1e6)));
  return f;
});

t.test('held copies stay, released and unheld ones go', async (t) => {
  clearMediaCache();
  const a = loadMedia(files[0], 'mpegts');
  retainMedia(a);
  retainMedia(a); // two sessions
  t.equal(loadMedia(files[0], 'mpegts'), a, 'the same parsed copy for the second load');
  const b = loadMedia(files[1], 'mpegts'); // nobody holds b
  t.equal(cachedMediaCount(), 2);
  loadMedia(files[2], 'mpegts');
  t.equal(cachedMediaCount(), 2, 'b, held by nobody, went when c was loaded');
  t.not(loadMedia(files[1], 'mpegts'), b, 'b is parsed again');
  releaseMedia(a);
  t.equal(loadMedia(files[0], 'mpegts'), a, 'one session still holds a');
  releaseMedia(a);
  loadMedia(files[1], 'mpegts');
  t.not(loadMedia(files[0], 'mpegts'), a, 'the last session out evicted a');
  // a thousand sessions, one at a time, over many files: the cache stays small
  for (let i = 0; i < 1000; i++) {
    const m = loadMedia(files[i % 3], 'mpegts');
    retainMedia(m);
    releaseMedia(m);
  }
  t.ok(cachedMediaCount() <= 1, `after 1000 start/stop pairs: ${cachedMediaCount()} cached`);
});

t.test('a changed file is read again; the old copy\'s holders keep theirs', async (t) => {
  clearMediaCache();
  const a = loadMedia(files[0], 'mpegts');
  retainMedia(a);
  writeFileSync(files[0], concat(stream(21, 7, 1e6)));
  utimesSync(files[0], new Date(), new Date(Date.now() + 5000));
  const a2 = loadMedia(files[0], 'mpegts');
  t.not(a2, a, 'a new copy for the new file');
  t.equal((a2 as TsFile).datagrams, 3, 'with the new content');
  t.equal((a as TsFile).datagrams, 2, 'the old holder keeps its copy');
  releaseMedia(a); // must not evict the new copy
  retainMedia(a2);
  t.equal(loadMedia(files[0], 'mpegts'), a2, 'still cached');
  releaseMedia(a2);
});
