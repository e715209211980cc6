// SPDX-License-Identifier: MIT
// A session that ends on its own in cluster mode (a file played once) is
// not run again: not by the next change the node applies, not by a node
// that takes the placement over; a changed definition runs afresh, and
// `ctl apply` without the session deletes the record with it. Real etcd,
// the server replaced by a recorder of what each node is asked to run.
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { etcdOptions } from '../../src/cluster/etcd';
import { ClusterKeys } from '../../src/cluster/keys';
import { ClusterNode } from '../../src/cluster/node';
import { decodeCheckpoint } from '../../src/cluster/checkpoints';
import { applyEntries } from '../../src/cluster/apply';
import { clusterStatus, formatStatus } from '../../src/cluster/status';
import { parseDesiredFile, type DesiredState } from '../../src/cluster/desired';
import type { SessionPosition } from '../../src/config/schema';
import { EtcdServer, etcdUnavailable } from '../helpers/etcd';
import { skipUnlessRoot, Testbed } from '../helpers/testbed';
import { clusterConfig, keptLog, until } from './harness';

const why = etcdUnavailable();
if (why) {
  process.stderr.write(`# SKIP cluster ended-session tests: ${why}\n`);
  t.plan(0, why);
} else if (!skipUnlessRoot(t)) {
  t.test('an ended session stays ended across applies and takeovers', { timeout: 60000 }, async (t) => {
    const tb = await Testbed.create(t, { hosts: ['etcd', 'peer'], links: [['etcd', 'peer']] });
    const etcd = await EtcdServer.start(tb, 'etcd', t);
    const keys = new ClusterKeys('/t/');
    const admin = new Etcd3(etcdOptions(clusterConfig(etcd.local, 'admin')));
    t.teardown(() => admin.close());
    const { log } = keptLog();

    interface Member {
      node: ClusterNode;
      client: Etcd3;
      running: DesiredState;
      starts: string[];
    }
    const members: Member[] = [];
    const join = async (name: string): Promise<Member> => {
      const client = new Etcd3(etcdOptions(clusterConfig(etcd.local, name)));
      const m: Member = { node: null as unknown as ClusterNode, client, running: { relays: [], sessions: [] }, starts: [] };
      m.node = new ClusterNode({
        cluster: clusterConfig(etcd.local, name),
        engine: { interface: 'veth0', netns: null },
        version: 'test',
        log,
        client,
        positions: async () => new Map<string, SessionPosition>(m.running.sessions.map((s) => [s.name, { packet: 5, pass: 0 }])),
      });
      await m.node.start(async (d) => {
        for (const s of d.sessions) if (!m.running.sessions.some((x) => x.name === s.name)) m.starts.push(s.name);
        m.running = d;
      });
      members.push(m);
      return m;
    };
    t.teardown(async () => {
      for (const m of members) {
        await m.node.stop().catch(() => undefined);
        m.client.close();
      }
    });
    const runs = (m: Member, s: string): boolean => m.running.sessions.some((x) => x.name === s);

    const a = await join('a');
    const desired = (file: string): string => `sessions:
  - { name: once, node: a, file: ${file}, to: "198.18.0.20:7000" }
  - { name: other, node: [a, b], file: /media/o.ts, to: "198.18.0.20:7001", loop: true }
`;
    const apply = async (text: string): Promise<void> => {
      const parsed = parseDesiredFile(text, '/tmp/desired.yaml');
      t.same(parsed.problems, [], 'the desired file validates');
      await applyEntries(admin, keys, parsed.desired!.entries);
    };
    await apply(desired('/media/once.ts'));
    await until('a runs both sessions', () => runs(a, 'once') && runs(a, 'other'));

    // the server tells the node that "once" played to its end
    a.node.sessionEnded('once');
    const cp = await until('the ended checkpoint is in etcd', async () => {
      const c = decodeCheckpoint(await admin.get(keys.checkpoint('once')).string());
      return c?.ended ? c : null;
    });
    t.equal(cp?.node, 'a', 'written by the node it ended on');
    t.notOk(runs(a, 'once'), 'a no longer runs it');
    t.ok(runs(a, 'other'), 'the other session is not touched');

    // an unrelated change makes a apply again: "once" is not restarted
    await admin.put(keys.entry('relay', 'cam')).value(JSON.stringify({ name: 'cam', node: 'a', listen: '198.18.0.10:5000', sources: ['198.18.0.0/24'] }));
    await until('a runs the new relay', () => a.running.relays.some((r) => r.name === 'cam'));
    t.notOk(runs(a, 'once'), 'an apply after the end does not run it again');
    t.same(a.starts.filter((s) => s === 'once').length, 1, 'started once in all');
    t.match(formatStatus(await clusterStatus(admin, keys)), /once .*on a {2}ENDED/, 'status says it ended');

    // a stops (orderly leave); b takes the placement over (the session names node a only, so make it [a, b])
    await apply(desired('/media/once.ts').replace('name: once, node: a', 'name: once, node: [a, b]'));
    const b = await join('b');
    await a.node.stop();
    await until('b holds the placement of once', () => b.node.holds().includes('session/once'));
    await until('b runs the other session it took over', () => runs(b, 'other'));
    t.notOk(runs(b, 'once'), 'the node taking it over does not run an ended session');

    // a changed definition runs afresh
    await apply(desired('/media/once-v2.ts').replace('name: once, node: a', 'name: once, node: [a, b]'));
    await until('b runs the new definition', () => runs(b, 'once'));
    t.equal(b.running.sessions.find((s) => s.name === 'once')?.file, '/media/once-v2.ts', 'the new file');
    t.equal(b.running.sessions.find((s) => s.name === 'once')?.resume, undefined, 'from the beginning');

    // removed by apply: its record goes with it, so the same definition added back runs
    b.node.sessionEnded('once');
    await until('ended again', async () => decodeCheckpoint(await admin.get(keys.checkpoint('once')).string())?.ended === true);
    await apply('sessions: []\n');
    t.equal(await admin.get(keys.checkpoint('once')).string(), null, 'the record is deleted with the session');
    await apply(desired('/media/once-v2.ts').replace('name: once, node: a', 'name: once, node: [a, b]'));
    await until('b runs it once more', () => runs(b, 'once'));
    t.pass('the same definition added back after a removal runs');
  });
}
