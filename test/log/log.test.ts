// SPDX-License-Identifier: MIT
// Logs through pino (src/log.ts): JSON lines with time, level, msg and the
// fields; an error carries its stack and its cause chain; bigints are exact
// decimal strings; levels filter; children add their fields; the default
// destination is stderr, written before the process exits.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createLogger, silentLogger } from '../../src/log';
import { ReflectorError } from '../../src/errors';

function capture(level?: 'debug' | 'info' | 'warn' | 'error'): { lines: Array<Record<string, unknown>>; log: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level, write: (l) => void l.split('\n').filter(Boolean).forEach((x) => lines.push(JSON.parse(x) as Record<string, unknown>)) });
  return { lines, log };
}

t.test('one JSON object per line: time, level, msg, fields', async (t) => {
  const { lines, log } = capture();
  log.info('server ready', { relays: 2, big: 2n ** 64n + 1n });
  t.equal(lines.length, 1);
  t.match(lines[0], { level: 'info', msg: 'server ready', relays: 2, big: '18446744073709551617' });
  t.match(lines[0].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.notOk('pid' in lines[0] || 'hostname' in lines[0], 'no pid/hostname on every line');
});

t.test('errors: name, message, code, stack and the cause chain, under any key', async (t) => {
  const { lines, log } = capture();
  const root = Object.assign(new Error('spawn nft ENOENT'), { code: 'ENOENT' });
  const err = new ReflectorError('ERR_ENGINE_START', 'nftables: cannot create table', { cause: root });
  log.error('server failed to start', { err, other: new TypeError('x') });
  const e = lines[0].err as Record<string, unknown>;
  t.match(e, { name: 'ReflectorError', message: 'nftables: cannot create table', code: 'ERR_ENGINE_START' });
  t.match(e.stack, /^ReflectorError: nftables: cannot create table\n\s+at /);
  t.match(e.cause, { name: 'Error', message: 'spawn nft ENOENT', code: 'ENOENT' });
  t.match((e.cause as Record<string, unknown>).stack, /^Error: spawn nft ENOENT\n\s+at /);
  t.match(lines[0].other, { name: 'TypeError', message: 'x' });
  // a cycle of causes is cut, not followed forever
  const a = new Error('a');
  const b = new Error('b', { cause: a });
  (a as { cause?: unknown }).cause = b;
  log.error('cycle', { err: a });
  let depth = 0;
  for (let c = lines[1].err as Record<string, unknown> | undefined; c; c = c.cause as Record<string, unknown> | undefined) depth++;
  t.ok(depth <= 9, `cause chain cut at ${depth}`);
});

t.test('levels filter; setLevel applies; children carry their fields', async (t) => {
  const { lines, log } = capture('warn');
  log.info('hidden');
  log.debug('hidden');
  log.warn('shown');
  log.setLevel('debug');
  log.debug('now shown');
  const c = log.child({ session: 'movie1' });
  c.info('child line', { n: 1 });
  t.same(lines.map((l) => l.msg), ['shown', 'now shown', 'child line']);
  t.match(lines[2], { session: 'movie1', n: 1, level: 'info' });
  silentLogger.error('nothing');
});

t.test('default destination: stderr, flushed before process.exit', async (t) => {
  const mod = join(__dirname, '..', '..', 'src', 'log.js');
  const r = spawnSync(process.execPath, ['-e', `const { createLogger } = require(${JSON.stringify(mod)}); const l = createLogger(); l.info('one', { a: 1 }); l.error('two', { err: new Error('boom') }); process.exit(3);`], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: undefined } });
  t.equal(r.status, 3);
  t.equal(r.stdout, '');
  const lines = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.same(lines.map((l) => l.msg), ['one', 'two']);
  t.match((lines[1].err as Record<string, unknown>).stack, /^Error: boom/);
});
