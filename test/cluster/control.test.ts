// SPDX-License-Identifier: MIT
// In cluster mode the control API writes through to etcd: a real Server in
// cluster mode (recording stand-ins for the engine) and a real etcd. Each
// change is validated by the control API's own rules, written to the desired
// state (answer: APPLIED_CLUSTER), and reaches this node through its watch
// like any `ctl apply`; refusals keep their code (exists, not found,
// invalid), and nothing is written for a refused request.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import * as grpc from '@grpc/grpc-js';
import { etcdOptions } from '../../src/cluster/etcd';
import { ClusterKeys } from '../../src/cluster/keys';
import { parseEntry } from '../../src/cluster/desired';
import { Server } from '../../src/server/server';
import { ControlClient } from '../../src/control/client';
import { EtcdServer, etcdUnavailable } from '../helpers/etcd';
import { skipUnlessRoot, Testbed } from '../helpers/testbed';
import { FakeDeps } from '../server/fixtures/fake-deps';
import { clusterConfig, keptLog, until } from './harness';

const why = etcdUnavailable();
if (why) {
  process.stderr.write(`# SKIP cluster control tests: ${why}\n`);
  t.plan(0, why);
} else if (!skipUnlessRoot(t)) {
  t.test('the control API writes through to etcd', { timeout: 60000 }, async (t) => {
    const tb = await Testbed.create(t, { hosts: ['etcd', 'peer'], links: [['etcd', 'peer']] });
    const etcd = await EtcdServer.start(tb, 'etcd', t);
    const c = new Etcd3(etcdOptions(clusterConfig(etcd.local, 'admin')));
    t.teardown(() => c.close());
    const keys = new ClusterKeys('/t/');
    const entry = async (kind: 'relay' | 'session', name: string): Promise<string | null> => c.get(keys.entry(kind, name)).string();

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-cctl-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.writeFileSync(path.join(dir, 'clip.ts'), 'x');
    const file = path.join(dir, 'reflector.yaml');
    fs.writeFileSync(file, `metrics:\n  listen: null\ncontrol:\n  socket: ctl.sock\n  request_timeout_ms: 3000\nengine:\n  drain_ms: 0\ncluster:\n  etcd: ["${etcd.local}"]\n  node: edge1\n  prefix: /t/\n  lease_s: 2\n  checkpoint_ms: 200\n`);
    const deps = new FakeDeps();
    const { log } = keptLog();
    const server = new Server({ configFile: file, deps: async () => deps, log, watch: false, processMetrics: false });
    await server.start();
    t.teardown(() => server.stop());
    const ctl = await ControlClient.connect({ socket: path.join(dir, 'ctl.sock') });
    t.teardown(() => ctl.close());

    t.same(await ctl.request({ type: 'addRelay', name: 'cam', listen: '127.0.0.1:5000', sources: ['127.0.0.1/32'], subscribers: ['127.0.0.1:6000'] }), { type: 'ok', cluster: true }, 'AddRelay: APPLIED_CLUSTER');
    const relay = parseEntry('relay', 'cam', (await entry('relay', 'cam'))!).relay;
    t.same(relay?.node, ['edge1'], 'written to etcd, to run on the node that took it');
    await until('the relay applied here through the watch', () => deps.calls.includes('addRelay cam 127.0.0.1:6000'));
    t.match((await ctl.list()).relays, [{ name: 'cam', subscribers: ['127.0.0.1:6000'] }], 'List shows what this node runs');

    t.same(await ctl.request({ type: 'subscribe', relay: 'cam', subscriber: '127.0.0.1:6001' }), { type: 'ok', cluster: true });
    t.same(parseEntry('relay', 'cam', (await entry('relay', 'cam'))!).relay?.subscribers.map((e) => `${e.address}:${e.port}`), ['127.0.0.1:6000', '127.0.0.1:6001']);
    await until('the subscriber applied here', () => deps.calls.includes('addOutput cam 127.0.0.1:6001'));
    t.same(await ctl.request({ type: 'unsubscribe', relay: 'cam', subscriber: '127.0.0.1:6000' }), { type: 'ok', cluster: true });
    await until('the unsubscribe applied here', () => deps.calls.includes('removeOutput cam 127.0.0.1:6000'));

    await t.rejects(ctl.request({ type: 'addRelay', name: 'cam', listen: '127.0.0.1:5001', sources: ['127.0.0.1/32'], subscribers: [] }), { controlCode: 'ERR_EXISTS', message: 'relay "cam" already exists in the cluster', grpcCode: grpc.status.ALREADY_EXISTS });
    await t.rejects(ctl.request({ type: 'subscribe', relay: 'cam', subscriber: '127.0.0.1:6001' }), { controlCode: 'ERR_EXISTS', message: '127.0.0.1:6001 already subscribes to relay "cam"', grpcCode: grpc.status.ALREADY_EXISTS });
    await t.rejects(ctl.request({ type: 'removeRelay', name: 'nope' }), { controlCode: 'ERR_NOT_FOUND', message: 'no relay named "nope" in the cluster', grpcCode: grpc.status.NOT_FOUND });
    await t.rejects(ctl.request({ type: 'addRelay', name: 'open', listen: '127.0.0.1:5002', sources: ['0.0.0.0/0'], subscribers: [] }), { controlCode: 'ERR_INVALID_ARG', message: /not accepted through the control API \(an open relay\)/ }, 'the control API\'s own rules still apply');
    t.equal(await entry('relay', 'open'), null, 'nothing written for a refused request');
    await t.rejects(ctl.request({ type: 'startSession', name: 'bad', file: '/etc/passwd', to: '127.0.0.1:7000', format: 'mpegts', loop: false }), { controlCode: 'ERR_INVALID_ARG', message: /^file: / }, 'media_root still applies');
    t.equal(await entry('session', 'bad'), null);

    t.same(await ctl.request({ type: 'startSession', name: 'movie', file: 'clip.ts', to: '127.0.0.1:7000', format: 'mpegts', loop: true }), { type: 'ok', cluster: true });
    t.match(JSON.parse((await entry('session', 'movie'))!), { name: 'movie', file: path.join(dir, 'clip.ts'), to: '127.0.0.1:7000', loop: true }, 'the session in etcd, its file resolved against media_root');
    await until('the session started here (the only node)', () => deps.calls.includes('startSession movie'));
    t.same(await ctl.request({ type: 'stopSession', name: 'movie' }), { type: 'ok', cluster: true });
    t.equal(await entry('session', 'movie'), null, 'removed from etcd');
    await until('the session stopped here', () => deps.calls.includes('stopSession movie'));
    t.same(await ctl.request({ type: 'removeRelay', name: 'cam' }), { type: 'ok', cluster: true });
    await until('the relay removed here', () => deps.calls.includes('removeRelay cam'));
    t.same((await ctl.list()).relays, [], 'nothing left');

    // etcd gone: the write is refused within the request deadline, and says it may not have happened
    await etcd.stop();
    await t.rejects(ctl.request({ type: 'addRelay', name: 'late', listen: '127.0.0.1:5003', sources: ['127.0.0.1/32'], subscribers: [] }), {
      controlCode: 'ERR_CLUSTER', message: /^etcd: .*\(the change may not have been written: ctl --etcd URL status shows the desired state\)$/, grpcCode: grpc.status.UNAVAILABLE,
    });
    t.equal((await ctl.list()).relays.length, 0, 'the node still answers');
  });
}
