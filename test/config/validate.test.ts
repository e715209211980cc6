// SPDX-License-Identifier: MIT
// Every kind of config mistake gives one problem with the exact line:column
// of the offending node, its key path, and a message that says what is wrong.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig, formatProblem } from '../../src/config/validate';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-cfg-'));
fs.writeFileSync(path.join(dir, 'clip.ts'), 'x');
const file = path.join(dir, 'reflector.yaml');
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const RELAY = `relays:
  - name: cam
    listen: 127.0.0.1:5000
    sources: [127.0.0.1/32]
    subscribers: [127.0.0.1:6000, 127.0.0.1:6001]
`;

interface Case {
  name: string;
  yaml: string;
  line: number;
  column: number;
  path: string;
  message: RegExp;
}

const cases: Case[] = [
  {
    name: 'relay tier not a tier',
    yaml: 'engine:\n  relay_tier: kern\n',
    line: 2, column: 15, path: 'engine.relay_tier', message: /"kern" is not one of kernel \| user/,
  },
  {
    name: 'watchdog of 0 seconds',
    yaml: 'engine:\n  kernel_orphan_s: 0\n',
    line: 2, column: 20, path: 'engine.kernel_orphan_s', message: /0 is outside 1\.\.86400/,
  },
  {
    name: 'unknown key with did-you-mean',
    yaml: 'engine:\n  interfce: lo\n',
    line: 2, column: 3, path: 'engine.interfce', message: /unknown key "interfce", did you mean "interface"\?/,
  },
  {
    name: 'unknown top-level key',
    yaml: 'relay:\n  - name: x\n',
    line: 1, column: 1, path: 'relay', message: /unknown key "relay", did you mean "relays"\?/,
  },
  {
    name: 'wrong type (string for an integer)',
    yaml: 'engine:\n  workers: two\n',
    line: 2, column: 12, path: 'engine.workers', message: /expected an integer in 1\.\.63, got string "two"/,
  },
  {
    name: 'negative workers',
    yaml: 'engine:\n  workers: -3\n',
    line: 2, column: 12, path: 'engine.workers', message: /-3 is outside 1\.\.63/,
  },
  {
    name: 'bad metrics.listen',
    yaml: 'metrics:\n  listen: localhost:9464\n',
    line: 2, column: 11, path: 'metrics.listen', message: /"localhost" in "localhost:9464" is not an IPv4 or IPv6 address/,
  },
  {
    name: 'bad address in a subscriber list',
    yaml: RELAY.replace('127.0.0.1:6001', '127.0.0.300:6001'),
    line: 5, column: 35, path: 'relays[0].subscribers[1]', message: /"127\.0\.0\.300" .* is not an IPv4 or IPv6 address/,
  },
  {
    name: 'bad port',
    yaml: RELAY.replace('127.0.0.1:5000', '127.0.0.1:70000'),
    line: 3, column: 13, path: 'relays[0].listen', message: /port 70000 in "127\.0\.0\.1:70000" is outside 1\.\.65535/,
  },
  {
    name: 'bad prefix',
    yaml: RELAY.replace('127.0.0.1/32', '127.0.0.1/40'),
    line: 4, column: 15, path: 'relays[0].sources[0]', message: /prefix length "40" in "127\.0\.0\.1\/40" is outside 0\.\.32/,
  },
  {
    name: 'missing sources',
    yaml: 'relays:\n  - name: cam\n    listen: 127.0.0.1:5000\n',
    line: 2, column: 5, path: 'relays[0].sources', message: /missing required key "sources"/,
  },
  {
    name: 'empty sources',
    yaml: RELAY.replace('[127.0.0.1/32]', '[]'),
    line: 4, column: 14, path: 'relays[0].sources', message: /must list at least 1/,
  },
  {
    name: 'duplicate relay name',
    yaml: RELAY + '  - name: cam\n    listen: 127.0.0.1:5001\n    sources: [127.0.0.1/32]\n',
    line: 6, column: 11, path: 'relays[1].name', message: /duplicate relay name "cam" \(first used by relays\[0\]\)/,
  },
  {
    name: 'relay listen duplicated',
    yaml: RELAY + '  - name: cam2\n    listen: 127.0.0.1:5000\n    sources: [127.0.0.1/32]\n',
    line: 7, column: 13, path: 'relays[1].listen', message: /127\.0\.0\.1:5000 is already the listen address of relays\[0\] \("cam"\)/,
  },
  {
    name: 'duplicate subscriber',
    yaml: RELAY.replace('127.0.0.1:6001', '127.0.0.1:6000'),
    line: 5, column: 35, path: 'relays[0].subscribers[1]', message: /duplicate subscriber 127\.0\.0\.1:6000/,
  },
  {
    name: 'subscriber equal to listen (loop)',
    yaml: RELAY.replace('127.0.0.1:6001', '127.0.0.1:5000'),
    line: 5, column: 35, path: 'relays[0].subscribers[1]', message: /own listen address \(a loop\)/,
  },
  {
    name: 'session file missing',
    yaml: 'sessions:\n  - name: m\n    file: nope.ts\n    to: 127.0.0.1:7000\n',
    line: 3, column: 11, path: 'sessions[0].file', message: /media file ".*nope\.ts" does not exist/,
  },
  {
    name: 'bad format with did-you-mean',
    yaml: 'sessions:\n  - name: m\n    file: clip.ts\n    to: 127.0.0.1:7000\n    format: mpgts\n',
    line: 5, column: 13, path: 'sessions[0].format', message: /"mpgts" is not one of mpegts \| rtp \| pcap, did you mean "mpegts"\?/,
  },
  {
    name: 'loop not a boolean',
    yaml: 'sessions:\n  - name: m\n    file: clip.ts\n    to: 127.0.0.1:7000\n    loop: yes\n',
    line: 5, column: 11, path: 'sessions[0].loop', message: /expected true or false, got string "yes"/,
  },
  {
    name: 'not a power of two',
    yaml: 'engine:\n  region:\n    slot_size: 3000\n',
    line: 3, column: 16, path: 'engine.region.slot_size', message: /3000 is not a power of two/,
  },
  {
    name: 'list where a map is expected',
    yaml: 'engine: [lo]\n',
    line: 1, column: 9, path: 'engine', message: /expected a map of interface, .*got a list/,
  },
  {
    name: 'tcp without token',
    yaml: 'control:\n  tcp: 127.0.0.1:7400\n',
    line: 2, column: 8, path: 'control.tcp', message: /needs control\.token/,
  },
  {
    name: 'unquoted IPv6 endpoint is a YAML list',
    yaml: 'sessions:\n  - name: m\n    file: clip.ts\n    to: [::1]\n',
    line: 4, column: 9, path: 'sessions[0].to', message: /expected an "ADDR:PORT" string, got a list \(quote IPv6/,
  },
  {
    name: 'YAML syntax error',
    yaml: 'engine:\n  interface: lo\n workers: 2\n',
    line: 3, column: 1, path: '(yaml)', message: /must start at the same column/,
  },
  {
    name: 'duplicate YAML key',
    yaml: 'engine:\n  workers: 2\n  workers: 3\n',
    line: 3, column: 3, path: '(yaml)', message: /unique/,
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const r = parseConfig(c.yaml, file);
    t.equal(r.config, null, 'refused');
    t.equal(r.problems.length, 1, `exactly one problem: ${r.problems.map(formatProblem).join(' | ')}`);
    const p = r.problems[0];
    t.same({ line: p.line, column: p.column, path: p.path }, { line: c.line, column: c.column, path: c.path }, formatProblem(p));
    t.match(p.message, c.message);
    t.ok(formatProblem(p).startsWith(`${file}:${c.line}:${c.column}: ${c.path}: `), 'file:line:column: path: message');
  });
}

t.test('several problems are all reported, in file order', async (t) => {
  const r = parseConfig('engine:\n  workers: 0\n  interfce: x\nmetrics:\n  listen: nope\n', file);
  t.same(r.problems.map((p) => p.path), ['engine.workers', 'engine.interfce', 'metrics.listen']);
});

t.test('an empty file is valid and takes every default', async (t) => {
  const r = parseConfig('', file);
  t.ok(r.config);
  t.equal(r.config!.engine.interface, 'lo');
  t.equal(r.config!.engine.workers, 2);
  t.same(r.config!.metrics.listen, { family: 4, address: '127.0.0.1', port: 9464 });
  t.equal(r.config!.control.socket, '/run/reflector/control.sock');
  t.equal(r.config!.engine.drainMs, 500);
  t.equal(r.config!.engine.cpuTx, -1);
  t.equal(r.config!.engine.txPriority, 0);
  t.same(r.config!.relays, []);
});

t.test('the TX thread\'s scheduling keys are read and bounded', async (t) => {
  const ok = parseConfig('engine:\n  cpu_tx: 0\n  cpu_rx: 1\n  tx_priority: 50\n', file);
  t.ok(ok.config, ok.problems.map(formatProblem).join('\n'));
  t.same([ok.config!.engine.cpuTx, ok.config!.engine.cpuRx, ok.config!.engine.txPriority], [0, 1, 50]);
  const bad = parseConfig('engine:\n  tx_priority: 100\n', file);
  t.equal(bad.config, null);
  t.same(bad.problems.map((p) => p.path), ['engine.tx_priority']);
});

t.test('relative paths are relative to the config file folder', async (t) => {
  const r = parseConfig('control:\n  socket: run/ctl.sock\nsessions:\n  - name: m\n    file: clip.ts\n    to: "[::1]:7000"\n', file);
  t.ok(r.config, r.problems.map(formatProblem).join('\n'));
  t.equal(r.config!.control.socket, path.join(dir, 'run/ctl.sock'));
  t.equal(r.config!.sessions[0].file, path.join(dir, 'clip.ts'));
  t.same(r.config!.sessions[0].to, { family: 6, address: '::1', port: 7000 });
  t.equal(r.config!.sessions[0].format, 'mpegts', 'default format');
  t.equal(r.config!.sessions[0].loop, false, 'default loop');
});

t.test('null turns optional listeners off; port 0 is allowed for listeners', async (t) => {
  const r = parseConfig('metrics:\n  listen: null\ncontrol:\n  socket: null\n  tcp: 127.0.0.1:0\n  token: s3cret\n', file);
  t.ok(r.config, r.problems.map(formatProblem).join('\n'));
  t.equal(r.config!.metrics.listen, null);
  t.equal(r.config!.control.socket, null);
  t.equal(r.config!.control.tcp?.port, 0);
});
