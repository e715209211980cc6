// SPDX-License-Identifier: MIT
// The server starts and relays with no `nft` anywhere on PATH (issue #10):
// relayed traffic is kept from the kernel stack by the engine's own tc
// program, installed through netlink and bpf(), not by a binary. PATH is a
// folder of links to every program of /usr/sbin but nft, then /usr/bin; the
// check that nft is really unreachable is part of the test. The relay
// delivers every datagram, exactly once, and the origin gets no ICMP port
// unreachable.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ServerProcess, serverUnavailable, sleep } from './fixtures/harness';
import { relayBed } from './fixtures/relay-bed';

const why = serverUnavailable({ netns: true });
if (why) {
  process.stderr.write(`# SKIP no-nft server: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('serve with no nft on PATH: starts, relays every datagram once, no ICMP unreachable', { timeout: 90000 }, async (t) => {
    const { tb, peer, relay: relayAddr, dir, config } = await relayBed(t, [6000]);
    const bin = path.join(dir, 'sbin');
    fs.mkdirSync(bin);
    for (const f of fs.readdirSync('/usr/sbin')) if (f !== 'nft') fs.symlinkSync(path.join('/usr/sbin', f), path.join(bin, f));
    const PATH = `${bin}:/usr/local/bin:/usr/bin`;
    const probe = spawnSync('sh', ['-c', 'command -v nft || echo none'], { env: { PATH }, encoding: 'utf8' });
    t.equal(probe.stdout.trim(), 'none', 'nft is not on the PATH the server gets');

    const file = config('reflector', [6000]);

    const saved = process.env.PATH;
    process.env.PATH = PATH;
    let server: ServerProcess;
    try {
      server = new ServerProcess(['serve', '--config', file]);
    } finally {
      process.env.PATH = saved;
    }
    t.teardown(() => server.kill('SIGKILL'));
    await server.ready();
    const tier = server.logs.find((l) => l.msg.startsWith('relay tier'));
    t.equal(tier?.tier, 'kernel', `the kernel tier relays (${tier?.msg ?? 'no tier line logged'})`);

    const icmp = async (): Promise<number> => {
      const lines = (await tb.exec('client', ['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Icmp:'));
      return Number(lines[1].split(/\s+/)[lines[0].split(/\s+/).indexOf('InDestUnreachs')]);
    };
    const icmp0 = await icmp();
    await peer.call('send', { to: `${relayAddr}:5000`, count: 300, pps: 2000, first: 0 });
    await sleep(500);
    const got = (await peer.report())[6000];
    t.same(got, Array.from({ length: 300 }, (_, i) => i), 'all 300 datagrams, in order, once');
    t.equal(await icmp(), icmp0, 'no ICMP unreachable reached the origin');
    const stop = await server.kill('SIGTERM');
    t.equal(stop.code, 0, 'SIGTERM: exit 0');
    const left = (await tb.exec('relay', ['tc', 'filter', 'show', 'dev', tb.iface('relay').name, 'ingress'])).stdout;
    t.equal(left.trim(), '', 'SIGTERM removed the tc program');
  });
}
