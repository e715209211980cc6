// SPDX-License-Identifier: MIT
// The `reflector` bin as users run it: exit codes, --help/--version on every
// command, check-config's one line per problem, usage errors.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { main } from '../../src/cli/main';

const root = path.resolve(__dirname, '../../..');
const bin = path.join(root, 'bin/reflector.js');
const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-cli-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 20000, cwd: dir });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function inProcess(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

t.test('--help and --version everywhere', async (t) => {
  const commands = [[], ['serve'], ['check-config'], ['ctl'], ...['list', 'subscribe', 'unsubscribe', 'add-relay', 'remove-relay', 'start-session', 'stop-session', 'stats'].map((c) => ['ctl', c])];
  for (const c of commands) {
    const h = await inProcess(...c, '--help');
    t.equal(h.code, 0, `${c.join(' ')} --help exits 0`);
    t.match(h.out, /Usage: reflector/, `${c.join(' ')} --help prints usage`);
    const v = await inProcess(...c, '--version');
    t.equal(v.code, 0, `${c.join(' ')} --version exits 0`);
    t.equal(v.out, `${version}\n`, `${c.join(' ')} --version prints the version`);
  }
  t.match((await inProcess('ctl', 'add-relay', '--help')).out, /--source PREFIX/, 'a command help names its options');
  // and through the bin
  t.match(run('--help').out, /Usage: reflector <command>/);
  t.equal(run('ctl', 'stats', '--version').out, `${version}\n`);
});

t.test('check-config: valid file exits 0', async (t) => {
  const r = run('check-config', path.join(root, 'config/reflector.yaml'));
  t.equal(r.code, 0, r.err);
  t.match(r.out, /ok \(1 relays, 1 sessions\)/);
});

t.test('check-config: one line per problem, exit 1', async (t) => {
  fs.writeFileSync(path.join(dir, 'bad.yaml'), [
    'engine:',
    '  interfce: lo',
    '  workers: -1',
    'relays:',
    '  - name: cam',
    '    listen: 127.0.0.1:5000',
    '    sources: [127.0.0.1/32]',
    '    subscribers: [127.0.0.1:6000, 127.0.0.1:99999]',
    '',
  ].join('\n'));
  const r = run('check-config', 'bad.yaml');
  t.equal(r.code, 1);
  t.equal(r.out, '');
  t.same(r.err.trimEnd().split('\n'), [
    'bad.yaml:2:3: engine.interfce: unknown key "interfce", did you mean "interface"? (accepted keys: interface, netns, backend, workers, lateness_limit_ms, drain_ms, cpu_tx, cpu_rx, tx_window_us, tx_priority, relay_tier, kernel_orphan_s, region)',
    'bad.yaml:3:12: engine.workers: -1 is outside 1..63',
    'bad.yaml:8:35: relays[0].subscribers[1]: port 99999 in "127.0.0.1:99999" is outside 1..65535',
  ]);
});

t.test('check-config: unreadable file exits 1 naming it', async (t) => {
  const r = run('check-config', 'missing.yaml');
  t.equal(r.code, 1);
  t.match(r.err, /missing\.yaml: cannot read: ENOENT/);
});

t.test('usage errors exit 2 with the problem named', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[], /Usage: reflector/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['serve'], /serve: --config FILE is required/],
    [['serve', '--config'], /option --config needs a value FILE/],
    [['check-config'], /expected exactly one FILE, got 0/],
    [['check-config', '--bogus', 'x'], /unknown option "--bogus"/],
    [['ctl'], /a command is required/],
    [['ctl', 'dance'], /unknown command "dance"/],
    [['ctl', 'subscribe', 'cam'], /ctl subscribe: expected RELAY ADDR:PORT, got 1 argument/],
    [['ctl', 'subscribe', 'cam', '1.2.3.4'], /is not ADDR:PORT/],
    [['ctl', 'add-relay', 'x', '127.0.0.1:5000'], /at least one --source PREFIX is required/],
    [['ctl', 'add-relay', 'x', '127.0.0.1:5000', '--source', '10.0.0.0/99'], /prefix length "99"/],
    [['ctl', 'start-session', 'm', 'f.ts', '127.0.0.1:7000', '--format', 'avi'], /--format "avi" is not one of mpegts \| rtp \| pcap/],
    [['ctl', 'list', '--source', '1.2.3.4/32'], /option --source does not apply to this command/],
    [['ctl', '--tcp', '127.0.0.1:7400', 'list'], /--tcp needs --token/],
  ];
  for (const [args, re] of cases) {
    const r = await inProcess(...args);
    t.equal(r.code, 2, `${args.join(' ') || '(none)'} exits 2`);
    t.match(r.err, re, `${args.join(' ') || '(none)'}: ${r.err.trim().split('\n')[0]}`);
  }
  const bin = run('frobnicate');
  t.equal(bin.code, 2, 'the bin exits 2 too');
  t.equal(bin.err, 'reflector: unknown command "frobnicate" (commands: serve, check-config, ctl; see reflector --help)\n');
});

t.test('ctl: unreachable server exits 3', async (t) => {
  const r = run('ctl', '--socket', path.join(dir, 'nobody.sock'), 'list');
  t.equal(r.code, 3);
  t.match(r.err, /cannot connect to .*nobody\.sock: connect ENOENT/);
});

t.test('ctl --config takes the socket from the file (relative to its folder)', async (t) => {
  fs.mkdirSync(path.join(dir, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'etc/r.yaml'), 'control:\n  socket: ../run/ctl.sock\n');
  const r = await inProcess('ctl', '--config', path.join(dir, 'etc/r.yaml'), 'list');
  t.equal(r.code, 3);
  t.match(r.err, `cannot connect to ${path.join(dir, 'run/ctl.sock')}`);
});

t.test('serve: an invalid config exits 1 with the problems', async (t) => {
  fs.writeFileSync(path.join(dir, 'bad-serve.yaml'), 'engine:\n  workers: 0\n');
  const r = run('serve', '--config', 'bad-serve.yaml');
  t.equal(r.code, 1);
  t.match(r.err, /bad-serve\.yaml:2:12: engine\.workers: 0 is outside 1\.\.63/);
});
