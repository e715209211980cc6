// SPDX-License-Identifier: MIT
// `npm run bench -- cluster [--runs N] [--lease-s S] [--readme]`: a cluster
// of two real nodes and a real etcd on a namespace testbed (test/cluster/
// bed.ts), measured at a UDP subscriber:
//
// 1. time from a change to the first relayed packet, while an origin already
//    sends to the new relay's address:
//    - `reflector ctl --etcd URL apply FILE` (a process, the transaction, the
//      nodes' watch, the claim, the apply);
//    - the apply transaction alone, from this process (no CLI start-up);
//    - baseline: `reflector ctl --socket PATH add-relay` on the node itself
//      (a process and the node's gRPC control API, which in cluster mode
//      writes the relay through to etcd: the same watch and claim, one
//      entry instead of a file's transaction). Before issue #13 this was the
//      local control API with no etcd at all: results from before and after
//      are not comparable.
// 2. failover gaps: the longest silence at the subscriber of a relay (unicast
//    listen address taken over) and of a session (resumed from its
//    checkpoint) when the node running them is killed (kill -9), and when it
//    stops in order (SIGTERM: it revokes its lease, the other node takes over
//    at once). Baseline: lease_s, the floor of a kill -9 failover.
//
// Medians over --runs runs (default 5).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { applyEntries } from '../src/cluster/apply';
import { parseDesiredFile } from '../src/cluster/desired';
import { etcdOptions } from '../src/cluster/etcd';
import { etcdUnavailable } from '../test/helpers/etcd';
import { netnsUnavailable } from '../test/helpers/testbed';
import { BIN, sleep } from '../test/server/fixtures/harness';
import { ClusterBed, keys, longestGap, report } from '../test/cluster/bed';
import { clusterConfig } from '../test/cluster/harness';
import { holdSharedLock, median } from './lib/measure';
import { commandOf, measuredOn, writeResults } from './lib/readme';

interface Options {
  runs: number;
  leaseS: number;
  readme: boolean;
}

function parseOptions(args: string[]): Options {
  const o: Options = { runs: 5, leaseS: 3, readme: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = (): number => {
      const n = Number(args[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`bench cluster: ${a} needs a positive integer, got "${args[i]}"`);
      return n;
    };
    if (a === '--runs') o.runs = v();
    else if (a === '--lease-s') o.leaseS = Math.max(2, v());
    else if (a === '--readme') o.readme = true;
    else throw new Error(`bench cluster: unknown option "${a}" (options: --runs N, --lease-s S, --readme)`);
  }
  return o;
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const FIXTURES = path.join(__dirname, '..', 'test');

export async function main(args: string[] = []): Promise<void> {
  const o = parseOptions(args);
  const why = netnsUnavailable() ?? etcdUnavailable();
  if (why) {
    process.stdout.write(`bench cluster: SKIPPED: ${why}\n`);
    return;
  }
  const unlock = await holdSharedLock('/tmp/rf-gyp.lock');
  const bed = await ClusterBed.create(null, { nodes: ['a', 'b'], leaseS: o.leaseS });
  try {
    const sub = bed.addr('sub');
    const sink = await bed.peer('sub', path.join(FIXTURES, 'cluster/fixtures/seq-sink.js'));
    const origin = await bed.peer('sub', path.join(FIXTURES, 'server/fixtures/udp-peer.js'));
    const ports = Array.from({ length: o.runs }, (_, i) => i);
    await sink.call('bind', { ports: [6000, 7000, ...ports.flatMap((i) => [6100 + i, 6200 + i, 6300 + i])] });
    await Promise.all(['a', 'b'].map((n) => bed.start(n)));
    const admin = new Etcd3(etcdOptions(clusterConfig(bed.etcd.local, 'bench')));
    const media = bed.seqPcap('seq.pcap', 50 * 600, 20);
    const vip = '198.18.0.100';
    const base = `  - { name: fo, node: [a, b], listen: "${vip}:5000", sources: [${sub}/32], subscribers: ["${sub}:6000"] }\n`;
    const session = `sessions:\n  - { name: fs, node: [a, b], file: ${media}, to: "${sub}:7000", format: pcap, loop: true }\n`;
    const relays: string[] = [base];
    const desired = (): string => `relays:\n${relays.join('')}${session}`;
    const firstAfter = async (port: number, t0: number, timeoutMs = 10000): Promise<number> => {
      const end = Date.now() + timeoutMs;
      while (Date.now() < end) {
        const hit = (await report(sink))[String(port)].find((x) => x[1] >= t0);
        if (hit) return hit[1] - t0;
        await sleep(10);
      }
      return NaN;
    };

    // 1. time to the first relayed packet
    const viaCtl: number[] = [];
    const viaTxn: number[] = [];
    const viaLocal: number[] = [];
    const PPS = 1000;
    for (const i of ports) {
      // the origin already sends to all three addresses of this run
      const sending = [5100, 5200, 5300].map((p) => origin.call('send', { to: `${bed.addr('a')}:${p + i}`, count: PPS * 8, pps: PPS, first: 0 }));
      await sleep(200);
      relays.push(`  - { name: c${i}, node: a, listen: "${bed.addr('a')}:${5100 + i}", sources: [${sub}/32], subscribers: ["${sub}:${6100 + i}"] }\n`);
      let t0 = now();
      await bed.apply(desired());
      viaCtl.push(await firstAfter(6100 + i, t0));
      relays.push(`  - { name: t${i}, node: a, listen: "${bed.addr('a')}:${5200 + i}", sources: [${sub}/32], subscribers: ["${sub}:${6200 + i}"] }\n`);
      const entries = parseDesiredFile(desired(), path.join(bed.dir, 'd.yaml')).desired!.entries;
      t0 = now();
      await applyEntries(admin, keys, entries);
      viaTxn.push(await firstAfter(6200 + i, t0));
      t0 = now();
      const local = spawnSync('ip', ['netns', 'exec', bed.tb.ns('a'), process.execPath, BIN, 'ctl', '--socket', path.join(bed.dir, 'a.sock'), 'add-relay', `l${i}`, `${bed.addr('a')}:${5300 + i}`, '--source', `${sub}/32`, '--subscriber', `${sub}:${6300 + i}`], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: undefined } });
      if (local.status !== 0) throw new Error(`ctl add-relay failed: ${local.stderr}`);
      viaLocal.push(await firstAfter(6300 + i, t0));
      process.stdout.write(`bench cluster: run ${i + 1}: first packet after ctl apply ${viaCtl[i].toFixed(0)} ms, apply transaction ${viaTxn[i].toFixed(0)} ms, local ctl add-relay ${viaLocal[i].toFixed(0)} ms\n`);
      await Promise.all(sending);
    }

    // 2. failover gaps
    const gaps = { relayKill: [] as number[], sessionKill: [] as number[], relayStop: [] as number[], sessionStop: [] as number[] };
    const holder = async (): Promise<string> => {
      const s = (await admin.get(keys.placement('relay', 'fo')).json()) as { node?: string } | null;
      return s?.node ?? '';
    };
    const RATE = 200;
    for (const i of ports) {
      for (const how of ['SIGKILL', 'SIGTERM'] as const) {
        const from = await holder();
        const other = from === 'a' ? 'b' : 'a';
        await sink.call('clear');
        const sending = origin.call('send', { to: `${vip}:5000`, count: RATE * (o.leaseS + 5), pps: RATE, first: 0 });
        await sleep(1000);
        const t0 = now();
        await bed.servers.get(from)!.kill(how);
        await sending;
        const r = await report(sink);
        const rg = longestGap(r['6000'].filter((x) => x[1] >= t0 - 500));
        const sg = longestGap(r['7000'].filter((x) => x[1] >= t0 - 500));
        (how === 'SIGKILL' ? gaps.relayKill : gaps.relayStop).push(rg.ms);
        (how === 'SIGKILL' ? gaps.sessionKill : gaps.sessionStop).push(sg.ms);
        process.stdout.write(`bench cluster: run ${i + 1}: ${how} of ${from}: relay silent ${rg.ms.toFixed(0)} ms, session ${sg.ms.toFixed(0)} ms (taken by ${other})\n`);
        await bed.start(from);
      }
    }
    admin.close();

    const row = (what: string, xs: number[], vs: string): string => {
      const ok = xs.filter(Number.isFinite);
      return `| ${what} | ${(median(ok) / 1000).toFixed(3)} s | ${(Math.min(...ok) / 1000).toFixed(3)}..${(Math.max(...ok) / 1000).toFixed(3)} s | ${vs} |`;
    };
    const ratio = (xs: number[], base: number): string => `${(median(xs) / base).toFixed(2)}x`;
    const lines = [
      `Measured ${measuredOn()}.`,
      commandOf('cluster', args),
      '',
      `Two nodes, lease_s ${o.leaseS}, checkpoint_ms 200, etcd ${'3.4'} (one member) on the same segment; ${o.runs} runs, medians.`,
      '',
      '| what | median | range | vs baseline |',
      '|---|---|---|---|',
      row('`ctl --etcd apply` -> first relayed packet', viaCtl, `${ratio(viaCtl, median(viaLocal))} local ctl add-relay`),
      row('apply transaction -> first relayed packet (no CLI start-up)', viaTxn, `${ratio(viaTxn, median(viaLocal))} local ctl add-relay`),
      row('baseline: local `ctl add-relay` -> first relayed packet', viaLocal, '1x'),
      row('relay failover gap, kill -9 (unicast address taken over)', gaps.relayKill, `${ratio(gaps.relayKill, o.leaseS * 1000)} lease_s`),
      row('session failover gap, kill -9 (resumed from its checkpoint)', gaps.sessionKill, `${ratio(gaps.sessionKill, o.leaseS * 1000)} lease_s`),
      row('relay failover gap, orderly stop (lease revoked)', gaps.relayStop, `${ratio(gaps.relayStop, o.leaseS * 1000)} lease_s`),
      row('session failover gap, orderly stop', gaps.sessionStop, `${ratio(gaps.sessionStop, o.leaseS * 1000)} lease_s`),
      `| baseline: lease_s | ${o.leaseS.toFixed(3)} s | | 1x |`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (o.readme) writeResults('cluster', lines, '## cluster: apply latency and failover gaps (issue #15)\n\nSee bench/cluster.ts for what is measured and how.');
  } finally {
    await bed.destroy();
    await bed.tb.destroy();
    await bed.etcd.destroy();
    fs.rmSync(bed.dir, { recursive: true, force: true });
    unlock();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (e: Error) => {
      process.stderr.write(`${e.stack ?? e.message}\n`);
      process.exit(1);
    },
  );
}
