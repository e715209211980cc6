// SPDX-License-Identifier: MIT
// Capture (issue #14): 1,000 datagrams through a relay at 1:2 while a
// capture runs; tcpdump -r reads exactly the 1,000 ingress packets and each
// output's 1,000 as rewritten (addresses, ports, MACs), in a nanosecond
// pcap; the relay's own counters and both subscribers show no loss. Then
// the bad input of a capture: a second capture, an unwritable file, an
// unknown subscriber, no bound.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cannotRun, endpoint, makeBed, send, startPorts, until } from './bed';
import { hasTcpdump } from './mcast';

const COUNT = 1000;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-cap-'));
// RF_KEEP=1 keeps the pcap files for a look after a failure
t.teardown(() => (process.env.RF_KEEP ? undefined : fs.rmSync(dir, { recursive: true, force: true })));

if (!cannotRun(t)) {
  t.test('1,000 datagrams through a 1:2 relay while a capture runs: the pcap holds exactly the ingress and both outputs as rewritten', async (t) => {
    const bed = await makeBed(t, {}, 2);
    const { tb, relays } = bed;
    const listen = endpoint(tb.addr('relay'), 5000);
    const s1 = endpoint(tb.addr('s1'), 9301);
    const s2 = endpoint(tb.addr('s2'), 9302);
    await relays.addRelay({ name: 'cam', listen, sources: ['198.18.0.0/15'], subscribers: [s1, s2] });
    const file = path.join(dir, 'cam.pcap');
    const rx = await Promise.all([startPorts(bed, 's1', tb.addr('s1'), [9301], COUNT, 20_000), startPorts(bed, 's2', tb.addr('s2'), [9302], COUNT, 20_000)]);
    const cap = relays.captureToFile('cam', file, { count: 3 * COUNT, seconds: 30 });
    // a second capture while one runs: refused, the first goes on
    await until(() => fs.existsSync(file));
    await new Promise((r) => setTimeout(r, 50));
    await t.rejects(relays.captureToFile('cam', path.join(dir, 'second.pcap'), { count: 1 }), { code: 'ERR_CAPTURE', message: /a capture of relay "cam" is running/ });
    t.notOk(fs.existsSync(path.join(dir, 'second.pcap')), 'the refused capture created no file');
    const sent = await send(bed, endpoint(tb.addr('origin'), 4444), listen, COUNT, 1000, 400);
    t.equal(sent.sent, COUNT);
    const sum = await cap;
    t.same({ packets: sum.packets, dropped: sum.dropped }, { packets: 3 * COUNT, dropped: 0 }, 'the capture took 3,000 packets, none dropped');
    const res = await Promise.all(rx.map((r) => r.result));
    t.same([res[0].ports['9301'].received, res[1].ports['9302'].received], [COUNT, COUNT], 'both subscribers got every datagram');
    t.same([res[0].ports['9301'].missing + res[0].ports['9301'].dups, res[1].ports['9302'].missing + res[1].ports['9302'].dups], [0, 0], 'no loss, no duplicate');
    t.equal(relays.relayStats('cam')?.packets, BigInt(COUNT), 'the relay matched 1,000');
    t.equal(relays.outputStats('cam', s1)?.packets, BigInt(COUNT), 'output s1 sent 1,000 (its drops: 0)');
    t.equal(relays.outputStats('cam', s2)?.drops, 0n, 'output s2 dropped none');
    // the kernel tier hands a captured relay to the user tier (where the RX
    // thread copies its frames) and takes it back when the capture ends
    const { engine } = bed;
    const kBefore = engine.region.kernelCounter('relay_out');
    const rx2 = await Promise.all([startPorts(bed, 's1', tb.addr('s1'), [9301], 100, 20_000), startPorts(bed, 's2', tb.addr('s2'), [9302], 100, 20_000)]);
    await send(bed, endpoint(tb.addr('origin'), 4444), listen, 100, 1000, 400);
    const res2 = await Promise.all(rx2.map((r) => r.result));
    t.same([res2[0].ports['9301'].received, res2[1].ports['9302'].received], [100, 100], 'after the capture: both subscribers get every datagram');
    t.equal(engine.region.kernelCounter('relay_out') - kBefore, 200n, 'sent by the kernel tier again');
    const head = fs.readFileSync(file).subarray(0, 4).readUInt32LE(0);
    t.equal(head, 0xa1b23c4d, 'a nanosecond pcap (magic 0xa1b23c4d)');
    if (!hasTcpdump()) {
      t.comment('tcpdump not installed: the file is not read back');
      return;
    }
    const lines = execFileSync('tcpdump', ['-r', file, '-n', '-e', '--nano'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n');
    t.equal(lines.length, 3 * COUNT, 'tcpdump -r reads 3,000 packets');
    const esc = (s: string): string => s.replace(/[.[\]]/g, (c) => `\\${c}`);
    const dot = (e: string): string => e.replace(/:(\d+)$/, '.$1');
    const ing = new RegExp(`${esc(tb.mac('origin'))} > ${esc(tb.mac('relay'))}.* ${esc(tb.addr('origin'))}\\.4444 > ${esc(dot(listen))}: UDP, length 400`);
    const o1 = new RegExp(`${esc(tb.mac('relay'))} > ${esc(tb.mac('s1'))}.* ${esc(dot(listen))} > ${esc(dot(s1))}: UDP, length 400`);
    const o2 = new RegExp(`${esc(tb.mac('relay'))} > ${esc(tb.mac('s2'))}.* ${esc(dot(listen))} > ${esc(dot(s2))}: UDP, length 400`);
    t.same([lines.filter((l) => ing.test(l)).length, lines.filter((l) => o1.test(l)).length, lines.filter((l) => o2.test(l)).length], [COUNT, COUNT, COUNT],
      '1,000 ingress packets origin -> listen, 1,000 listen -> s1, 1,000 listen -> s2 (MACs, addresses and ports as rewritten)');
    t.match(lines[0], /^\d\d:\d\d:\d\d\.\d{9} /, 'nanosecond timestamps');
    // the checksums the engine wrote are the ones tcpdump checks
    const v = execFileSync('tcpdump', ['-r', file, '-n', '-v', '-c', '3'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    t.notMatch(v, /bad (udp )?cksum/i, 'no bad checksum in the first packets');
  });

  t.test('capture bad input: unwritable file, unknown subscriber, no bound, unknown relay', async (t) => {
    const bed = await makeBed(t, {}, 1);
    const { tb, relays } = bed;
    await relays.addRelay({ name: 'cam', listen: endpoint(tb.addr('relay'), 5000), sources: ['198.18.0.0/15'], subscribers: [endpoint(tb.addr('s1'), 9301)] });
    await t.rejects(relays.captureToFile('cam', '/nonexistent-dir/x.pcap', { count: 1 }),
      { code: 'ERR_CAPTURE', message: /capture of relay "cam"\.out: cannot write the capture file \/nonexistent-dir\/x\.pcap: ENOENT/ });
    const sub = path.join(dir, 'sub.pcap');
    await t.rejects(relays.captureToFile('cam', sub, { count: 1, subscriber: '198.18.9.9:1' }),
      { code: 'ERR_INVALID_ARG', message: /capture of relay "cam"\.subscriber: 198\.18\.9\.9:1 is not a subscriber of relay "cam"/ });
    t.notOk(fs.existsSync(sub), 'no empty file left behind');
    await t.rejects(relays.captureToFile('cam', sub, {}), { code: 'ERR_INVALID_ARG', message: /give count or seconds/ });
    await t.rejects(relays.captureToFile('cam', sub, { count: 0 }), { code: 'ERR_INVALID_ARG', message: /count: 0 is not an integer >= 1/ });
    await t.rejects(relays.captureToFile('nope', sub, { count: 1 }), { code: 'ERR_INVALID_ARG', message: /relay "nope" does not exist/ });
    // after all that, a capture works: one output only, bounded by time
    const only = await relays.captureToFile('cam', sub, { seconds: 0.3, subscriber: endpoint(tb.addr('s1'), 9301) });
    t.same(only, { packets: 0, dropped: 0, file: sub }, 'an idle relay: an empty capture, bounded by seconds');
  });
}
