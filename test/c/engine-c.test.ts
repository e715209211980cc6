// SPDX-License-Identifier: MIT
// Runs the engine's C unit tests (engine/test/*.c, plain and under
// ASan/UBSan) through `make -C engine test`, so `npm test` covers both
// languages. Each C test exits 0 (pass), 1 (fail) or 77 (skip).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(__dirname, '..', '..', '..');

t.test('engine C unit tests pass, plain and under sanitizers', async (t) => {
  const r = spawnSync('make', ['-s', '-C', join(root, 'engine'), 'test'], {
    encoding: 'utf8',
    timeout: 240_000,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  t.comment(out.trim().split('\n').slice(-30).join('\n'));
  t.equal(r.status, 0, 'make -C engine test exits 0');
  const summaries = [...out.matchAll(/c-tests(?:\[[^\]]*\])?: (\d+) passed, (\d+) failed/g)];
  t.ok(summaries.length > 0, 'the C test runner printed its summary');
  for (const m of summaries) {
    t.ok(Number(m[1]) > 0, `${m[0]}: some tests ran`);
    t.equal(Number(m[2]), 0, `${m[0]}: none failed`);
  }
});
