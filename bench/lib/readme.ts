// SPDX-License-Identifier: MIT
// Writes a bench's results into its marked section of bench/README.md
// (<!-- NAME-results:begin --> ... <!-- NAME-results:end -->), with the
// machine and the exact command in front, so every table says where and how
// it was measured.
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, release } from 'node:os';
import { join } from 'node:path';

const README = join(__dirname, '..', '..', '..', 'bench', 'README.md'); // dist/bench/lib -> repo

/** "2026-11-25 16:12 UTC on vm: 2 x AMD EPYC, Linux 6.1, Node v20.20.2" */
export function measuredOn(): string {
  const cpu = cpus();
  return `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${hostname()}: ${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}, Linux ${release()}, Node ${process.version}`;
}

/** The command that reproduces a run: `npm run bench -- NAME ARGS` (without --readme). */
export function commandOf(bench: string, args: string[]): string {
  return `Command: \`npm run bench -- ${bench}${args.filter((a) => a !== '--readme').map((a) => ' ' + a).join('')}\``;
}

/**
 * Replace the body of section `name` with `lines`. When the section is
 * missing, `orAppend` (a heading and text) is appended with the section after
 * it; without it, a missing section is an error.
 */
export function writeResults(name: string, lines: string[], orAppend?: string): void {
  const begin = `<!-- ${name}-results:begin -->`;
  const end = `<!-- ${name}-results:end -->`;
  const text = readFileSync(README, 'utf8');
  const block = [begin, ...lines, end].join('\n');
  const i = text.indexOf(begin);
  const k = text.indexOf(end);
  if (i >= 0 && k > i) {
    writeFileSync(README, text.slice(0, i) + block + text.slice(k + end.length));
  } else if (orAppend !== undefined) {
    writeFileSync(README, `${text.trimEnd()}\n\n${orAppend}\n\n${block}\n`);
  } else {
    throw new Error(`bench/README.md has no ${begin} ... ${end} section`);
  }
}
