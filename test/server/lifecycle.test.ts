// SPDX-License-Identifier: MIT
// /readyz is 503 until the engine runs and the config is applied, and while
// stopping; the file watcher sees an editor's save-by-rename and debounces.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Server } from '../../src/server/server';
import { createLogger } from '../../src/log';
import { FakeDeps } from './fixtures/fake-deps';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-life-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = path.join(dir, 'reflector.yaml');
const relays = (subs: string): string => `relays:\n  - name: a\n    listen: 127.0.0.1:5000\n    sources: [127.0.0.1/32]\n    subscribers: [${subs}]\n`;
fs.writeFileSync(file, `metrics:\n  listen: 127.0.0.1:0\ncontrol:\n  socket: ctl.sock\n${relays('127.0.0.1:6000')}`);

const logs: Array<Record<string, unknown>> = [];
const log = createLogger({ write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) });
const deps = new FakeDeps();
const release = deps.gateEngineStart();
const server = new Server({ configFile: file, deps: async () => deps, log, processMetrics: false });
t.teardown(() => server.stop());

const readyz = async (): Promise<number> => (await fetch(`http://127.0.0.1:${server.metricsAddress!.port}/readyz`)).status;

t.test('/readyz follows the lifecycle', async (t) => {
  const starting = server.start();
  while (!server.metricsAddress) await new Promise((r) => setTimeout(r, 5));
  t.equal(await readyz(), 503, 'engine not started yet');
  release();
  await starting;
  t.equal(await readyz(), 200, 'engine running, config applied');
});

t.test('an editor save (write a temp file, rename over) reloads once', async (t) => {
  deps.take();
  const tmp = path.join(dir, '.reflector.yaml.swp');
  fs.writeFileSync(tmp, fs.readFileSync(file, 'utf8').replace('127.0.0.1:6000', '127.0.0.1:6000, 127.0.0.1:6001'));
  fs.renameSync(tmp, file);
  const t0 = Date.now();
  while (!logs.some((l) => l.msg === 'config reloaded') && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 400));
  t.equal(logs.filter((l) => l.msg === 'config reloaded').length, 1, 'one reload for one save');
  t.same(deps.take(), ['addOutput a 127.0.0.1:6001']);
});

t.test('stopping: not ready', async (t) => {
  const stopping = server.stop();
  t.equal(server.ready, false);
  await stopping;
});
