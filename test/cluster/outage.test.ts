// SPDX-License-Identifier: MIT
// etcd stopped for 20 s while a relay relays and sessions stream: nothing
// stops (every relayed datagram arrives, no session pauses), the nodes say
// so (/readyz 503 naming the outage, reflector_cluster_connected 0), they
// resynchronise by revision when etcd returns without restarting anything,
// and a change made after that is applied.
//
// Also: a node started while etcd is unreachable logs a clear error, retries
// with backoff, answers /readyz 503 until it joins, then runs what it is given.
import t from 'tap';
import * as path from 'node:path';
import { etcdUnavailable } from '../helpers/etcd';
import { metricValue, serverUnavailable, sleep } from '../server/fixtures/harness';
import { ClusterBed, logs, longestGap, report } from './bed';

const why = etcdUnavailable() ?? serverUnavailable({ netns: true });
if (why) {
  process.stderr.write(`# SKIP cluster outage test: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('etcd stopped for 20 s while streaming', { timeout: 120000 }, async (t) => {
    const OUTAGE_MS = 20000;
    const bed = await ClusterBed.create(t, { nodes: ['a', 'b'] });
    const sub = bed.addr('sub');
    const media = bed.seqPcap('seq.pcap', 3000, 20);
    const sink = await bed.peer('sub', path.join(__dirname, 'fixtures/seq-sink.js'));
    await sink.call('bind', { ports: [6001, 6002, 7001, 7002] });
    const origin = await bed.peer('sub', path.join(__dirname, '../server/fixtures/udp-peer.js'));
    await Promise.all(['a', 'b'].map((n) => bed.start(n)));
    const desired = (subs: string): string => `relays:
  - { name: cam, node: a, listen: "${bed.addr('a')}:5000", sources: [${sub}/32], subscribers: [${subs}] }
sessions:
  - { name: s1, node: a, file: ${media}, to: "${sub}:7001", format: pcap, loop: true }
  - { name: s2, node: b, file: ${media}, to: "${sub}:7002", format: pcap, loop: true }
`;
    await bed.apply(desired(`"${sub}:6001"`));
    const a = bed.servers.get('a')!;
    const b = bed.servers.get('b')!;
    const deadline = Date.now() + 10000;
    while ((logs(a, 'session started').length < 1 || logs(b, 'session started').length < 1 || logs(a, 'relay added').length < 1) && Date.now() < deadline) await sleep(50);
    t.equal((await bed.http('a', '/readyz')).status, 200, 'a ready');

    // 200 datagrams/s to the relay for the whole outage and a bit
    const RATE = 200;
    const count = Math.round(((OUTAGE_MS + 8000) / 1000) * RATE);
    const sending = origin.call('send', { to: `${bed.addr('a')}:5000`, count, pps: RATE, first: 0 });
    await sleep(1000);
    const down = Number(process.hrtime.bigint()) / 1e6;
    await bed.etcd.stop();
    t.comment('etcd stopped');
    await sleep(4000);
    const ready = await bed.http('a', '/readyz');
    t.equal(ready.status, 503, '/readyz 503 during the outage');
    t.match(ready.body, /not ready: cluster: etcd unreachable for \d+ s, serving the last state \(revision \d+\)/, `it says why: ${ready.body.trim()}`);
    const m = await bed.http('b', '/metrics');
    t.equal(metricValue(m.body, 'reflector_cluster_connected'), 0, 'reflector_cluster_connected 0');
    await sleep(OUTAGE_MS - 4000);
    await bed.etcd.start();
    const up = Number(process.hrtime.bigint()) / 1e6;
    t.comment(`etcd back after ${((up - down) / 1000).toFixed(1)} s`);
    for (const n of ['a', 'b']) {
      let r = { status: 0, body: '' };
      const until = Date.now() + 10000;
      while (Date.now() < until && (r = await bed.http(n, '/readyz')).status !== 200) await sleep(200);
      t.equal(r.status, 200, `${n} ready again`);
      t.equal(metricValue((await bed.http(n, '/metrics')).body, 'reflector_cluster_connected'), 1, `${n}: reflector_cluster_connected 1`);
    }
    t.ok(logs(a, 'cluster watch resumed').length >= 1, 'the watch resumed from its revision');
    t.equal(logs(a, 'cluster lease granted').length, 1, 'a kept its lease (no second grant): its placements stayed');
    t.equal(logs(b, 'cluster lease granted').length, 1, 'b too');

    // a change after etcd returned is applied
    const mark = a.logs.length;
    await bed.apply(desired(`"${sub}:6001", "${sub}:6002"`));
    await a.waitLog((l) => l.msg === 'subscriber added' && l.subscriber === `${sub}:6002`, 10000, mark);
    t.pass('the new subscriber was added on a');
    await sending;
    // datagrams sent after the change, whenever the outage's stream ended
    // (etcd's restart and the readiness waits take a varying part of it)
    const AFTER = 200;
    await origin.call('send', { to: `${bed.addr('a')}:5000`, count: AFTER, pps: RATE, first: count });
    await sleep(300);
    const r = await report(sink);
    const relayed = r['6001'].map((x) => x[0]);
    t.equal(new Set(relayed).size, count + AFTER, `the relay delivered all ${count} datagrams through the outage and the ${AFTER} after (got ${relayed.length})`);
    const late = new Set(r['6002'].map((x) => x[0]).filter((seq) => seq >= count));
    t.equal(late.size, AFTER, `and the new subscriber gets every datagram sent after the change (${late.size} of ${AFTER})`);
    for (const [port, name] of [['7001', 's1'], ['7002', 's2']]) {
      const list = r[port].filter((x) => x[1] > down - 1000 && x[1] < up + 3000);
      const g = longestGap(list);
      t.ok(g.ms < 1000, `${name} streamed through the outage (longest silence ${g.ms.toFixed(0)} ms)`);
    }
    t.equal(logs(a, 'session started').length, 1, 's1 never restarted');
    t.equal(logs(b, 'session started').length, 1, 's2 never restarted');
    t.equal(logs(a, 'relay added').length, 1, 'the relay was never replaced');
  });

  t.test('a node started while etcd is unreachable retries, then joins', { timeout: 60000 }, async (t) => {
    const bed = await ClusterBed.create(t, { nodes: ['a'] });
    await bed.etcd.stop();
    const a = await bed.start('a', { wait: false });
    await a.waitLog((l) => l.msg === 'cluster: etcd unreachable at start, retrying in the background', 20000);
    const first = logs(a, 'cluster: etcd unreachable at start, retrying in the background')[0];
    t.match(JSON.stringify(first.err), /etcd at http:\/\/198\.18\.\d+\.\d+:2379/, 'the error names etcd\'s URL');
    await a.ready();
    const r = await bed.http('a', '/readyz');
    t.equal(r.status, 503, '/readyz 503 while it never reached etcd');
    t.match(r.body, /cluster: not synchronised with etcd yet/, r.body.trim());
    await sleep(2500);
    const retries = logs(a, 'cluster: etcd still unreachable, retrying');
    t.ok(retries.length >= 1, `it retried (${retries.length} times so far)`);
    t.ok(retries.every((l, i) => i === 0 || Number(l.retry_ms) >= Number(retries[i - 1].retry_ms)), 'with a growing backoff');
    await bed.etcd.start();
    await a.waitLog((l) => l.msg === 'cluster node joined', 15000);
    const until = Date.now() + 5000;
    let s = 0;
    while (Date.now() < until && (s = (await bed.http('a', '/readyz')).status) !== 200) await sleep(100);
    t.equal(s, 200, 'ready once it joined');
  });
}
