// SPDX-License-Identifier: MIT
// Config reload notices a Kubernetes ConfigMap update: the file is
// reflector.yaml -> ..data/reflector.yaml, ..data -> ..<timestamp>/, and the
// kubelet's atomic writer swaps ..data to a new folder by one rename, then
// removes the old folder (no event names reflector.yaml). Done here with
// real symlinks and renames in a temp dir, against the real Server on
// recording stand-ins: the new relays are applied, once; editing in place
// and unrelated files in the folder still behave.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Server } from '../../src/server/server';
import { ConfigWatcher } from '../../src/server/watch';
import { createLogger, silentLogger } from '../../src/log';
import { FakeDeps } from './fixtures/fake-deps';

const head = `metrics:
  listen: 127.0.0.1:0
control:
  socket: null
engine:
  drain_ms: 0
`;
const relays = (...names: string[]): string =>
  'relays:\n' + names.map((n, i) => `  - name: ${n}\n    listen: 127.0.0.1:${5000 + i}\n    sources: [127.0.0.1/32]\n    subscribers: [127.0.0.1:${6000 + i}]\n`).join('');

/** The kubelet's AtomicWriter: a new timestamped folder, ..data_tmp -> it, renamed over ..data, old folder removed. */
function atomicWrite(dir: string, files: Record<string, string>, version: number): void {
  const ts = `..2026_12_03_12_00_0${version}.${1000 + version}`;
  fs.mkdirSync(path.join(dir, ts));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, ts, name), text);
  const old = fs.existsSync(path.join(dir, '..data')) ? fs.readlinkSync(path.join(dir, '..data')) : null;
  fs.symlinkSync(ts, path.join(dir, '..data_tmp'));
  fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  for (const name of Object.keys(files)) if (!fs.existsSync(path.join(dir, name))) fs.symlinkSync(path.join('..data', name), path.join(dir, name));
  if (old) fs.rmSync(path.join(dir, old), { recursive: true, force: true });
}

function until(fn: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  return new Promise((resolve) => {
    const tick = (): void => {
      if (fn()) resolve(true);
      else if (Date.now() > end) resolve(false);
      else setTimeout(tick, 20);
    };
    tick();
  });
}

t.test('the watcher fires once per ..data swap, not for unrelated files', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-cm-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  atomicWrite(dir, { 'reflector.yaml': 'a: 1\n' }, 1);
  let fired = 0;
  const w = new ConfigWatcher(path.join(dir, 'reflector.yaml'), () => fired++, silentLogger, 50);
  w.start();
  t.teardown(() => w.stop());
  atomicWrite(dir, { 'reflector.yaml': 'a: 2\n' }, 2);
  t.ok(await until(() => fired === 1, 3000), 'a swap: one change');
  fs.writeFileSync(path.join(dir, 'unrelated.txt'), 'x');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(fired, 1, 'an unrelated file in the folder: no change');
  atomicWrite(dir, { 'reflector.yaml': 'a: 3\n' }, 3);
  t.ok(await until(() => fired === 2, 3000), 'the next swap: one more');
});

t.test('a plain file edited in place (same size, same coarse mtime tick) still counts', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-cm-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'reflector.yaml');
  fs.writeFileSync(file, 'a: 1\n');
  let fired = 0;
  const w = new ConfigWatcher(file, () => fired++, silentLogger, 50);
  w.start();
  t.teardown(() => w.stop());
  fs.writeFileSync(file, 'a: 2\n');
  t.ok(await until(() => fired === 1, 3000), 'an event naming the file is a change');
});

t.test('a ConfigMap update reaches the running server: the new relays are applied', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-cm-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  atomicWrite(dir, { 'reflector.yaml': head + relays('a') }, 1);
  const logs: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) });
  const deps = new FakeDeps();
  const server = new Server({ configFile: path.join(dir, 'reflector.yaml'), deps: async () => deps, log, processMetrics: false, version: 'test' });
  await server.start();
  t.teardown(() => server.stop());
  t.same(deps.take(), ['engine.start', 'addRelay a 127.0.0.1:6000']);

  atomicWrite(dir, { 'reflector.yaml': head + relays('a', 'b') }, 2);
  t.ok(await until(() => logs.some((l) => l.msg === 'config reloaded'), 5000), 'reloaded after the swap');
  t.same(deps.take(), ['addRelay b 127.0.0.1:6001'], 'only the difference applied');
  t.match(logs.find((l) => l.msg === 'config file now resolves elsewhere (symlink swap, e.g. a ConfigMap update)'), { target: /\.\.2026_12_03_12_00_02\.1002\/reflector\.yaml$/ });
  t.same([...server.running!.relays.keys()].sort(), ['a', 'b']);

  // an invalid ConfigMap keeps the running config
  atomicWrite(dir, { 'reflector.yaml': head + 'relays: [broken\n' }, 3);
  t.ok(await until(() => logs.some((l) => l.msg === 'config reload refused, keeping the running config'), 5000), 'refused');
  t.same([...server.running!.relays.keys()].sort(), ['a', 'b'], 'still serving a and b');
  t.same(deps.take(), []);
});
