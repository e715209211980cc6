// SPDX-License-Identifier: MIT
// Declarative apply against a real etcd (src/cluster/apply.ts): adds,
// changes and removes exactly what differs, writes nothing for what did
// not change (no revision, so no node sees an event), removes a removed
// session's checkpoint, a dry run writes nothing, a concurrent change is
// detected and the apply re-read and retried, and a change larger than one
// transaction is split (and says so). Then `reflector ctl --etcd`: exit
// codes for usage errors, an invalid file, an unreachable etcd, and status.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { applyEntries } from '../../src/cluster/apply';
import { parseDesiredFile } from '../../src/cluster/desired';
import { etcdOptions } from '../../src/cluster/etcd';
import { ClusterKeys } from '../../src/cluster/keys';
import { EtcdServer, etcdUnavailable } from '../helpers/etcd';
import { skipUnlessRoot, Testbed } from '../helpers/testbed';
import { BIN } from '../server/fixtures/harness';
import { clusterConfig } from './harness';

const keys = new ClusterKeys('/t/');
const entries = (sessions: string[], relayNode = 'a'): ReturnType<typeof parseDesiredFile>['desired'] =>
  parseDesiredFile(`relays:
  - { name: cam, node: ${relayNode}, listen: "198.18.0.10:5000", sources: [198.18.0.0/24] }
sessions:
${sessions.map((s, i) => `  - { name: ${s}, file: /m.ts, to: "198.18.0.20:${7000 + i}" }`).join('\n') || '  []'}
`.replace('sessions:\n  []', 'sessions: []'), '/d.yaml').desired;

const why = etcdUnavailable();
if (why) {
  process.stderr.write(`# SKIP apply tests: ${why}\n`);
  t.plan(0, why);
} else if (!skipUnlessRoot(t)) {
  t.test('apply and ctl against a real etcd', { timeout: 60000 }, async (t) => {
    const tb = await Testbed.create(t, { hosts: ['etcd', 'peer'], links: [['etcd', 'peer']] });
    const etcd = await EtcdServer.start(tb, 'etcd', t);
    const c = new Etcd3(etcdOptions(clusterConfig(etcd.local, 'admin')));
    t.teardown(() => c.close());

    const r1 = await applyEntries(c, keys, entries(['s1', 's2'])!.entries);
    t.same(r1.changes, [{ kind: 'relay', name: 'cam', op: 'add' }, { kind: 'session', name: 's1', op: 'add' }, { kind: 'session', name: 's2', op: 'add' }]);
    t.equal(r1.transactions, 1);
    const rev1 = r1.revision;
    const same = await applyEntries(c, keys, entries(['s1', 's2'])!.entries);
    t.same(same.changes, [], 'the same file again: no change');
    t.equal(same.unchanged, 3);
    t.equal(same.revision, rev1, 'and nothing written: the revision did not move');

    await c.put(keys.checkpoint('s2')).value('{"x":1}');
    const dry = await applyEntries(c, keys, entries(['s1', 's3'], 'b')!.entries, { dryRun: true });
    t.same(dry.changes.map((x) => `${x.op} ${x.kind} ${x.name}`).sort(), ['add session s3', 'change relay cam', 'remove session s2']);
    t.equal(dry.transactions, 0, 'a dry run writes nothing');
    t.ok(await c.get(keys.entry('session', 's2')).string(), 's2 still there');

    // a concurrent write between the read and the transaction: detected, re-read, retried
    const realIf = c.if.bind(c);
    let interfered = false;
    (c as unknown as { if: typeof c.if }).if = (...args: Parameters<typeof c.if>) => {
      const b = realIf(...args);
      if (!interfered) {
        interfered = true;
        const commit = b.commit.bind(b);
        b.commit = async () => {
          await c.put(keys.entry('session', 's1')).value(JSON.stringify({ name: 's1', file: '/other.ts', to: '198.18.0.20:7000' }));
          return commit();
        };
      }
      return b;
    };
    const r2 = await applyEntries(c, keys, entries(['s1', 's3'], 'b')!.entries);
    (c as unknown as { if: typeof c.if }).if = realIf;
    t.ok(interfered, 'a write came in between');
    t.same(r2.changes.map((x) => `${x.op} ${x.kind} ${x.name}`).sort(), ['add session s3', 'change relay cam', 'change session s1', 'remove session s2'], 'the retry saw it: s1 is set back to the file');
    t.equal(JSON.parse((await c.get(keys.entry('session', 's1')).string())!).file, '/m.ts');
    t.equal(await c.get(keys.entry('session', 's2')).string(), null, 's2 removed');
    t.equal(await c.get(keys.checkpoint('s2')).string(), null, 'with its checkpoint');
    t.same(JSON.parse((await c.get(keys.entry('relay', 'cam')).string())!).node, ['b'], 'the relay changed');

    // 150 sessions: more than one transaction
    const many = Array.from({ length: 150 }, (_, i) => `m${i}`);
    const r3 = await applyEntries(c, keys, entries(many, 'b')!.entries);
    t.equal(r3.changes.length, 150 + 2, '150 added, s1 and s3 removed');
    t.ok(r3.transactions >= 2, `split into ${r3.transactions} transactions`);
    t.equal((await c.getAll().prefix(keys.entries('session')).keys()).length, 150);

    // the CLI, run from inside the etcd host's namespace over the segment
    const dir = fs.mkdtempSync(path.join(etcd.dir, 'ctl-'));
    const ctl = (...args: string[]): { code: number | null; out: string; err: string } => {
      const r = spawnSync('ip', ['netns', 'exec', tb.ns('etcd'), process.execPath, BIN, 'ctl', ...args], { encoding: 'utf8', timeout: 30000, env: { ...process.env, NODE_OPTIONS: undefined } });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    const file = path.join(dir, 'd.yaml');
    fs.writeFileSync(file, 'relays:\n  - { name: cam, node: [a, b], listen: "198.18.0.10:5000", sources: [198.18.0.0/24] }\n');
    let r = ctl('--etcd', etcd.url, '--prefix', '/t/', 'apply', file, '--dry-run');
    t.equal(r.code, 0, r.err);
    t.match(r.out, /relay cam: would be changed\n/);
    t.match(r.out, /session m0: would be removed\n/);
    t.match(r.out, /151 change\(s\), 0 unchanged .*: dry run, nothing written/);
    r = ctl('--etcd', etcd.url, '--prefix', '/t/', 'apply', file, '--json');
    t.equal(r.code, 0, r.err);
    t.equal((JSON.parse(r.out) as { changes: unknown[] }).changes.length, 151);
    r = ctl('--etcd', etcd.url, '--prefix', '/t/', 'status');
    t.equal(r.code, 0, r.err);
    t.match(r.out, /nodes \(0\):\nrelays \(1\):\n  cam  listen 198\.18\.0\.10:5000  node a, b  NOT RUNNING\n/);
    t.match(r.out, /problems \(3\):\n  relay cam: node "a" does not exist \(no live node has that name\)\n  relay cam: node "b" does not exist/);
    t.match(r.out, /relay cam: not running: none of its nodes \(a, b\) is live/);

    fs.writeFileSync(file, 'relays:\n  - { name: cam, listen: "198.18.0.10:5000", sources: [198.18.0.0/24] }\n');
    r = ctl('--etcd', etcd.url, 'apply', file);
    t.equal(r.code, 1, 'an invalid file: exit 1');
    t.match(r.err, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:2:\\d+: relays\\[0\\]\\.node: missing required key "node"`), 'FILE:LINE:COL: key: what');
    t.match(r.err, /nothing was written/);
    r = ctl('--etcd', 'http://198.18.0.1:1', 'status');
    t.equal(r.code, 3, `etcd unreachable: exit 3 (${r.err.trim()})`);
    t.match(r.err, /etcd at http:\/\/198\.18\.0\.1:1 could not be reached/);
    for (const [args, msg] of [
      [['--etcd', etcd.url], /a command is required/],
      [['--etcd', etcd.url, 'frob'], /unknown command "frob" with --etcd/],
      [['--etcd', 'ftp://x:1', 'status'], /--etcd: "ftp:\/\/x:1": scheme ftp: is not supported/],
      [['--etcd', etcd.url, '--prefix', 'nope', 'status'], /--prefix: "nope" must end with "\/"/],
      [['--etcd', etcd.url, '--bogus', 'status'], /Unknown option '--bogus'/],
      [['--etcd', etcd.url, 'apply'], /apply: expected exactly one FILE, got 0/],
    ] as const) {
      r = ctl(...args);
      t.equal(r.code, 2, `usage error: exit 2 (${args.join(' ')})`);
      t.match(r.err, msg);
    }
    r = ctl('--etcd', etcd.url, '--help');
    t.equal(r.code, 0);
    t.match(r.out, /Usage: reflector ctl --etcd URL/);
  });
}
