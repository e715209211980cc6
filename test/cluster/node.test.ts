// SPDX-License-Identifier: MIT
// Cluster nodes (src/cluster/node.ts) against a real etcd, with the server
// replaced by a recorder of the desired states each node is asked to run:
// placement (relays where named, sessions by rendezvous, each exactly once),
// a node that dies (its lease expires) has its relays and sessions taken by
// the next node, sessions resuming from the checkpoint it wrote; an invalid
// value is logged with its key and revision and ignored; a second node with
// a taken name refuses to start; a node cut off (SIGSTOP) longer than its
// lease loses what it ran to the next node and, back, registers again with a
// new lease and stops it; an orderly stop hands over at once.
import t from 'tap';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { Etcd3 } from 'etcd3';
import { etcdOptions } from '../../src/cluster/etcd';
import { ClusterKeys } from '../../src/cluster/keys';
import { ClusterNode } from '../../src/cluster/node';
import { NodeNameTaken } from '../../src/cluster/registration';
import { decodeCheckpoint } from '../../src/cluster/checkpoints';
import { applyEntries } from '../../src/cluster/apply';
import { parseDesiredFile, type DesiredState } from '../../src/cluster/desired';
import type { SessionPosition } from '../../src/config/schema';
import { EtcdServer, etcdUnavailable } from '../helpers/etcd';
import { skipUnlessRoot, Testbed } from '../helpers/testbed';
import { clusterConfig, keptLog, sleep, until } from './harness';

const why = etcdUnavailable();
if (why) {
  process.stderr.write(`# SKIP cluster node tests: ${why}\n`);
  t.plan(0, why);
} else if (!skipUnlessRoot(t)) {
  t.test('nodes place, fail over and resume through etcd', { timeout: 90000 }, async (t) => {
    const tb = await Testbed.create(t, { hosts: ['etcd', 'peer'], links: [['etcd', 'peer']] });
    const etcd = await EtcdServer.start(tb, 'etcd', t);
    const keys = new ClusterKeys('/t/');
    const admin = new Etcd3(etcdOptions(clusterConfig(etcd.local, 'admin')));
    t.teardown(() => admin.close());

    interface Member {
      node: ClusterNode;
      client: Etcd3;
      running: DesiredState;
      applies: number;
      started: Map<string, SessionPosition | undefined>;
      ticks: number;
    }
    const { log, lines } = keptLog();
    const members = new Map<string, Member>();
    const join = async (name: string): Promise<Member> => {
      const client = new Etcd3(etcdOptions(clusterConfig(etcd.local, name)));
      const m: Member = { node: null as unknown as ClusterNode, client, running: { relays: [], sessions: [] }, applies: 0, started: new Map(), ticks: 0 };
      m.node = new ClusterNode({
        cluster: clusterConfig(etcd.local, name),
        engine: { interface: 'veth0', netns: tb.ns('etcd') },
        version: 'test',
        log,
        client,
        // each session of this node advances 10 packets per call
        positions: async () => new Map(m.running.sessions.map((s) => [s.name, { packet: 10 * ++m.ticks, pass: 0 }])),
      });
      await m.node.start(async (d) => {
        for (const s of d.sessions) if (!m.running.sessions.some((x) => x.name === s.name)) m.started.set(s.name, s.resume);
        m.running = d;
        m.applies++;
      });
      members.set(name, m);
      return m;
    };
    t.teardown(async () => {
      for (const m of members.values()) {
        await m.node.stop().catch(() => undefined);
        m.client.close();
      }
    });
    const a = await join('a');
    /** a node in a child process (in the peer namespace), to be killed or stopped with signals */
    const spawnChild = async (name: string): Promise<{ child: ReturnType<typeof tb.spawn>; running: () => { relays: string[]; sessions: string[] } }> => {
      const child = tb.spawn('peer', [process.execPath, path.join(__dirname, 'fixtures/node-child.js'), etcd.local, name]);
      let running = { relays: [] as string[], sessions: [] as string[] };
      let ready!: () => void;
      const joined = new Promise<void>((r) => (ready = r));
      createInterface({ input: child.stdout! }).on('line', (l) => {
        const m = JSON.parse(l) as { ready?: boolean; desired?: typeof running };
        if (m.ready) ready();
        if (m.desired) running = m.desired;
      });
      child.stderr!.on('data', (d: Buffer) => process.stderr.write(`# ${name}: ${d}`));
      await joined;
      return { child, running: () => running };
    };
    const { child, running: bNow } = await spawnChild('b');
    const c = await join('c');
    t.ok(a.node.synced && a.node.connected, 'a joined: synced and connected');
    t.equal(a.node.notReady(), null, 'and ready');

    const file = `relays:
  - name: cam1
    node: a
    listen: 198.18.0.10:5000
    sources: [198.18.0.0/24]
    subscribers: [198.18.0.20:6000]
  - name: cam2
    node: [b, c]
    listen: 198.18.0.11:5000
    sources: [198.18.0.0/24]
sessions:
${[1, 2, 3, 4, 5, 6].map((i) => `  - { name: s${i}, file: /media/m${i}.ts, to: "198.18.0.20:${7000 + i}", loop: true }`).join('\n')}
`;
    const parsed = parseDesiredFile(file, '/tmp/desired.yaml');
    t.same(parsed.problems, []);
    const applied = await applyEntries(admin, keys, parsed.desired!.entries);
    t.equal(applied.changes.length, 8, '2 relays and 6 sessions added');
    t.equal(applied.transactions, 1, 'in one transaction');

    let bAlive = true;
    const runs = (name: string): string[] => [
      ...[...members.values()].filter((m) => m.running.relays.some((r) => r.name === name) || m.running.sessions.some((s) => s.name === name)).map((m) => m.node.name),
      ...(bAlive && (bNow().relays.includes(name) || bNow().sessions.includes(name)) ? ['b'] : []),
    ];
    const all = ['cam1', 'cam2', 's1', 's2', 's3', 's4', 's5', 's6'];
    await until('every object on exactly one node', () => all.every((n) => runs(n).length === 1));
    t.same(runs('cam1'), ['a'], 'cam1 on its node');
    t.same(runs('cam2'), ['b'], 'cam2 on the first of its nodes');
    const onB = bNow().sessions;
    t.comment(`sessions: a ${a.running.sessions.map((s) => s.name)}, b ${onB}, c ${c.running.sessions.map((s) => s.name)}`);
    t.equal(a.running.sessions.length + onB.length + c.running.sessions.length, 6, 'six sessions in all, each once');
    t.ok(onB.length > 0, 'b holds some sessions (rendezvous over a, b, c)');

    // let b write checkpoints, then read what it wrote last
    await until('b wrote checkpoints', async () => onB.length === 0 || (await admin.get(keys.checkpoint(onB[0])).string()) !== null, 5000);
    // b dies: kill -9, no release
    const killedAt = Date.now();
    const lastCheckpoints = new Map<string, number>();
    for (const n of onB) lastCheckpoints.set(n, decodeCheckpoint(await admin.get(keys.checkpoint(n)).string())?.packet ?? 0);
    child.kill('SIGKILL');
    bAlive = false;
    await until('cam2 and b\'s sessions elsewhere', () => runs('cam2')[0] === 'c' && onB.every((n) => runs(n).length === 1 && runs(n)[0] !== 'b'), 10000, 20);
    const tookMs = Date.now() - killedAt;
    t.ok(tookMs <= 2000 + 2000, `taken over ${tookMs} ms after b died (lease_s 2 + 2 s)`);
    t.same(runs('cam2'), ['c'], 'cam2 failed over to c');
    for (const n of onB) {
      const m = [a, c].find((x) => x.running.sessions.some((s) => s.name === n))!;
      const resumed = m.started.get(n);
      t.ok(resumed && resumed.packet > 0, `${n} resumed on ${m.node.name} at packet ${resumed?.packet}, not the beginning`);
      t.ok(resumed && resumed.packet >= lastCheckpoints.get(n)!, `${n}: from b's last checkpoint or later (${lastCheckpoints.get(n)} read before b died)`);
    }
    t.same([...a.running.sessions, ...c.running.sessions].map((s) => s.name).sort(), ['s1', 's2', 's3', 's4', 's5', 's6'], 'all six still run, each once');

    // an invalid value: logged with key and revision, ignored; the rest applies
    const badKey = keys.entry('relay', 'bad');
    const put = await admin.put(badKey).value(JSON.stringify({ name: 'bad', node: 'a', listen: '198.18.0.12', sources: ['198.18.0.0/24'] }));
    const rev = Number(put.header.revision);
    await admin.put(keys.entry('relay', 'cam3')).value(JSON.stringify({ name: 'cam3', node: ['c'], listen: '198.18.0.13:5000', sources: ['198.18.0.0/24'] }));
    await until('cam3 runs on c', () => runs('cam3')[0] === 'c');
    const ignored = lines.find((l) => l.msg === 'cluster value ignored' && l.key === badKey);
    t.ok(ignored, 'the bad value was logged');
    t.equal(ignored?.revision, rev, 'with its revision');
    t.match(JSON.stringify(ignored?.problems), /listen/, 'and what is wrong');
    t.same(runs('bad'), [], 'and nothing runs for it');

    // a second node named "a" refuses to start (after waiting out one lease, in case a is a crashed predecessor)
    const dupClient = new Etcd3(etcdOptions(clusterConfig(etcd.local, 'a')));
    t.teardown(() => dupClient.close());
    const dup = new ClusterNode({ cluster: clusterConfig(etcd.local, 'a'), engine: { interface: 'veth0', netns: null }, version: 'test', log, client: dupClient, positions: async () => new Map() });
    const t0 = Date.now();
    const refused = await dup.start(async () => undefined).then(() => null, (e: Error) => e);
    t.ok(refused instanceof NodeNameTaken, `the name is taken: ${refused?.message}`);
    t.match(refused?.message, /cluster\.node: the name "a" is held by another live node \(host .*pid \d+/, 'the message names the holder');
    t.ok(Date.now() - t0 < 6000, `refused in ${Date.now() - t0} ms`);
    await dup.stop();

    // d is cut off (SIGSTOP) longer than its lease: a takes d's relay; when d runs again, etcd says
    // its lease expired: d registers again with a new lease and stops what a took (no object twice)
    const d = await spawnChild('d');
    await admin.put(keys.entry('relay', 'cam4')).value(JSON.stringify({ name: 'cam4', node: ['d', 'a'], listen: '198.18.0.14:5000', sources: ['198.18.0.0/24'] }));
    await until('cam4 on d', () => d.running().relays.includes('cam4'));
    const dLease = (await admin.get(keys.node('d')).exec()).kvs[0].lease;
    d.child.kill('SIGSTOP');
    await until('a took cam4 from the stopped d', () => runs('cam4').includes('a'), 8000, 20);
    d.child.kill('SIGCONT');
    await until('d dropped cam4', () => !d.running().relays.includes('cam4'), 8000, 20);
    t.same(runs('cam4'), ['a'], 'cam4 runs on a only');
    const dAgain = await until('d registered again', async () => (await admin.get(keys.node('d')).exec()).kvs[0]?.lease, 8000);
    t.not(dAgain, dLease, 'd rejoined with a new lease');
    d.child.kill('SIGKILL');
    // (until d's lease runs out, rendezvous still counts d as live: let it)
    await until('d gone', async () => !(await admin.get(keys.node('d')).exists()), 8000);

    // an orderly stop of c hands over at once (its lease is revoked, not left to expire)
    const stoppedAt = Date.now();
    await c.node.stop();
    members.delete('c');
    await until('c\'s objects on a', () => runs('cam3').length === 0 && ['s1', 's2', 's3', 's4', 's5', 's6'].every((n) => runs(n)[0] === 'a'), 5000, 20);
    t.ok(Date.now() - stoppedAt < 1500, `handed over ${Date.now() - stoppedAt} ms after the stop (no lease wait)`);
    t.same(runs('cam2'), [], 'cam2 has no live node left (b, c): not running');
    await sleep(100);
  });
}
