// SPDX-License-Identifier: MIT
// Compile a C test fixture (test/fixtures/NAME.c) with gcc into engine/out/
// when the binary is missing or older than the source. Returns the binary,
// or the reason it cannot be built (the caller skips with it).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..', '..'); // dist/test/helpers -> repo root

export function compileFixture(name: string): { bin: string } | { missing: string } {
  const src = join(ROOT, 'test', 'fixtures', `${name}.c`);
  if (!existsSync(src)) return { missing: `test/fixtures/${name}.c does not exist` };
  const out = join(ROOT, 'engine', 'out');
  mkdirSync(out, { recursive: true });
  const bin = join(out, name);
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return { bin };
  // build beside and rename: two test files compiling at once never run a half-written binary
  const tmp = `${bin}.${process.pid}.tmp`;
  try {
    execFileSync('gcc', ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-Werror', '-o', tmp, src], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { code?: string; stderr?: Buffer };
    if (err.code === 'ENOENT') return { missing: 'gcc is not installed' };
    return { missing: `gcc failed on test/fixtures/${name}.c: ${err.stderr?.toString().trim() ?? ''}` };
  }
  renameSync(tmp, bin);
  return { bin };
}
