// SPDX-License-Identifier: MIT
// A relay with two nodes fails over to the second when the first is killed
// (kill -9), while an origin streams to it; the gap is measured and printed.
// - unicast listen: the standby takes the address (adds it to its interface,
//   announces it with a gratuitous ARP): the origin's neighbour entry moves
//   to the standby's MAC, and the dead node's copy of the address expires;
// - multicast listen: the standby simply starts relaying (both nodes' relays
//   join the group on their interface, issue #14; the engine of the node
//   that owns the relay takes its packets).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { etcdUnavailable } from '../helpers/etcd';
import { serverUnavailable, sleep } from '../server/fixtures/harness';
import { ClusterBed, logs, longestGap, report } from './bed';

const why = etcdUnavailable() ?? serverUnavailable({ netns: true });
const LEASE_S = 3;
const RATE = 500;

if (why) {
  process.stderr.write(`# SKIP cluster failover tests: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('unicast listen: the standby takes the address', { timeout: 90000 }, async (t) => {
    const bed = await ClusterBed.create(t, { nodes: ['a', 'b'], leaseS: LEASE_S });
    const sub = bed.addr('sub');
    const vip = '198.18.0.100';
    const sink = await bed.peer('sub', path.join(__dirname, 'fixtures/seq-sink.js'));
    await sink.call('bind', { ports: [6001] });
    const origin = await bed.peer('sub', path.join(__dirname, '../server/fixtures/udp-peer.js'));
    await Promise.all(['a', 'b'].map((n) => bed.start(n)));
    await bed.apply(`relays:
  - { name: cam, node: [a, b], listen: "${vip}:5000", sources: [${sub}/32], subscribers: ["${sub}:6001"] }
`);
    const a = bed.servers.get('a')!;
    const b = bed.servers.get('b')!;
    await a.waitLog((l) => l.msg === 'relay added', 10000);
    const has = async (host: string): Promise<boolean> => (await bed.tb.exec(host, ['ip', '-j', 'addr', 'show', 'dev', 'veth0'])).stdout.includes(`"${vip}"`);
    t.ok(await has('a'), 'a holds the address');
    t.notOk(await has('b'), 'b, the standby, does not');
    // the announcement on the wire: an ARP request for the address from itself, from b's MAC
    // tcpdump (Debian package tcpdump, scripts/test-deps.sh) shows the announcement; without it that check skips, saying so
    const noTcpdump = spawnSync('tcpdump', ['--version']).error ? 'tcpdump is not installed (Debian package tcpdump)' : null;
    const dump = noTcpdump ? null : bed.tb.spawn('sub', ['tcpdump', '-i', 'veth0', '-c', '1', '-nn', '-e', '-l', 'arp', 'and', 'ether', 'src', bed.tb.mac('b')]);
    let dumped = '';
    dump?.stdout!.on('data', (d: Buffer) => (dumped += d.toString()));
    const dumpDone = dump ? new Promise((r) => dump.on('exit', r)) : Promise.resolve();
    const count = RATE * (LEASE_S + 7);
    const sending = origin.call('send', { to: `${vip}:5000`, count, pps: RATE, first: 0 });
    await sleep(1500);
    const killedAt = Number(process.hrtime.bigint()) / 1e6;
    await a.kill('SIGKILL');
    await b.waitLog((l) => l.msg === 'cluster address taken over', (LEASE_S + 3) * 1000);
    t.ok(await has('b'), 'b took the address');
    await Promise.race([dumpDone, sleep(3000)]);
    dump?.kill();
    if (noTcpdump) t.comment(`SKIP the gratuitous ARP on the wire: ${noTcpdump}`);
    else t.match(dumped, new RegExp(`${bed.tb.mac('b')} > ff:ff:ff:ff:ff:ff, ethertype ARP.*Request who-has ${vip.replace(/\./g, '\\.')} tell ${vip.replace(/\./g, '\\.')}`), `gratuitous ARP on the wire: ${dumped.trim()}`);
    await sending;
    await sleep(300);
    const list = (await report(sink))['6001'];
    const g = longestGap(list);
    t.comment(`unicast failover: ${(g.ms / 1000).toFixed(2)} s without packets (lease_s ${LEASE_S}), packets ${g.before} -> ${g.after}`);
    process.stdout.write(`# unicast relay failover gap: ${g.ms.toFixed(0)} ms (lease_s ${LEASE_S})\n`);
    t.ok(g.at >= killedAt - 100, 'the gap is the kill');
    t.ok(g.ms <= (LEASE_S + 2) * 1000, `gap ${(g.ms / 1000).toFixed(2)} s <= lease_s + 2 s`);
    const seqs = list.map((x) => x[0]);
    t.equal(new Set(seqs).size, seqs.length, 'nothing relayed twice');
    t.ok(list.filter((x) => x[1] > killedAt).length > RATE * 2, `relaying again after the takeover (${list.filter((x) => x[1] > killedAt).length} packets)`);
    const neigh = (await bed.tb.exec('sub', ['ip', '-j', 'neigh', 'show', vip])).stdout;
    t.match(neigh, new RegExp(bed.tb.mac('b')), `the origin's neighbour entry for ${vip} is b's MAC (gratuitous ARP)`);
    t.notOk(await has('a'), 'the dead node\'s copy of the address expired by itself');
    t.equal(logs(b, 'relay added').length, 1, 'b relays');
  });

  t.test('multicast listen: the standby starts relaying', { timeout: 90000 }, async (t) => {
    const bed = await ClusterBed.create(t, { nodes: ['a', 'b'], leaseS: LEASE_S });
    const sub = bed.addr('sub');
    const group = '239.1.1.1';
    await Promise.all(['a', 'b'].map((n) => bed.start(n)));
    const applied = await bed.ctl('apply', writeDesired(bed, `relays:
  - { name: mc, node: [a, b], listen: "${group}:5000", sources: [${sub}/32], subscribers: ["${sub}:6001"] }
`));
    const a = bed.servers.get('a')!;
    await a.waitLog((l) => l.msg === 'relay added' || l.msg === 'reload step failed', 10000).catch(() => undefined);
    const joined = applied.code === 0 && (await bed.tb.exec('a', ['ip', 'maddr', 'show', 'dev', 'veth0'])).stdout.includes(group);
    // the active node joined the group on its interface (IGMPv3 from a kernel socket the addon opened)
    t.ok(joined, `node a joined ${group} (ip maddr)${applied.code !== 0 ? ` (ctl apply: ${applied.err.trim()})` : ''}`);
    if (!joined) return;
    await bed.tb.exec('sub', ['ip', 'route', 'add', '224.0.0.0/4', 'dev', 'veth0']);
    const sink = await bed.peer('sub', path.join(__dirname, 'fixtures/seq-sink.js'));
    await sink.call('bind', { ports: [6001] });
    const origin = await bed.peer('sub', path.join(__dirname, '../server/fixtures/udp-peer.js'));
    const count = RATE * (LEASE_S + 7);
    const sending = origin.call('send', { to: `${group}:5000`, count, pps: RATE, first: 0 });
    await sleep(1500);
    const killedAt = Number(process.hrtime.bigint()) / 1e6;
    await a.kill('SIGKILL');
    await sending;
    await sleep(300);
    const list = (await report(sink))['6001'];
    const g = longestGap(list);
    process.stdout.write(`# multicast relay failover gap: ${g.ms.toFixed(0)} ms (lease_s ${LEASE_S})\n`);
    t.ok(g.at >= killedAt - 100, 'the gap is the kill');
    t.ok(g.ms <= (LEASE_S + 2) * 1000, `gap ${(g.ms / 1000).toFixed(2)} s <= lease_s + 2 s`);
    t.ok(list.filter((x) => x[1] > killedAt).length > RATE * 2, 'b relays the group');
    const seqs = list.map((x) => x[0]);
    t.equal(new Set(seqs).size, seqs.length, 'no datagram twice: the dead node stopped before b started');
  });
}

function writeDesired(bed: ClusterBed, text: string): string {
  const file = path.join(bed.dir, 'mc.yaml');
  fs.writeFileSync(file, text);
  return file;
}
