// SPDX-License-Identifier: MIT
// Runs the engine's C unit tests (engine/test/*.c, plain, under ASan/UBSan,
// and the threaded ones under ThreadSanitizer) through `make -C engine
// test`, so `npm test` covers both languages. Each C test exits 0 (pass),
// 1 (fail) or 77 (skip); a TSan race report fails its test (exit 66).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(__dirname, '..', '..', '..');

t.test('engine C unit tests pass, plain and under sanitizers (ASan/UBSan, TSan)', async (t) => {
  const r = spawnSync('make', ['-s', '-C', join(root, 'engine'), 'test'], {
    encoding: 'utf8',
    timeout: 420_000,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  t.comment(out.trim().split('\n').slice(-30).join('\n'));
  t.equal(r.status, 0, 'make -C engine test exits 0');
  const summaries = [...out.matchAll(/c-tests(?:\[[^\]]*\])?: (\d+) passed, (\d+) failed/g)];
  t.ok(summaries.length > 0, 'the C test runner printed its summary');
  t.same(
    summaries.map((m) => /^c-tests(\[[^\]]*\])?/.exec(m[0])?.[1] ?? '').sort(),
    ['', '[asan]', '[tsan]'],
    'plain, ASan/UBSan and TSan runs',
  );
  for (const m of summaries) {
    t.ok(Number(m[1]) > 0, `${m[0]}: some tests ran`);
    t.equal(Number(m[2]), 0, `${m[0]}: none failed`);
  }
});
