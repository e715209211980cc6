// SPDX-License-Identifier: MIT
// `npm run bench` entry: runs every benchmark in bench/ (each bench/NAME.ts
// exporting `main(args)`), or the ones named first; the remaining arguments
// go to each bench:  npm run bench -- tx --runs 5
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';

type BenchMain = (args: string[]) => Promise<void>;

function discover(): Map<string, string> {
  const found = new Map<string, string>();
  for (const f of readdirSync(__dirname).sort()) {
    if (!f.endsWith('.js') || f === 'run.js') continue;
    found.set(basename(f, '.js'), join(__dirname, f));
  }
  return found;
}

async function main(argv: string[]): Promise<void> {
  const all = discover();
  const names: string[] = [];
  let k = 0;
  while (k < argv.length && !argv[k].startsWith('-')) names.push(argv[k++]);
  const rest = argv.slice(k);
  for (const n of names) {
    if (!all.has(n)) throw new Error(`bench: no benchmark "${n}" (available: ${[...all.keys()].join(', ') || 'none'})`);
  }
  // `relay` runs relay-mcast's cases too (bench/relay.ts): not twice when all run
  const run = names.length ? names : [...all.keys()].filter((n) => !(n === 'relay-mcast' && all.has('relay')));
  for (const n of run) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(all.get(n)!) as { main?: BenchMain };
    if (typeof mod.main !== 'function') {
      process.stdout.write(`bench: ${n} exports no main(), skipped\n`);
      continue;
    }
    process.stdout.write(`\n=== bench ${n} ===\n`);
    await mod.main(rest);
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
