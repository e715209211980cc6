// SPDX-License-Identifier: MIT
// What a control request may do, through the CommandHandler every
// transport calls: names and addresses validated (a zone id, over-limit
// names), no any-source relay, no media file outside media_root (also
// through a symbolic link) and no word about one; and deadlines that tell
// the truth: a change that could not start in time never runs, one that
// finished after its deadline is undone, both answer ERR_TIMEOUT, and
// nothing answered ok is missing.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command, Result } from '../../src/control/types';
import { createLogger } from '../../src/log';
import { formatEndpoint } from '../../src/net/address';
import type { ServerDeps } from '../../src/server/deps';
import { CommandHandler } from '../../src/server/handler';
import { RunningState } from '../../src/server/state';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-handler-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const root = path.join(dir, 'media');
fs.mkdirSync(root);
fs.writeFileSync(path.join(root, 'clip.ts'), 'x');
const secret = path.join(dir, 'secret.ts');
fs.writeFileSync(secret, 'not for clients');
fs.symlinkSync(secret, path.join(root, 'link.ts'));
fs.symlinkSync(path.join(dir, 'gone.ts'), path.join(root, 'dangling.ts'));

/** Stand-ins that record calls and take `delayMs` per change. */
function deps(delayMs: { value: number }): { deps: ServerDeps; calls: string[] } {
  const calls: string[] = [];
  const slow = async (call: string): Promise<void> => {
    calls.push(call);
    await new Promise((r) => setTimeout(r, delayMs.value));
  };
  const d: ServerDeps = {
    engine: { start: async () => undefined, stop: async () => undefined, running: true, counters: () => ({ counterNames: () => [], counter: () => 0n, histogram: () => [] }), rings: () => [], pool: () => null },
    relays: {
      addRelay: (s) => slow(`addRelay ${s.name}`),
      removeRelay: (n) => slow(`removeRelay ${n}`),
      addOutput: (r, e) => slow(`addOutput ${r} ${formatEndpoint(e)}`),
      removeOutput: (r, e) => slow(`removeOutput ${r} ${formatEndpoint(e)}`),
      outputStats: () => null,
    },
    sessions: { start: (s) => slow(`startSession ${s.name} ${s.file}`), stop: (n) => slow(`stopSession ${n}`), stats: () => null },
  };
  return { deps: d, calls };
}

function setup(timeoutMs: number): { h: CommandHandler; st: RunningState; calls: string[]; delay: { value: number } } {
  const delay = { value: 0 };
  const { deps: d, calls } = deps(delay);
  const st = new RunningState(d, createLogger({ write: () => undefined }));
  const h = new CommandHandler({ state: st, mediaRoot: () => root, stats: async () => ({ engineRunning: true, ready: true, configReloads: 0n, configReloadFailures: 0n, counters: [] }), requestTimeoutMs: timeoutMs });
  return { h, st, calls, delay };
}

async function answer(h: CommandHandler, c: Command): Promise<Result | { type: 'error'; code: string; message: string }> {
  try {
    return await h.handle(c);
  } catch (e) {
    const err = e as { controlCode?: string; code: string; message: string };
    return { type: 'error', code: err.controlCode ?? err.code, message: err.message };
  }
}

const addRelay = (name: string, listen = '127.0.0.1:5000', sources = ['127.0.0.1/32']): Command => ({ type: 'addRelay', name, listen, sources, subscribers: [] });
const start = (name: string, file: string): Command => ({ type: 'startSession', name, file, to: '127.0.0.1:7000', format: '', loop: false });

t.test('bad input: a clear error each time, nothing applied', async (t) => {
  const { h, calls } = setup(1000);
  const bad: Array<[Command, RegExp]> = [
    [addRelay('z', '[fe80::1%eth0]:5000'), /^listen: "\[fe80::1%eth0\]:5000" has a zone id \("%eth0"\)/],
    [{ type: 'subscribe', relay: 'r', subscriber: '[fe80::2%veth0]:6000' }, /^subscriber: .* has a zone id/],
    [addRelay('r'.repeat(33)), /^name: "r{33}" is 33 characters, longer than 32/],
    [addRelay('bad name'), /^name: "bad name" is not a valid relay name/],
    [addRelay('-n'), /^name: "-n" is not a valid relay name .*starting with a letter, a digit or "_"/],
    [addRelay('r', '127.0.0.1:70000'), /^listen: port 70000 in "127\.0\.0\.1:70000" is outside 1\.\.65535/],
    [addRelay('r', '127.0.0.1:5000', ['127.0.0.1/33']), /^sources\[0\]: prefix length "33"/],
    [addRelay('open', '127.0.0.1:5000', ['0.0.0.0/0']), /^sources\[0\]: 0\.0\.0\.0\/0 is not accepted through the control API \(an open relay\)/],
    [addRelay('open6', '[::1]:5000', ['::/0']), /^sources\[0\]: ::\/0 is not accepted through the control API/],
    [start('s'.repeat(129), 'clip.ts'), /^name: "s{64}\.\.\." is 129 characters, longer than 128/],
    [start('x', secret), /^file: media file ".*secret\.ts" is outside media_root /],
    [start('x', '../secret.ts'), /^file: media file ".*secret\.ts" is outside media_root /],
    [start('x', 'link.ts'), /^file: media file ".*link\.ts" is outside media_root .* once symbolic links are resolved$/],
    [start('x', 'dangling.ts'), /^file: media file ".*dangling\.ts" does not exist$/],
    [start('x', '/etc/shadow'), /^file: media file "\/etc\/shadow" is outside media_root /],
    [start('x', 'missing.ts'), /^file: media file ".*missing\.ts" does not exist$/],
    [{ type: 'stopSession', name: 'a/../b c' }, /^name: "a\/\.\.\/b c" is not a valid session name/],
  ];
  for (const [c, re] of bad) {
    const r = await answer(h, c);
    t.match(r, { type: 'error', code: 'ERR_INVALID_ARG', message: re }, `${c.type}: ${(r as { message?: string }).message}`);
  }
  t.same(calls, [], 'nothing reached the engine, the relays or the sessions');
  // the errors about files outside the root say nothing about them
  const outside = await answer(h, start('x', secret));
  const missing = await answer(h, start('x', path.join(dir, 'no-such.ts')));
  t.equal((outside as { message: string }).message.replace(/".*"/, 'F'), (missing as { message: string }).message.replace(/".*"/, 'F'), 'an existing and a missing file outside media_root get the same answer');
  t.notMatch(JSON.stringify(await answer(h, start('x', 'link.ts'))), /secret|not for clients/, 'a link\'s target is never named');
});

t.test('good input: relative files resolve against media_root', async (t) => {
  const { h, calls, st } = setup(1000);
  t.same(await answer(h, start('m', 'clip.ts')), { type: 'ok' });
  t.same(calls, [`startSession m ${path.join(root, 'clip.ts')}`]);
  t.same(st.sessionInfos().map((s) => s.name), ['m']);
});

t.test('deadlines tell the truth', async (t) => {
  const { h, st, calls, delay } = setup(150);
  // finished after its deadline: undone, ERR_TIMEOUT, not in the state
  delay.value = 250;
  const late = await answer(h, addRelay('late'));
  t.match(late, { type: 'error', code: 'ERR_TIMEOUT', message: 'not applied: it finished after its deadline and was undone' });
  t.same(calls.splice(0), ['addRelay late', 'removeRelay late'], 'the relay was removed again');
  t.same(st.relayInfos(), [], 'and is not listed');
  // waited behind a slow change past its deadline: never started
  delay.value = 100;
  const [a, b, c] = await Promise.all([answer(h, addRelay('a', '127.0.0.1:5001')), answer(h, addRelay('b', '127.0.0.1:5002')), answer(h, addRelay('c', '127.0.0.1:5003'))]);
  t.same(a, { type: 'ok' }, 'the first fits its deadline');
  t.match(b, { type: 'error', code: 'ERR_TIMEOUT' }, 'the second ran late and was undone, or never ran');
  t.match(c, { type: 'error', code: 'ERR_TIMEOUT', message: 'not applied: it waited behind other changes until its deadline' }, 'the third never ran');
  t.notOk(calls.includes('addRelay c'), 'the third never reached the relays manager');
  t.same(st.relayInfos().map((r) => r.name), ['a'], 'exactly what answered ok is in effect');
  // a session started late is stopped again
  delay.value = 250;
  t.match(await answer(h, start('s', 'clip.ts')), { type: 'error', code: 'ERR_TIMEOUT' });
  t.same(st.sessionInfos(), [], 'no session left running');
  t.ok(calls.includes('stopSession s'), 'it was stopped');
  // a removal that takes long still answers the truth: it is gone
  delay.value = 0;
  t.same(await answer(h, { type: 'removeRelay', name: 'a' }), { type: 'ok' });
  t.same(st.relayInfos(), []);
});
