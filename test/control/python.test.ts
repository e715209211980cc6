// SPDX-License-Identifier: MIT
// The control API from a client not written in this project: Python's
// grpcio (Debian python3-grpcio), stubs compiled from the shipped .proto by
// grpc_tools.protoc (python3-grpc-tools) at test time. Against a real Server
// (recording stand-ins for the engine): List, Subscribe, typed errors, bad
// input (over-size, unknown method, malformed), a Capture stream and its
// errors, Stats, server reflection,
// the TCP token, and a Watch that sees a session end.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Server } from '../../src/server/server';
import { createLogger } from '../../src/log';
import { protoRoot } from '../../src/control/proto';
import { FakeDeps } from '../server/fixtures/fake-deps';

const PY = '/usr/bin/python3';
const probe = spawnSync(PY, ['-c', 'import grpc, grpc_tools'], { encoding: 'utf8' });
const why = probe.status === 0 ? null : `${PY} has no grpcio / grpc_tools (Debian python3-grpcio python3-grpc-tools): ${(probe.stderr ?? probe.error?.message ?? '').trim().split('\n').pop()}`;
if (why) {
  process.stderr.write(`# SKIP python client tests: ${why}\n`);
  t.plan(0, why);
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-py-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'a.ts'), 'x');
  const file = path.join(dir, 'reflector.yaml');
  fs.writeFileSync(file, `metrics:\n  listen: null\ncontrol:\n  socket: ctl.sock\n  tcp: 127.0.0.1:0\n  token: py-s3cret\nengine:\n  drain_ms: 0\nrelays:\n  - name: cam\n    listen: 127.0.0.1:5000\n    sources: [127.0.0.1/32]\n    subscribers: [127.0.0.1:6000]\nsessions:\n  - name: s1\n    file: a.ts\n    to: 127.0.0.1:7000\n`);
  const deps = new FakeDeps();
  const server = new Server({ configFile: file, deps: async () => deps, log: createLogger({ write: () => undefined }), watch: false, processMetrics: false });

  t.test('grpcio: list, subscribe, errors, stats, reflection, token, a Watch that sees a session end', { timeout: 120000 }, async (t) => {
    await server.start();
    t.teardown(() => server.stop());
    const reflRoot = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto');
    const py = spawn(PY, [path.join(__dirname, '../../../test/control/fixtures/client.py'), protoRoot(), reflRoot, path.join(dir, 'ctl.sock'), String(server.controlTcpAddress!.port), 'py-s3cret'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    py.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const steps = new Map<string, Record<string, unknown>>();
    for await (const line of createInterface({ input: py.stdout })) {
      const m = JSON.parse(line) as Record<string, unknown>;
      steps.set(m.step as string, m);
      // the watch is in place (headers received): end the session
      if (m.step === 'watching') deps.emit({ type: 'session_ended', session: 's1' });
    }
    const code = await new Promise<number | null>((r) => (py.exitCode !== null ? r(py.exitCode) : py.on('exit', r)));
    t.equal(code, 0, `python exited 0 ${stderr}`);
    t.same(steps.get('list'), {
      step: 'list',
      relays: [{ name: 'cam', listen: '127.0.0.1:5000', subscribers: ['127.0.0.1:6000'], origin: 'ORIGIN_CONFIG' }],
      sessions: [{ name: 's1', to: '127.0.0.1:7000', origin: 'ORIGIN_CONFIG' }],
    });
    t.same(steps.get('subscribe'), { step: 'subscribe', applied: 'APPLIED_LOCAL' });
    t.same(steps.get('list-after')?.subscribers, ['127.0.0.1:6000', '127.0.0.1:6500'], 'the subscriber is in the running state');
    t.ok(deps.calls.includes('addOutput cam 127.0.0.1:6500'), 'and reached the relays manager');
    t.match(steps.get('not-found'), { code: 'NOT_FOUND', details: /^ERR_NOT_FOUND: no relay named "nope"/ });
    t.match(steps.get('invalid'), { code: 'INVALID_ARGUMENT', details: /^ERR_INVALID_ARG: sources\[0\]: 0\.0\.0\.0\/0 is not accepted through the control API/ });
    t.match(steps.get('oversize'), { code: 'RESOURCE_EXHAUSTED' }, 'over control.max_message_bytes');
    t.match(steps.get('unknown-method'), { code: 'UNIMPLEMENTED' });
    t.match(steps.get('malformed'), { code: 'INVALID_ARGUMENT', details: /^ERR_BAD_MESSAGE: Subscribe: malformed request message/ });
    t.same(steps.get('after-bad'), { step: 'after-bad', relays: 1 }, 'the server goes on serving after each');
    const sub = ['127.0.0.1:6000', '127.0.0.1:6500'];
    t.same(steps.get('capture'), {
      step: 'capture',
      packets: [0, 1, 2, 3, 4].map((i) => ({
        ts_ns: String(1_764_000_000_000_000_000n + BigInt(i)), direction: i % 3 === 0 ? 'CAPTURE_DIRECTION_INGRESS' : 'CAPTURE_DIRECTION_OUTPUT',
        output: i % 3 === 0 ? '' : sub[(i % 3) - 1], len: 60 + i, byte: i, wire_length: 60 + i,
      })),
      end: { packets: 5, dropped: 1 },
    }, 'Capture streams the packets (ns timestamps exact), then the end message with what was dropped');
    t.match(steps.get('capture-not-found'), { code: 'NOT_FOUND', details: /^ERR_NOT_FOUND: name: no relay or session named "nope"/ });
    t.match(steps.get('capture-unbounded'), { code: 'INVALID_ARGUMENT', details: /^ERR_INVALID_ARG: count, seconds: give count or seconds/ });
    t.match(steps.get('stats'), { engine_running: true });
    t.ok(((steps.get('stats')?.counters as number) ?? 0) > 0, 'stats carries counters');
    t.ok(((steps.get('reflection')?.services as string[]) ?? []).includes('reflector.v1.Control'), `reflection lists reflector.v1.Control (${JSON.stringify(steps.get('reflection'))})`);
    t.match(steps.get('tcp-no-token'), { code: 'UNAUTHENTICATED', details: /^ERR_UNAUTHENTICATED: / });
    t.match(steps.get('tcp-wrong-token'), { code: 'UNAUTHENTICATED', details: 'ERR_UNAUTHENTICATED: wrong token' });
    t.same(steps.get('tcp-token'), { step: 'tcp-token', relays: 1 });
    t.match(steps.get('event'), { kind: 'session_ended', session: 's1' });
    t.ok(Math.abs(Number(steps.get('event')?.at_ms) - Date.now()) < 60000, 'at_ms is the emit time');
    t.ok(steps.has('done'));
    t.notOk(server.running?.sessions.has('s1'), 'the ended session left the running state');
  });
}
