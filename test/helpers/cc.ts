// SPDX-License-Identifier: MIT
// Compile a C program of the repository (a test fixture in test/fixtures/,
// a benchmark baseline in bench/c/) with gcc, or a BPF object with clang,
// into engine/out/ when the output is missing or older than the source. Returns the binary, or the
// reason it cannot be built (the caller skips with it).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..', '..'); // dist/test/helpers -> repo root

/** Build DIR/NAME.c (DIR relative to the repository) with extra gcc arguments. */
export function compileC(dir: string, name: string, extra: string[] = []): { bin: string } | { missing: string } {
  return build(`${dir}/${name}.c`, name, 'gcc', (src, out) => ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-Werror', '-I', join(ROOT, 'engine', 'include'), '-o', out, src, ...extra]);
}

/**
 * Build the BPF object DIR/NAME.bpf.c with clang into engine/out/NAME.bpf.o
 * (needs clang and libbpf's headers, Debian's libbpf-dev).
 */
export function compileBpf(dir: string, name: string): { bin: string } | { missing: string } {
  return build(`${dir}/${name}.bpf.c`, `${name}.bpf.o`, 'clang', (src, out) => ['-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', ...multiarchInclude(), '-c', src, '-o', out]);
}

/** -I for <asm/types.h>, which <linux/bpf.h> includes: it lives in the multiarch directory. */
function multiarchInclude(): string[] {
  try {
    const multiarch = execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
    return multiarch ? ['-I', `/usr/include/${multiarch}`] : [];
  } catch {
    return []; // no gcc: clang's own search path may still find it
  }
}

function build(rel: string, outName: string, cc: string, argv: (src: string, out: string) => string[]): { bin: string } | { missing: string } {
  const src = join(ROOT, rel);
  if (!existsSync(src)) return { missing: `${rel} does not exist` };
  const out = join(ROOT, 'engine', 'out');
  mkdirSync(out, { recursive: true });
  const bin = join(out, outName);
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return { bin };
  // build beside and rename: two processes compiling at once never run a half-written binary
  const tmp = `${bin}.${process.pid}.tmp`;
  try {
    execFileSync(cc, argv(src, tmp), { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { code?: string; stderr?: Buffer };
    if (err.code === 'ENOENT') return { missing: `${cc} is not installed` };
    return { missing: `${cc} failed on ${rel}: ${err.stderr?.toString().trim() ?? ''}` };
  }
  renameSync(tmp, bin);
  return { bin };
}

export function compileFixture(name: string): { bin: string } | { missing: string } {
  return compileC('test/fixtures', name);
}
