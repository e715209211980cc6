// SPDX-License-Identifier: MIT
// The desired state (src/cluster/desired.ts): a file for `ctl apply` is
// validated by the config's own rules with FILE:LINE:COL problems, plus its
// own (node required on relays, only relays and sessions, cascades); the
// stored entries are canonical (equal entries are equal bytes) and keep
// every key; one etcd value validates alone and names what is wrong.
import t from 'tap';
import { canonical, cascadeProblems, parseDesiredFile, parseEntry } from '../../src/cluster/desired';
import { formatProblem } from '../../src/config/validate';
import { decodeCheckpoint, resumeFrom } from '../../src/cluster/checkpoints';
import { sessionIdentity } from '../../src/config/diff';

const FILE = '/srv/cluster/desired.yaml';

t.test('a valid file: typed state, canonical entries', async (t) => {
  const text = `relays:
  - name: cam
    node: [a, b]
    listen: 198.18.0.100:5000
    sources: [198.18.0.0/24]
    subscribers: [198.18.0.20:6000]
sessions:
  - name: s1
    node: a
    file: media/x.ts
    to: 198.18.0.20:7000
  - { to: "198.18.0.20:7001", name: s2, file: /abs/y.ts, loop: true }
`;
  const r = parseDesiredFile(text, FILE);
  t.same(r.problems.map(formatProblem), []);
  const d = r.desired!;
  t.same(d.state.relays[0].node, ['a', 'b']);
  t.same(d.state.sessions[0].node, ['a'], 'node: a is the list [a]');
  t.equal(d.state.sessions[0].file, '/srv/cluster/media/x.ts', 'media paths resolved against the file\'s folder');
  t.equal(d.state.sessions[1].node, undefined, 'no node: rendezvous');
  const [e0, e1, e2] = d.entries;
  t.same([e0.kind, e0.name, e1.kind, e1.name, e2.name], ['relay', 'cam', 'session', 's1', 's2']);
  t.equal(e1.value, canonical({ name: 's1', node: ['a'], file: '/srv/cluster/media/x.ts', to: '198.18.0.20:7000' }), 'stored as canonical JSON, the absolute path in it');
  t.equal(e2.value, '{"file":"/abs/y.ts","loop":true,"name":"s2","to":"198.18.0.20:7001"}', 'keys sorted; no node key when none');
  // the same entries written differently are the same bytes
  const again = parseDesiredFile(text.replace('    listen: 198.18.0.100:5000\n    sources: [198.18.0.0/24]\n', '    sources: [198.18.0.0/24]\n    listen: 198.18.0.100:5000\n'), FILE);
  t.equal(again.desired!.entries[0].value, e0.value, 'key order does not change the stored value');
  // each entry validates alone as a node reads it from etcd
  t.same(parseEntry('relay', 'cam', e0.value).relay?.node, ['a', 'b']);
  t.equal(parseEntry('session', 's1', e1.value).session?.file, '/srv/cluster/media/x.ts');
});

t.test('problems with positions, nothing accepted', async (t) => {
  const text = `engine:
  workers: 2
relays:
  - name: cam
    listen: 198.18.0.100:5000
    sources: [198.18.0.0/24]
sessions:
  - { name: s, file: x.ts, to: "198.18.0.20:7000", node: [] }
`;
  const r = parseDesiredFile(text, FILE);
  t.equal(r.desired, null);
  const lines = r.problems.map(formatProblem);
  t.equal(lines.length, 3, lines.join('\n'));
  t.match(lines[0], /^\/srv\/cluster\/desired\.yaml:1:1: engine: a desired-state file holds only relays and sessions; "engine" belongs in each node's own config file$/);
  t.match(lines[1], /^\/srv\/cluster\/desired\.yaml:4:5: relays\[0\]\.node: missing required key "node": the node that owns the listen address/);
  t.match(lines[2], /^\/srv\/cluster\/desired\.yaml:8:\d+: sessions\[0\]\.node: must list at least 1 item/);
  // names are checked once the structure is right
  const names = parseDesiredFile(`relays:
  - name: cam2
    node: [a, "-bad-"]
    listen: 198.18.0.101:5000
    sources: [198.18.0.0/24]
`, FILE);
  t.match(names.problems.map(formatProblem), [/^\/srv\/cluster\/desired\.yaml:3:\d+: relays\[0\]\.node\[1\]: "-bad-" is not a node name \(1\.\.253 letters, digits/]);
});

t.test('cascades: across nodes yes, on one node or in a circle no', async (t) => {
  const ok = parseDesiredFile(`relays:
  - { name: o, node: a, listen: "198.18.0.1:5000", sources: [198.18.9.0/24], subscribers: ["198.18.0.2:5000", "198.18.0.3:5000"] }
  - { name: e1, node: b, listen: "198.18.0.2:5000", sources: [198.18.0.1/32], subscribers: ["198.18.9.1:6000"] }
  - { name: e2, node: [c, d], listen: "198.18.0.3:5000", sources: [198.18.0.1/32], subscribers: ["198.18.9.2:6000"] }
`, FILE);
  t.same(ok.problems.map(formatProblem), [], 'origin -> edges on other nodes');
  const bad = parseDesiredFile(`relays:
  - { name: o, node: [a, b], listen: "198.18.0.1:5000", sources: [198.18.9.0/24], subscribers: ["198.18.0.2:5000"] }
  - { name: e, node: [b], listen: "198.18.0.2:5000", sources: [198.18.0.1/32], subscribers: ["198.18.0.1:5000"] }
`, FILE);
  const lines = bad.problems.map(formatProblem);
  t.match(lines[0], /:2:\d+: relays\[0\]\.subscribers\[0\]: 198\.18\.0\.2:5000 is the listen address of relay "e", which may run on the same node \(b\)/);
  t.match(lines.join('\n'), /relays "o" -> "e" -> "o" feed each other in a circle/);
  t.same(cascadeProblems([]), []);
});

t.test('one etcd value alone', async (t) => {
  t.match(parseEntry('relay', 'x', '{not json').problems, [/^not JSON: /]);
  t.match(parseEntry('relay', 'x', '[1]').problems, ['expected a JSON object (a relay entry), got a list']);
  t.match(parseEntry('relay', 'x', '{"name":"y"}').problems, ['name: "y" differs from the key\'s name "x"']);
  t.match(parseEntry('session', 's', '{"name":"s","file":"rel.ts","to":"198.18.0.1:1"}').problems, [/file: "rel\.ts" is not an absolute path/]);
  const r = parseEntry('relay', 'x', '{"name":"x","node":"a","listen":"198.18.0.1","sources":["198.18.0.0/33"],"bogus":1}');
  t.equal(r.relay, undefined);
  t.match(r.problems.join('\n'), /listen: .*198\.18\.0\.1/, 'the bad listen, named without the list index');
  t.match(r.problems.join('\n'), /sources\[0\]: prefix length "33"/);
  t.match(r.problems.join('\n'), /bogus: unknown key "bogus"/);
});

t.test('checkpoints: only for the definition they were written for', async (t) => {
  const spec = parseEntry('session', 's', '{"name":"s","file":"/a.ts","to":"198.18.0.1:7000","loop":true}').session!;
  const cp = { node: 'b', identity: sessionIdentity(spec), packet: 42, pass: 3, at: 1 };
  t.same(resumeFrom(spec, decodeCheckpoint(JSON.stringify(cp))), { packet: 42, pass: 3 });
  t.equal(resumeFrom({ ...spec, file: '/b.ts' }, cp), null, 'another file: from the beginning');
  t.equal(decodeCheckpoint('{"packet":"x"}'), null);
  t.equal(decodeCheckpoint('nope'), null);
  t.equal(decodeCheckpoint(null), null);
});
