// SPDX-License-Identifier: MIT
// SIGTERM while the server starts: start() gives up at its next step, the
// one stop tears down what was built (engine stopped, nothing applied after
// the signal, no control socket), and `reflector serve` exits 0. In process
// with a gated stand-in engine, and as the real bin whose config start
// waits ~1 s for a neighbour that never answers.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../../src/log';
import { Server } from '../../src/server/server';
import { Testbed } from '../helpers/testbed';
import { FakeDeps } from './fixtures/fake-deps';
import { ServerProcess, ROOT, serverUnavailable } from './fixtures/harness';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-sds-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

t.test('in process: stop() during start()', async (t) => {
  const file = path.join(dir, 'a.yaml');
  fs.writeFileSync(file, 'metrics:\n  listen: 127.0.0.1:0\ncontrol:\n  socket: ctl.sock\nrelays:\n  - name: a\n    listen: 127.0.0.1:5000\n    sources: [127.0.0.1/32]\n');
  const deps = new FakeDeps();
  const release = deps.gateEngineStart();
  const server = new Server({ configFile: file, deps: async () => deps, log: createLogger({ write: () => undefined }), watch: false, processMetrics: false });
  const starting = server.start();
  while (!server.metricsAddress) await new Promise((r) => setTimeout(r, 5));
  const port = server.metricsAddress.port;
  const stopping = server.stop();
  t.equal(server.stop(), stopping, 'a second stop is the same stop');
  t.equal(server.ready, false, 'not ready while stopping');
  release();
  await t.rejects(starting, { code: 'ERR_CLOSED', message: 'server: stopped while starting' });
  await stopping;
  t.same(deps.take(), ['engine.start', 'relays.stop', 'engine.stop', 'sessions.close'], 'the engine stopped; the config was never applied');
  t.notOk(fs.existsSync(path.join(dir, 'ctl.sock')), 'no control socket');
  await t.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'metrics listener closed');
  await t.rejects(server.start(), { code: 'ERR_ENGINE_STATE', message: 'server: start() while stopped' }, 'a stopped server does not start again');
});

const why = serverUnavailable({ netns: true });
if (why) {
  process.stderr.write(`# SKIP serve stop during start: ${why}\n`);
} else {
  t.test('reflector serve: SIGTERM during start exits 0', { timeout: 60_000 }, async (t) => {
    const tb = await Testbed.create(t, { hosts: ['relay', 'peer'], links: [['relay', 'peer']] });
    const file = path.join(dir, 'b.yaml');
    // 198.18.0.77 is on the link and nobody: resolving it takes the probe's 1 s
    fs.writeFileSync(file, `engine:\n  interface: ${tb.iface('relay').name}\n  netns: ${tb.ns('relay')}\n  workers: 1\nmetrics:\n  listen: 127.0.0.1:0\ncontrol:\n  socket: ctl2.sock\nmedia_root: ${ROOT}\nsessions:\n  - name: m\n    file: ${path.join(ROOT, 'media/sample.ts')}\n    to: 198.18.0.77:7000\n`);
    const s = new ServerProcess(['serve', '--config', file]);
    t.teardown(() => s.kill('SIGKILL'));
    await s.waitLog((l) => l.msg === 'engine started');
    const r = await s.kill('SIGTERM');
    t.equal(r.code, 0, `exit 0 (stderr: ${s.stderrText.slice(-3).join(' | ')})`);
    t.ok(s.logs.some((l) => l.msg === 'stopped while starting'), 'it stopped while starting');
    t.ok(s.logs.some((l) => l.msg === 'server stopped'), 'in order');
    t.notOk(s.logs.some((l) => l.msg === 'server ready'), 'never ready');
    t.notOk(s.logs.some((l) => l.msg === 'server failed to start'), 'not reported as a failure');
    t.notOk(fs.existsSync(path.join(dir, 'ctl2.sock')), 'no control socket left');
  });
}
