// SPDX-License-Identifier: MIT
// `reflector ctl capture` through the real server (issue #14): 1,000
// datagrams through a relay at 1:2 while the capture runs; tcpdump -r reads
// exactly the ingress packets and both outputs' packets as rewritten; the
// subscribers lose nothing; reflector_capture_dropped_total is 0. Bad
// input through the CLI: a second capture of the relay while one runs, a
// file that cannot be written, an unknown relay, no bound: exit 1 or 2 with
// the key and the value, and the relay keeps relaying.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { Testbed } from '../helpers/testbed';
import { ControlClient } from '../../src/control/client';
import type { CapturePacket, CaptureRequest, ControlError } from '../../src/control/types';
import { BIN, Peer, ServerProcess, childEnv, ctl, metricValue, scrape, serverUnavailable, sleep, ROOT } from './fixtures/harness';

const why = serverUnavailable({ netns: true });
const COUNT = 1000;

/** ctl in the background: `armed` once it says the engine captures ("capturing NAME to FILE" on stderr). */
function ctlAsync(socket: string, ...args: string[]): { armed: Promise<void>; done: Promise<{ code: number | null; out: string; err: string }> } {
  const c = spawn(process.execPath, [BIN, 'ctl', '--socket', socket, ...args], { env: childEnv() });
  let out = '';
  let err = '';
  let armed!: () => void;
  const a = new Promise<void>((r) => (armed = r));
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    if (/^capturing /m.test(err)) armed();
  });
  const done = new Promise<{ code: number | null; out: string; err: string }>((resolve) => c.on('exit', (code) => {
    armed();
    resolve({ code, out, err });
  }));
  return { armed: a, done };
}

if (why) {
  process.stderr.write(`# SKIP ctl capture: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('ctl capture of a 1:2 relay while 1,000 datagrams pass', { timeout: 120000 }, async (t) => {
    const tb = await Testbed.create(t, { hosts: ['client', 'relay'], links: [['client', 'relay']] });
    const client = tb.addr('client');
    const relayAddr = tb.addr('relay');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-ctlcap-'));
    // RF_KEEP=1 keeps the pcap files for a look after a failure
    t.teardown(() => (process.env.RF_KEEP ? undefined : fs.rmSync(dir, { recursive: true, force: true })));
    const socket = path.join(dir, 'ctl.sock');
    const file = path.join(dir, 'reflector.yaml');
    fs.writeFileSync(file, `engine:
  interface: ${tb.iface('relay').name}
  netns: ${tb.ns('relay')}
  workers: 1
metrics:
  listen: 127.0.0.1:0
control:
  socket: ctl.sock
media_root: ${ROOT}
relays:
  - name: cam
    listen: ${relayAddr}:5000
    sources: [${client}/32]
    subscribers: [${client}:9301, ${client}:9302]
sessions:
  - name: movie
    file: ${path.join(ROOT, 'media/sample.ts')}
    to: ${client}:9400
    loop: true
`);
    const peer = new Peer(tb.spawn('client', [process.execPath, path.join(__dirname, 'fixtures/udp-peer.js'), client], { stdio: ['pipe', 'pipe', 'pipe'] }));
    t.teardown(() => peer.close());
    await peer.ready;
    await peer.call('bind', { ports: [9301, 9302, 9400] });
    const server = new ServerProcess(['serve', '--config', file]);
    t.teardown(() => server.kill('SIGKILL'));
    const port = await server.ready();

    const out = path.join(dir, 'cam.pcap');
    const cap = ctlAsync(socket, 'capture', 'cam', '--out', out, '--count', String(3 * COUNT), '--seconds', '30');
    await cap.armed;
    const second = ctl(socket, 'capture', 'cam', '--out', path.join(dir, 'second.pcap'), '--count', '1');
    t.equal(second.code, 1, 'a second capture of the relay: exit 1');
    t.match(second.err, /ERR_CAPTURE: .*a capture of relay "cam" is running/, second.err.trim());
    t.notOk(fs.existsSync(path.join(dir, 'second.pcap')), 'the refused capture left no file');
    // the same over the API: the gRPC status and the ERR_* code in its details
    const api = await ControlClient.connect({ socket });
    t.teardown(() => api.close());
    const refused = async (req: Partial<CaptureRequest>): Promise<{ grpc?: number; code: string; message: string }> => {
      const c = api.capture({ name: 'cam', count: 1, seconds: 0, subscriber: '', ...req });
      const e = (await c.ended.then(() => null, (x: unknown) => x)) as (ControlError & { grpcCode?: number }) | null;
      return e ? { grpc: e.grpcCode, code: e.controlCode, message: e.message } : { code: 'none', message: 'it ran' };
    };
    t.match(await refused({}), { grpc: grpc.status.FAILED_PRECONDITION, code: 'ERR_CAPTURE', message: /a capture of relay "cam" is running/ }, 'Capture while one runs: FAILED_PRECONDITION, ERR_CAPTURE');
    await peer.call('send', { to: `${relayAddr}:5000`, count: COUNT, pps: 1000, first: 0 });
    const r = await cap.done;
    if (r.code !== 0) t.comment(server.stderrText.slice(-15).join("\n"));
    t.equal(r.code, 0, `ctl capture exits 0: ${r.err.trim()}`);
    t.match(r.out, new RegExp(`captured ${3 * COUNT} packets to ${out.replace(/[.]/g, '\\.')}\\n`), r.out.trim());
    await sleep(300);
    const rep = await peer.report();
    t.same([rep[9301].length, rep[9302].length], [COUNT, COUNT], 'both subscribers got every datagram during the capture');
    const lines = execFileSync('tcpdump', ['-r', out, '-n'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n');
    const n = (re: RegExp): number => lines.filter((l) => re.test(l)).length;
    const e = (s: string): string => s.replace(/\./g, '\\.');
    t.equal(lines.length, 3 * COUNT, 'tcpdump -r reads 3,000 packets');
    t.same([
      n(new RegExp(`${e(client)}\\.\\d+ > ${e(relayAddr)}\\.5000: UDP`)),
      n(new RegExp(`${e(relayAddr)}\\.5000 > ${e(client)}\\.9301: UDP`)),
      n(new RegExp(`${e(relayAddr)}\\.5000 > ${e(client)}\\.9302: UDP`)),
    ], [COUNT, COUNT, COUNT], 'the ingress packets and each output\'s, as rewritten');
    const m = (await scrape(port)).body;
    t.equal(metricValue(m, 'reflector_capture_dropped_total'), 0, 'reflector_capture_dropped_total 0');

    const only = path.join(dir, 'only.pcap');
    t.match(await refused({ name: 'nope' }), { grpc: grpc.status.NOT_FOUND, code: 'ERR_NOT_FOUND', message: /no relay or session named "nope"/ }, 'an unknown name: NOT_FOUND, ERR_NOT_FOUND');
    t.match(await refused({ subscriber: '198.18.9.9:1' }), { grpc: grpc.status.INVALID_ARGUMENT, code: 'ERR_INVALID_ARG', message: /subscriber: 198\.18\.9\.9:1 is not a subscriber of relay "cam"/ }, 'not a subscriber: INVALID_ARGUMENT');
    t.match(await refused({ subscriber: 'x:y' }), { grpc: grpc.status.INVALID_ARGUMENT, code: 'ERR_INVALID_ARG', message: /subscriber/ }, 'a malformed subscriber: INVALID_ARGUMENT');
    t.match(await refused({ count: 0 }), { grpc: grpc.status.INVALID_ARGUMENT, code: 'ERR_INVALID_ARG', message: /give count or seconds/ }, 'no bound: INVALID_ARGUMENT');
    // a library client: the packets as they come, then the end message
    const lib = api.capture({ name: 'cam', count: 10, seconds: 10, subscriber: `${client}:9301` });
    const got: CapturePacket[] = [];
    lib.on('packet', (p) => got.push(p));
    await lib.armed;
    await peer.call('send', { to: `${relayAddr}:5000`, count: 10, pps: 1000, first: 20000 });
    t.same(await lib.ended, { packets: 10, dropped: 0, cancelled: false }, 'ControlClient.capture: 10 packets, the end message');
    t.ok(got.length === 10 && got.every((p) => p.direction === 'output' && p.output === `${client}:9301` && p.frame.length === p.wireLength && p.tsNs > 1_700_000_000n * 1_000_000_000n),
      'each an output packet of that subscriber with its ns timestamp');

    const sub = ctlAsync(socket, 'capture', 'cam', '--out', only, '--seconds', '3', '--subscriber', `${client}:9302`);
    await sub.armed;
    await peer.call('send', { to: `${relayAddr}:5000`, count: 100, pps: 1000, first: COUNT });
    t.equal((await sub.done).code, 0, '--subscriber capture exits 0 after --seconds');
    const ol = execFileSync('tcpdump', ['-r', only, '-n'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n');
    t.equal(ol.length, 100, `--subscriber: 100 packets, that output's only (${ol.slice(0, 2).join(' | ')})`);
    t.ok(ol.every((l) => l.includes(`> ${client}.9302:`)), 'all to the chosen subscriber');

    // a session: the frames the engine sends, checksums complete
    const mv = path.join(dir, 'movie.pcap');
    const ms = ctl(socket, 'capture', 'movie', '--out', mv, '--count', '50', '--seconds', '10');
    t.equal(ms.code, 0, `ctl capture of a session exits 0: ${ms.err.trim()}`);
    t.match(ms.out, /captured 50 packets/);
    const mvl = execFileSync('tcpdump', ['-r', mv, '-n', '-vv'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    t.equal((mvl.match(new RegExp(`> ${e(client)}\\.9400: \\[udp sum ok\\] UDP, length 1316`, 'g')) ?? []).length, 50, 'the session\'s 50 frames to its destination, UDP checksums complete (tcpdump: udp sum ok)');
    const both = ctl(socket, 'capture', 'movie', '--out', mv, '--count', '1', '--subscriber', `${client}:9400`);
    t.equal(both.code, 1, '--subscriber on a session: refused');
    t.match(both.err, /--subscriber applies to relays/);

    const bad = ctl(socket, 'capture', 'cam', '--out', '/nonexistent-dir/x.pcap', '--count', '1');
    t.equal(bad.code, 1, 'unwritable file: exit 1');
    t.match(bad.err, /cannot write the capture file \/nonexistent-dir\/x\.pcap/, bad.err.trim());
    const early = ctl(path.join(dir, 'no-server.sock'), 'capture', 'cam', '--out', '/nonexistent-dir/x.pcap', '--count', '1');
    t.equal(early.code, 1, 'unwritable file: refused before ctl connects (exit 1, not 3 for an unreachable server)');
    t.match(early.err, /--out: cannot write the capture file/);
    const none = ctl(socket, 'capture', 'nope', '--out', path.join(dir, 'n.pcap'), '--count', '1');
    t.equal(none.code, 1, 'unknown relay: exit 1');
    t.match(none.err, /ERR_NOT_FOUND: .*no relay or session named "nope"/);
    t.notOk(fs.existsSync(path.join(dir, 'n.pcap')), 'no file left for a capture that never started');
    const unbounded = ctl(socket, 'capture', 'cam', '--out', path.join(dir, 'u.pcap'));
    t.equal(unbounded.code, 2, 'no bound: usage error');
    t.match(unbounded.err, /give --count N or --seconds S/);
    await peer.call('clear', {});
    await peer.call('send', { to: `${relayAddr}:5000`, count: 100, pps: 1000, first: 5000 });
    await sleep(300);
    t.same((await peer.report())[9301].length, 100, 'the relay relays on after every refused capture');
  });
}
