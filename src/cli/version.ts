// SPDX-License-Identifier: MIT
// The package version, read from package.json (dist/src/cli -> repo root).
import * as fs from 'node:fs';
import * as path from 'node:path';

let cached: string | null = null;

export function version(): string {
  if (cached) return cached;
  for (const p of [path.resolve(__dirname, '../../../package.json'), path.resolve(__dirname, '../../package.json')]) {
    try {
      const v = (JSON.parse(fs.readFileSync(p, 'utf8')) as { version?: string }).version;
      if (v) return (cached = v);
    } catch {
      // try the next candidate
    }
  }
  return (cached = 'unknown');
}
