// SPDX-License-Identifier: MIT
// The cluster section of a node's config: defaults (node = the host name),
// every mistypable value refused with the key and what is accepted, and in
// cluster mode relays and sessions belong in etcd, not in the file.
import t from 'tap';
import * as os from 'node:os';
import { parseConfig, formatProblem } from '../../src/config/validate';
import { diffConfig } from '../../src/config/diff';

const parse = (text: string): ReturnType<typeof parseConfig> => parseConfig(text, '/etc/reflector/node.yaml', { checkFiles: false });
const problems = (text: string): string[] => parse(text).problems.map(formatProblem);

t.test('defaults: no cluster, node = the host name', async (t) => {
  const c = parse('').config!;
  t.same(c.cluster, {
    etcd: [],
    node: os.hostname(),
    prefix: '/reflector/',
    leaseS: 10,
    checkpointMs: 1000,
    tls: { ca: null, cert: null, key: null },
    auth: { username: null, passwordFile: null },
  });
  const k = parse(`cluster:
  etcd: [http://198.18.0.1:2379, "https://etcd.example:2379", unix:///run/etcd.sock]
  node: edge-7.fra
  lease_s: 5
  tls: { ca: ca.pem, cert: c.pem, key: k.pem }
  auth: { username: reflector, password_file: pw }
`).config!.cluster;
  t.same(k.etcd, ['http://198.18.0.1:2379', 'https://etcd.example:2379', 'unix:///run/etcd.sock']);
  t.equal(k.node, 'edge-7.fra');
  t.equal(k.tls.ca, '/etc/reflector/ca.pem', 'paths relative to the file');
  t.equal(k.auth.passwordFile, '/etc/reflector/pw');
});

t.test('bad values, each named', async (t) => {
  t.match(problems('cluster:\n  etcd: [198.18.0.1:2379]\n'), [/cluster\.etcd\[0\]: "198\.18\.0\.1:2379" is not a URL: did you mean "http:\/\/198\.18\.0\.1:2379"\? \(accepted: http:\/\/HOST:PORT, https:\/\/HOST:PORT, unix:\/\/PATH\)/]);
  t.match(problems('cluster:\n  etcd: [http://etcd]\n'), [/cluster\.etcd\[0\]: "http:\/\/etcd" names no port/]);
  t.match(problems('cluster:\n  etcd: ["http://e:1/v3"]\n'), [/a client URL has no path/]);
  t.match(problems('cluster:\n  etcd: [unix://]\n'), [/names no socket path/]);
  t.match(problems('cluster:\n  node: "a b"\n'), [/cluster\.node: "a b" is not a node name/]);
  t.match(problems('cluster:\n  prefix: /reflector\n'), [/cluster\.prefix: "\/reflector" must end with "\/"/]);
  t.match(problems('cluster:\n  lease_s: 1\n'), [/cluster\.lease_s: 1 is outside 2\.\.300/]);
  t.match(problems('cluster:\n  checkpoint_ms: 5000\n'), [/cluster\.checkpoint_ms: 5000 is outside 100\.\.1000/]);
  t.match(problems('cluster:\n  tls: { cert: c.pem }\n'), [/cluster\.tls\.cert: cluster\.tls\.cert and cluster\.tls\.key go together/]);
  t.match(problems('cluster:\n  auth: { username: u }\n'), [/cluster\.auth\.username: cluster\.auth\.username and cluster\.auth\.password_file go together/]);
  t.match(problems('cluster:\n  etcdd: []\n'), [/unknown key "etcdd", did you mean "etcd"\?/]);
  const files = parseConfig('cluster:\n  tls: { ca: /nonexistent/ca.pem }\n', '/x.yaml').problems.map(formatProblem);
  t.match(files, [/cluster\.tls\.ca: \/nonexistent\/ca\.pem does not exist/]);
});

t.test('cluster mode: relays and sessions live in etcd', async (t) => {
  const p = problems(`cluster:
  etcd: [http://198.18.0.1:2379]
relays:
  - { name: r, listen: "198.18.0.1:5000", sources: [198.18.0.0/24] }
sessions:
  - { name: s, file: x.ts, to: "198.18.0.2:7000" }
`);
  t.match(p, [/:4:\d+: relays: in cluster mode \(cluster\.etcd set\) relays and sessions live in etcd: write them with `reflector ctl --etcd URL apply FILE`/, /:6:\d+: sessions: in cluster mode/]);
  t.match(problems('relays:\n  - { name: r, node: a, listen: "198.18.0.1:5000", sources: [198.18.0.0/24] }\n'), [/unknown key "node"/], 'node belongs to a desired state, not a node\'s file');
  // the cluster section takes effect at the next start
  const a = parse('cluster:\n  lease_s: 5\n').config!;
  const b = parse('cluster:\n  lease_s: 6\n').config!;
  t.same(diffConfig(a, b).restartRequired, ['cluster']);
});
