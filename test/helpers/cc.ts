// SPDX-License-Identifier: MIT
// Compile a C program of the repository (a test fixture in test/fixtures/,
// a benchmark baseline in bench/c/) with gcc into engine/out/ when the
// binary is missing or older than the source. Returns the binary, or the
// reason it cannot be built (the caller skips with it).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..', '..'); // dist/test/helpers -> repo root

/** Build DIR/NAME.c (DIR relative to the repository) with extra gcc arguments. */
export function compileC(dir: string, name: string, extra: string[] = []): { bin: string } | { missing: string } {
  const rel = `${dir}/${name}.c`;
  const src = join(ROOT, rel);
  if (!existsSync(src)) return { missing: `${rel} does not exist` };
  const out = join(ROOT, 'engine', 'out');
  mkdirSync(out, { recursive: true });
  const bin = join(out, name);
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return { bin };
  // build beside and rename: two processes compiling at once never run a half-written binary
  const tmp = `${bin}.${process.pid}.tmp`;
  try {
    execFileSync('gcc', ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-Werror', '-I', join(ROOT, 'engine', 'include'), '-o', tmp, src, ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { code?: string; stderr?: Buffer };
    if (err.code === 'ENOENT') return { missing: 'gcc is not installed' };
    return { missing: `gcc failed on ${rel}: ${err.stderr?.toString().trim() ?? ''}` };
  }
  renameSync(tmp, bin);
  return { bin };
}

export function compileFixture(name: string): { bin: string } | { missing: string } {
  return compileC('test/fixtures', name);
}
