// SPDX-License-Identifier: MIT
// Cascading relays across nodes: origin -> node a (1:2) -> nodes b and c
// (1:2 each) -> 4 subscribers, every datagram exactly once at each; and the
// desired state refuses relays that would feed each other on one node or in
// a circle.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { etcdUnavailable } from '../helpers/etcd';
import { serverUnavailable, sleep } from '../server/fixtures/harness';
import { ClusterBed, logs, report } from './bed';

const why = etcdUnavailable() ?? serverUnavailable({ netns: true });
if (why) {
  process.stderr.write(`# SKIP cluster cascade test: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('origin -> regional -> edge', { timeout: 90000 }, async (t) => {
    const bed = await ClusterBed.create(t, { nodes: ['a', 'b', 'c'] });
    const [sub, a, b, c] = ['sub', 'a', 'b', 'c'].map((h) => bed.addr(h));
    const sink = await bed.peer('sub', path.join(__dirname, 'fixtures/seq-sink.js'));
    await sink.call('bind', { ports: [6001, 6002, 6003, 6004] });
    const origin = await bed.peer('sub', path.join(__dirname, '../server/fixtures/udp-peer.js'));
    await Promise.all(['a', 'b', 'c'].map((n) => bed.start(n)));

    // refused before anything is written: a circle, and two relays of one node feeding each other
    const bad = await bed.ctl('apply', writeTemp(bed, `relays:
  - { name: x, node: a, listen: "${a}:5000", sources: [${sub}/32], subscribers: ["${b}:5000"] }
  - { name: y, node: [b, a], listen: "${b}:5000", sources: [${a}/32], subscribers: ["${a}:5000"] }
`));
    t.equal(bad.code, 1, 'ctl apply refuses it (exit 1)');
    t.match(bad.err, /relays\[0\]\.subscribers\[0\]: .*is the listen address of relay "y", which may run on the same node \(a\)/, 'same node named');
    t.match(bad.err, /relays "x" -> "y" -> "x" feed each other in a circle/, 'the circle named');
    t.match(bad.err, /nothing was written/);

    await bed.apply(`relays:
  - name: origin-a
    node: a
    listen: ${a}:5000
    sources: [${sub}/32]
    subscribers: [${b}:5000, ${c}:5000]
  - name: edge-b
    node: b
    listen: ${b}:5000
    sources: [${a}/32]
    subscribers: [${sub}:6001, ${sub}:6002]
  - name: edge-c
    node: c
    listen: ${c}:5000
    sources: [${a}/32]
    subscribers: [${sub}:6003, ${sub}:6004]
`);
    const deadline = Date.now() + 10000;
    while (['a', 'b', 'c'].some((n) => logs(bed.servers.get(n)!, 'relay added').length === 0) && Date.now() < deadline) await sleep(50);
    const N = 5000;
    await origin.call('send', { to: `${a}:5000`, count: N, pps: 2000, first: 0 });
    await sleep(500);
    const r = await report(sink);
    for (const port of ['6001', '6002', '6003', '6004']) {
      const seqs = r[port].map((x) => x[0]);
      const sorted = [...seqs].sort((x, y) => x - y);
      const dup = seqs.length - new Set(seqs).size;
      t.equal(dup, 0, `${port}: no datagram twice`);
      t.same(sorted, Array.from({ length: N }, (_, i) => i), `${port}: all ${N} datagrams, each exactly once (got ${seqs.length})`);
    }
  });
}

function writeTemp(bed: ClusterBed, text: string): string {
  const file = path.join(bed.dir, 'bad.yaml');
  fs.writeFileSync(file, text);
  return file;
}
