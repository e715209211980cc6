// SPDX-License-Identifier: MIT
// `reflector check-config FILE`: exit 0 when valid, else 1 and one line per
// problem (FILE:LINE:COLUMN: KEY.PATH: what is wrong).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfig, formatProblem } from '../config/validate';
import type { Io } from './main';

export function checkConfig(file: string, io: Io, quiet: boolean): number {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (err) {
    io.err(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
    return 1;
  }
  // problems name the file the way the user typed it
  const r = parseConfig(text, file);
  if (r.config) {
    if (!quiet) io.out(`${file}: ok (${r.config.relays.length} relays, ${r.config.sessions.length} sessions)\n`);
    return 0;
  }
  for (const p of r.problems) io.err(`${formatProblem(p)}\n`);
  return 1;
}
