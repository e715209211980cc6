// SPDX-License-Identifier: MIT
// config/reflector.yaml documents every key of the schema with its default,
// and is valid as shipped.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { defaultsTable } from '../../src/config/schema';
import { parseConfig, formatProblem } from '../../src/config/validate';

const file = path.resolve(__dirname, '../../../config/reflector.yaml');
const text = fs.readFileSync(file, 'utf8');
const raw = parse(text) as Record<string, unknown>;

t.test('the shipped file is valid', async (t) => {
  const r = parseConfig(text, file);
  t.ok(r.config, r.problems.map(formatProblem).join('\n'));
  t.equal(r.config!.relays.length, 1);
  t.equal(r.config!.sessions.length, 1);
  t.ok(fs.existsSync(r.config!.sessions[0].file), 'the sample media exists');
  t.ok(fs.statSync(r.config!.sessions[0].file).size < 500 * 1024, 'the sample media is small');
});

t.test('every key appears with its default', async (t) => {
  for (const [keyPath, def] of defaultsTable()) {
    if (keyPath.includes('[]')) {
      // list item keys: the example item names each of them
      const [list, key] = keyPath.split('[].');
      const item = (raw[list] as Array<Record<string, unknown>>)[0];
      t.ok(key in item, `${keyPath} is shown in the example ${list} item`);
      if (def !== undefined) {
        const shown = Array.isArray(def) ? '\\[\\]' : String(def);
        t.match(text, new RegExp(`${key}:.*default: ${shown}`), `${keyPath} documents its default ${JSON.stringify(def)}`);
      }
      continue;
    }
    let v: unknown = raw;
    for (const k of keyPath.split('.')) v = (v as Record<string, unknown>)?.[k];
    if (keyPath === 'relays' || keyPath === 'sessions') {
      t.match(text, new RegExp(`^${keyPath}:.*default: \\[\\]`, 'm'), `${keyPath} documents its default []`);
      continue;
    }
    // a key the shipped file sets to another value says its default on its line
    if (JSON.stringify(v) !== JSON.stringify(def ?? null)) {
      const key = keyPath.split('.').pop() as string;
      t.match(text, new RegExp(`^\\s*${key}: .*# default: ${String(def)}\\b`, 'm'), `${keyPath} documents its default ${JSON.stringify(def)} (the file sets ${JSON.stringify(v)})`);
      continue;
    }
    t.same(v, def, `${keyPath} = ${JSON.stringify(def)}`);
  }
});
