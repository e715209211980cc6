// SPDX-License-Identifier: MIT
// The control API's write-through to etcd (src/cluster/writer.ts), against a
// real etcd: each request edits one entry, validated before it is written,
// refused with a reason (exists, not found, invalid), and an edit that races
// another is re-read and applied on top of it (nothing lost).
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { etcdOptions } from '../../src/cluster/etcd';
import { ClusterKeys } from '../../src/cluster/keys';
import { ClusterWriteError, ClusterWriter } from '../../src/cluster/writer';
import { parseEntry } from '../../src/cluster/desired';
import { EtcdServer, etcdUnavailable } from '../helpers/etcd';
import { skipUnlessRoot, Testbed } from '../helpers/testbed';
import { clusterConfig } from './harness';

const why = etcdUnavailable();
if (why) {
  process.stderr.write(`# SKIP writer tests: ${why}\n`);
  t.plan(0, why);
} else if (!skipUnlessRoot(t)) {
  t.test('control requests write through to etcd', { timeout: 30000 }, async (t) => {
    const tb = await Testbed.create(t, { hosts: ['etcd', 'peer'], links: [['etcd', 'peer']] });
    const etcd = await EtcdServer.start(tb, 'etcd', t);
    const c = new Etcd3(etcdOptions(clusterConfig(etcd.local, 'admin')));
    t.teardown(() => c.close());
    const keys = new ClusterKeys('/t/');
    const w = new ClusterWriter(c, keys, 'edge1');
    const refused = async (p: Promise<void>, reason: string, message?: RegExp | string): Promise<void> => {
      const e = (await p.then(() => null, (x: unknown) => x)) as ClusterWriteError | null;
      t.ok(e instanceof ClusterWriteError && e.reason === reason, `refused: ${reason} (${e?.message})`);
      if (message !== undefined) t.match(e?.message, message);
    };
    const relay = async (): Promise<ReturnType<typeof parseEntry>['relay']> => parseEntry('relay', 'cam', (await c.get(keys.entry('relay', 'cam')).string())!).relay;

    await w.addRelay({ name: 'cam', listen: '198.18.0.10:5000', sources: ['198.18.0.0/24'] });
    t.same((await relay())?.node, ['edge1'], 'a new relay runs on the node that took the request');
    await refused(w.addRelay({ name: 'cam', listen: '198.18.0.11:5000', sources: ['198.18.0.0/24'] }), 'exists', 'relay "cam" already exists in the cluster');
    await refused(w.addRelay({ name: 'bad', listen: '198.18.0.11', sources: ['198.18.0.0/24'] }), 'invalid', /relay "bad": listen: /);
    t.equal(await c.get(keys.entry('relay', 'bad')).string(), null, 'nothing written for an invalid request');

    await w.subscribe('cam', '198.18.0.20:6000');
    // a racing edit: another subscriber lands between this edit's read and write
    const realIf = c.if.bind(c);
    let raced = false;
    (c as unknown as { if: typeof c.if }).if = (...args: Parameters<typeof c.if>) => {
      const b = realIf(...args);
      if (!raced) {
        raced = true;
        const commit = b.commit.bind(b);
        b.commit = async () => {
          await new ClusterWriter(c, keys, 'edge2').subscribe('cam', '198.18.0.21:6000');
          return commit();
        };
      }
      return b;
    };
    await w.subscribe('cam', '198.18.0.22:6000');
    (c as unknown as { if: typeof c.if }).if = realIf;
    t.same((await relay())?.subscribers.map((s) => `${s.address}:${s.port}`), ['198.18.0.20:6000', '198.18.0.21:6000', '198.18.0.22:6000'], 'both racing subscribes kept');
    await refused(w.subscribe('cam', '198.18.0.22:6000'), 'exists');
    await refused(w.subscribe('cam', '198.18.0.10:5000'), 'invalid', /own listen address \(a loop\)/);
    await w.unsubscribe('cam', '198.18.0.20:6000');
    await refused(w.unsubscribe('cam', '198.18.0.20:6000'), 'not_found');
    await refused(w.subscribe('nope', '198.18.0.20:6000'), 'not_found', 'no relay named "nope" in the cluster');

    await w.startSession({ name: 's', file: '/m.ts', to: '198.18.0.20:7000', loop: true });
    await c.put(keys.checkpoint('s')).value('{}');
    t.equal(parseEntry('session', 's', (await c.get(keys.entry('session', 's')).string())!).session?.node, undefined, 'no node: rendezvous');
    await w.stopSession('s');
    t.equal(await c.get(keys.checkpoint('s')).string(), null, 'stopping removes the checkpoint too');
    await refused(w.stopSession('s'), 'not_found');
    await w.removeRelay('cam');
    await refused(w.removeRelay('cam'), 'not_found');
  });
}
