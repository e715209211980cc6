// SPDX-License-Identifier: MIT
// media_root as the worker enforces it: the file is opened first, and the
// path the kernel opened must be inside the root, so a symbolic link
// swapped in after the name was checked is still refused. FIFOs are refused
// without blocking. Errors carry neither bytes nor sizes of the file.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearMediaCache, loadMedia, loadMediaAsync } from '../../src/media/load';
import { mediaPathProblem } from '../../src/media/root';
import { concat, stream } from './synth';

const dir = mkdtempSync(join(tmpdir(), 'rf-root-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const root = join(dir, 'media');
mkdirSync(root);
const good = join(root, 'good.ts');
writeFileSync(good, concat(stream(14, 7, 1e6)));
const secret = join(dir, 'secret.ts');
writeFileSync(secret, concat(stream(70, 7, 1e6)));

t.test('a link swapped in after the check is refused at open', async (t) => {
  clearMediaCache();
  const f = join(root, 'swap.ts');
  writeFileSync(f, concat(stream(14, 7, 1e6)));
  t.equal(mediaPathProblem(root, f), null, 'checked: a regular file inside the root');
  unlinkSync(f);
  symlinkSync(secret, f);
  t.throws(() => loadMedia(f, 'mpegts', { root }), { code: 'ERR_MEDIA', message: `${f}: byte offset 0: outside media_root ${root} once symbolic links are resolved` });
  clearMediaCache();
  await t.rejects(loadMediaAsync(f, 'mpegts', { root }), { code: 'ERR_MEDIA', message: /outside media_root .* once symbolic links are resolved$/ });
  t.ok(loadMedia(good, 'mpegts', { root }), 'a file inside loads');
  t.ok(loadMedia(f, 'mpegts'), 'without a root, the library reads any file (the server always passes one)');
});

t.test('a FIFO is refused at once, not waited on', async (t) => {
  const fifo = join(root, 'pipe.ts');
  execFileSync('mkfifo', [fifo]);
  const t0 = Date.now();
  t.throws(() => loadMedia(fifo, 'mpegts', { root }), { code: 'ERR_MEDIA', message: `${fifo}: byte offset 0: not a regular file` });
  await t.rejects(loadMediaAsync(fifo, 'mpegts', { root }), { code: 'ERR_MEDIA', message: /not a regular file/ });
  t.ok(Date.now() - t0 < 1000, 'without blocking on the open');
});

t.test('errors carry no bytes and no sizes of the file', async (t) => {
  const junk = join(root, 'junk.pcap');
  writeFileSync(junk, Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz'.repeat(3)));
  for (const [file, format] of [[junk, 'pcap'], [junk, 'mpegts'], [join(root, 'empty.ts'), 'mpegts']] as const) {
    writeFileSync(join(root, 'empty.ts'), '');
    try {
      loadMedia(file, format, { root });
      t.fail(`${format}: loaded`);
    } catch (e) {
      const msg = (e as Error).message.slice(file.length);
      t.notMatch(msg, /0x[0-9a-f]{4}|\b108\b|\b30313233\b/, `${format}: no file bytes or size in "${msg}"`);
      t.match(msg, /^: byte offset \d+: /, 'the file and the byte offset');
    }
  }
});
