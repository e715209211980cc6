// SPDX-License-Identifier: MIT
// Three real Reflector nodes (`reflector serve`, each in its own namespace)
// and a real etcd on one segment: `ctl apply` of 2 relays and 6 sessions
// runs each exactly once, where placed, and `ctl status` agrees; then
// kill -9 of the node holding 3 of the sessions while they stream: within
// lease_s + 2 s its subscribers receive again, from close to where they
// stopped (the checkpoint), not from the start of the file.
import t from 'tap';
import * as path from 'node:path';
import { rendezvousOrder } from '../../src/cluster/rendezvous';
import type { ClusterStatus } from '../../src/cluster/status';
import { etcdUnavailable } from '../helpers/etcd';
import { serverUnavailable, sleep } from '../server/fixtures/harness';
import { ClusterBed, logs, longestGap, report } from './bed';

const why = etcdUnavailable() ?? serverUnavailable({ netns: true });
if (why) {
  process.stderr.write(`# SKIP cluster serve tests: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('apply, placement, status, kill -9 and resume', { timeout: 120000 }, async (t) => {
    const LEASE_S = 3;
    const PPS = 50;
    const bed = await ClusterBed.create(t, { nodes: ['a', 'b', 'c'], leaseS: LEASE_S });
    const sub = bed.addr('sub');
    // six session names of which rendezvous hashing puts exactly three on b
    const names: string[] = [];
    const onB: string[] = [];
    for (let i = 0; names.length < 6; i++) {
      const n = `movie${i}`;
      const first = rendezvousOrder(n, ['a', 'b', 'c'])[0];
      if (first === 'b' ? onB.length < 3 : names.length - onB.length < 3) {
        names.push(n);
        if (first === 'b') onB.push(n);
      }
    }
    const media = bed.seqPcap('seq.pcap', 60 * PPS, 1000 / PPS);
    const sink = await bed.peer('sub', path.join(__dirname, 'fixtures/seq-sink.js'));
    await sink.call('bind', { ports: [6001, 6002, 7001, 7002, 7003, 7004, 7005, 7006] });
    const origin = await bed.peer('sub', path.join(__dirname, '../server/fixtures/udp-peer.js'));
    await Promise.all(['a', 'b', 'c'].map((n) => bed.start(n)));

    const applied = await bed.apply(`relays:
  - name: cam1
    node: a
    listen: ${bed.addr('a')}:5000
    sources: [${sub}/32]
    subscribers: [${sub}:6001]
  - name: cam2
    node: c
    listen: ${bed.addr('c')}:5000
    sources: [${sub}/32]
    subscribers: [${sub}:6002]
sessions:
${names.map((n, i) => `  - { name: ${n}, file: ${media}, to: "${sub}:${7001 + i}", format: pcap, loop: true }`).join('\n')}
`);
    t.match(applied, /8 change\(s\), 0 unchanged \(revision \d+, one transaction\)/, 'ctl apply: 8 added in one transaction');
    const started = (node: string): string[] => logs(bed.servers.get(node)!, 'session started').map((l) => String(l.session));
    const relaysOn = (node: string): string[] => logs(bed.servers.get(node)!, 'relay added').map((l) => String(l.relay));
    const deadline = Date.now() + 10000;
    while (['a', 'b', 'c'].reduce((k, n) => k + started(n).length + relaysOn(n).length, 0) < 8 && Date.now() < deadline) await sleep(50);
    t.same(relaysOn('a'), ['cam1'], 'cam1 runs on a');
    t.same(relaysOn('c'), ['cam2'], 'cam2 runs on c');
    t.same(relaysOn('b'), [], 'no relay on b');
    t.same(started('b').sort(), [...onB].sort(), 'b runs the three sessions rendezvous hashing gives it');
    t.same([...started('a'), ...started('b'), ...started('c')].sort(), [...names].sort(), 'every session runs exactly once');
    for (const n of ['a', 'c']) for (const s of started(n)) t.equal(rendezvousOrder(s, ['a', 'b', 'c'])[0], n, `${s} on ${n}, its first node`);

    const st = await bed.ctl('status', '--json');
    t.equal(st.code, 0, `ctl status: ${st.err}`);
    const status = JSON.parse(st.out) as ClusterStatus;
    t.same(status.nodes.map((n) => n.name), ['a', 'b', 'c'], 'status: three nodes');
    t.ok(status.nodes.every((n) => n.grantedTtl === LEASE_S && n.ttl > 0), 'with live leases');
    for (const o of status.objects) {
      const where = o.kind === 'relay' ? ['a', 'b', 'c'].find((n) => relaysOn(n).includes(o.name)) : ['a', 'b', 'c'].find((n) => started(n).includes(o.name));
      t.equal(o.placedOn, where, `status: ${o.kind} ${o.name} on ${where}`);
    }
    t.same(status.objects.flatMap((o) => o.problems), [], 'status: no problems');

    // relays: every datagram exactly once at each subscriber
    await origin.call('send', { to: `${bed.addr('a')}:5000`, count: 300, pps: 1000, first: 0 });
    await origin.call('send', { to: `${bed.addr('c')}:5000`, count: 300, pps: 1000, first: 0 });
    // sessions stream for a while
    await sleep(4000);
    const before = await report(sink);
    for (const [port, relay] of [['6001', 'cam1'], ['6002', 'cam2']]) {
      const seqs = before[port].map((x) => x[0]).sort((x, y) => x - y);
      t.same(seqs, Array.from({ length: 300 }, (_, i) => i), `${relay}: every datagram exactly once`);
    }
    names.forEach((n, i) => {
      const seqs = before[String(7001 + i)].map((x) => x[0]);
      t.ok(seqs.length > 100, `${n}: streaming (${seqs.length} packets)`);
      t.equal(new Set(seqs).size, seqs.length, `${n}: no packet twice (one sender)`);
    });

    const b = bed.servers.get('b')!;
    const killedAt = Number(process.hrtime.bigint()) / 1e6;
    await b.kill('SIGKILL');
    await sleep((LEASE_S + 3) * 1000);
    const after = await report(sink);
    for (const n of onB) {
      const list = after[String(7001 + names.indexOf(n))];
      const last = [...list].reverse().find((x) => x[1] <= killedAt)!;
      const next = list.find((x) => x[1] > killedAt + 100);
      t.ok(next, `${n}: received again after the kill`);
      if (!next || !last) continue;
      const gap = next[1] - last[1];
      t.ok(gap <= (LEASE_S + 2) * 1000, `${n}: silent ${(gap / 1000).toFixed(2)} s (lease_s ${LEASE_S} + 2 s at most)`);
      t.ok(next[0] >= last[0] - PPS && next[0] <= last[0] + 10, `${n}: resumed at packet ${next[0]}, it stopped at ${last[0]} (at most 1 s back)`);
      t.comment(`${n}: stopped at packet ${last[0]}, resumed at ${next[0]} after ${(gap / 1000).toFixed(2)} s`);
    }
    const moved = [...started('a'), ...started('c')];
    t.same(moved.sort(), [...names].sort(), 'all six sessions now run on a and c');
    for (const n of names.filter((x) => !onB.includes(x))) {
      const list = after[String(7001 + names.indexOf(n))];
      t.ok(longestGap(list.filter((x) => x[1] > killedAt - 2000)).ms < 1000, `${n} (not on b) kept streaming`);
    }
    const st2 = JSON.parse((await bed.ctl('status', '--json')).out) as ClusterStatus;
    t.same(st2.nodes.map((n) => n.name), ['a', 'c'], 'status: b is gone');
    t.ok(st2.objects.every((o) => o.placedOn === 'a' || o.placedOn === 'c'), 'status: everything on a or c');

    // a second node named "a" (in b's namespace) refuses to start: exit 1, naming the holder
    const dup = await bed.start('b', { wait: false, name: 'a' });
    const exit = await dup.exited;
    t.equal(exit.code, 1, 'a second "a" exits 1');
    const failed = dup.logs.find((l) => l.msg === 'server failed to start');
    t.match(JSON.stringify(failed?.err), /cluster\.node: the name \\"a\\" is held by another live node/, 'and says the name is taken');
    t.ok(logs(bed.servers.get('a')!, 'cluster node left').length === 0, 'the first "a" runs on');
  });
}
