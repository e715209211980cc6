// SPDX-License-Identifier: MIT
// End to end for aggregate transmit on the afxdp backend (issue #2): the
// same as tx.test.ts's main case, with the engine's TX thread sending
// through an AF_XDP socket (copy mode, queue 0 of a's veth end) instead of
// the AF_PACKET TX ring. A Piscina worker writes IPv4 and IPv6 packets; a
// plain UDP socket in namespace b must receive every one, byte for byte
// (the receiving kernel checks the IP and UDP checksums). Skips loudly when
// this kernel has no AF_XDP sockets.
import { join } from 'node:path';
import t from 'tap';
import Piscina from 'piscina';
import { parseEndpoint } from '../../src/net/address';
import { makeDestination } from '../../src/net/destination';
import { Engine } from '../../src/engine/engine';
import { engineUnavailable } from '../helpers/engine-available';
import { startReceiver } from '../helpers/receiver';
import { Testbed, skipUnlessRoot } from '../helpers/testbed';
import { payloadHash, payloadLength } from '../fixtures/payload';
import type { TxResult, TxTask } from '../fixtures/tx-worker';

const WORKER = join(__dirname, '..', 'fixtures', 'tx-worker.js');
const SIZES = [64, 1316, 200, 1000, 1472 - 8 - 40, 1]; // 1424 = largest IPv6 payload that fits a 1500 MTU
const PORT = 6000;

if (!skipUnlessRoot(t)) {
  t.test('backend afxdp: worker-written packets leave the engine and arrive intact (IPv4 and IPv6)', async (t) => {
    const why = engineUnavailable();
    if (why) {
      process.stderr.write(`# SKIP e2e tx afxdp: ${why}\n`);
      t.plan(0, `engine not available: ${why}`);
      return;
    }
    const tb = await Testbed.create(t, { hosts: ['a', 'b'], links: [['a', 'b']] });
    const names = [tb.ns('a'), tb.ns('b')];
    const engine = new Engine({ interface: 'veth0', netns: tb.ns('a'), backend: 'afxdp' });
    t.teardown(() => (engine.running ? engine.stop() : undefined));
    try {
      await engine.start();
    } catch (e) {
      const m = (e as Error).message;
      if (/socket\(AF_XDP\) failed/.test(m)) {
        process.stderr.write(`# SKIP e2e tx afxdp: ${m}\n`);
        t.plan(0, `no AF_XDP sockets here: ${m}`);
        return;
      }
      throw e;
    }
    t.ok(engine.running, 'engine running on backend afxdp');
    t.equal(engine.backend, 'afxdp');
    t.equal(engine.interfaceInfo().mac, tb.mac('a'), 'engine owns a\'s veth end');

    const count = 600; // even: packet i goes to destination i % 2 (v4, v6)
    const seed = 0x5eed;
    const rx4 = await startReceiver(tb, 'b', { bind: `${tb.addr('b')}:${PORT}`, count: count / 2, timeoutMs: 8000 });
    const rx6 = await startReceiver(tb, 'b', { bind: `[${tb.addr('b', 6)}]:${PORT}`, count: count / 2, timeoutMs: 8000 });
    const dests = [
      await makeDestination(parseEndpoint(`${tb.addr('b')}:${PORT}`), { netns: tb.ns('a'), dev: 'veth0', srcPort: 5004 }),
      await makeDestination(parseEndpoint(`[${tb.addr('b', 6)}]:${PORT}`), { netns: tb.ns('a'), dev: 'veth0', srcPort: 5006 }),
    ];
    const pool = new Piscina({ filename: WORKER, minThreads: 1, maxThreads: 1, execArgv: [] });
    t.teardown(() => pool.destroy());
    const sentBefore = engine.region.counter(0, 'tx_packets');
    const task: TxTask = { sab: engine.region.sab, dests, count, sizes: SIZES, seed, aggregate: 32, stream: 1 };
    const res = (await pool.run(task)) as TxResult;
    t.equal(res.sent, count, 'worker submitted every packet');

    const [r4, r6] = await Promise.all([rx4.result, rx6.result]);
    for (const [fam, r, first] of [[4, r4, 0], [6, r6, 1]] as const) {
      const want: string[] = [];
      for (let i = first; i < count; i += 2) want.push(payloadHash(seed, i, payloadLength(i, SIZES)));
      t.equal(r.received, count / 2, `IPv${fam}: exact count`);
      t.notOk(r.timedOut, `IPv${fam}: nothing missing`);
      t.same(r.hashes, want, `IPv${fam}: every payload byte-identical and in order`);
      const src = fam === 4 ? `${tb.addr('a')}:5004` : `[${tb.addr('a', 6)}]:5006`;
      t.same(r.sources, { [src]: count / 2 }, `IPv${fam}: source address and port from the destination entry`);
    }
    // the counter is written by the TX thread after the frame left; give it a moment
    const deadline = Date.now() + 2000;
    while (engine.region.counter(0, 'tx_packets') - sentBefore < BigInt(count) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    t.equal(engine.region.counter(0, 'tx_packets') - sentBefore, BigInt(count), 'tx_packets counts exactly what was sent');
    t.ok(engine.region.counter(0, 'tx_syscalls') <= engine.region.counter(0, 'tx_flushes'), 'one sendto() per flush at most');
    for (const c of ['drop_bad_slot', 'drop_bad_dest', 'drop_bad_len', 'drop_tx_error', 'drop_late']) {
      t.equal(engine.region.counter(0, c), 0n, `${c} stays 0`);
    }
    await engine.stop();
    t.notOk(engine.running, 'engine stopped');
    await pool.destroy();
    await tb.destroy();
    t.same(Testbed.namespacesOf().filter((n) => names.includes(n)), [], 'no namespace left after the test');
  });
}
