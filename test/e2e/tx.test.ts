// SPDX-License-Identifier: MIT
// End to end for aggregate transmit (issue #2): a Piscina worker writes
// payloads into pool slots and submits descriptors; the engine, owning one
// end of a veth pair in namespace a through AF_PACKET, builds the headers and
// sends (on backend afpacket, and again on afxdp); a plain UDP socket in
// namespace b must receive every packet, byte for byte, over IPv4 and IPv6. The receiving kernel checks the IP and UDP
// checksums, so a wrong header shows up as a missing packet.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import Piscina from 'piscina';
import { parseEndpoint } from '../../src/net/address';
import { makeDestination } from '../../src/net/destination';
import { Engine } from '../../src/engine/engine';
import { engineUnavailable } from '../helpers/engine-available';
import { compileFixture } from '../helpers/cc';
import { startReceiver } from '../helpers/receiver';
import { Testbed, skipUnlessRoot } from '../helpers/testbed';
import { payloadHash, payloadLength } from '../fixtures/payload';
import type { TxResult, TxTask } from '../fixtures/tx-worker';

const WORKER = join(__dirname, '..', 'fixtures', 'tx-worker.js');
// Piscina workers inherit execArgv: without this they would load tap's
// --import hooks too (seconds of start-up under load, nothing to test there)
const SIZES = [64, 1316, 200, 1000, 1472 - 8 - 40, 1]; // 1424 = largest IPv6 payload that fits a 1500 MTU
const PORT = 6000;

/** True after a loud skip when the engine cannot run here. */
function skipWithoutEngine(t: Test): boolean {
  const why = engineUnavailable();
  if (why) {
    process.stderr.write(`# SKIP e2e tx: ${why}\n`);
    t.plan(0, `engine not available: ${why}`);
    return true;
  }
  return false;
}

if (!skipUnlessRoot(t)) {
  t.test('control: the receiving kernel drops a datagram whose UDP checksum is wrong', async (t) => {
    // the premise of "every packet arrived, so every checksum was right" below
    const cc = compileFixture('raw_udp_send');
    if ('missing' in cc) {
      process.stderr.write(`# SKIP checksum control: ${cc.missing}\n`);
      t.plan(0, cc.missing);
      return;
    }
    const tb = await Testbed.create(t, { hosts: ['a', 'b'], links: [['a', 'b']] });
    const rx = await startReceiver(tb, 'b', { bind: `${tb.addr('b')}:${PORT}`, count: 2, timeoutMs: 3000, idleMs: 500 });
    const send = (payload: string, csum: 'good' | 'bad'): Promise<unknown> =>
      tb.exec('a', [cc.bin, 'veth0', tb.mac('a'), tb.mac('b'), tb.addr('a'), tb.addr('b'), '5004', String(PORT), payload, csum]);
    await send('bad checksum', 'bad');
    await send('good checksum', 'good');
    const r = await rx.result;
    t.equal(r.received, 1, 'only the datagram with the right checksum was delivered');
    t.same(r.hashes, [createHash('sha256').update('good checksum').digest('hex')]);
    const nstat = (await tb.exec('b', ['nstat', '-az', 'UdpInCsumErrors'])).stdout;
    t.match(nstat, /UdpInCsumErrors\s+1\s/, 'and counted it as a checksum error');
  });

  // the same case on each backend: the AF_PACKET TX ring, and an AF_XDP
  // socket (copy mode, queue 0 of a's veth end)
  for (const backend of ['afpacket', 'afxdp'] as const) {
    t.test(`${backend}: worker-written packets leave the engine and arrive intact (IPv4 and IPv6)`, async (t) => {
      if (skipWithoutEngine(t)) return;
      const tb = await Testbed.create(t, { hosts: ['a', 'b'], links: [['a', 'b']] });
      const names = [tb.ns('a'), tb.ns('b')];
      const engine = new Engine({ interface: 'veth0', netns: tb.ns('a'), backend });
      t.teardown(() => (engine.running ? engine.stop() : undefined));
      try {
        await engine.start();
      } catch (e) {
        const m = (e as Error).message;
        if (backend === 'afxdp' && /socket\(AF_XDP\) failed/.test(m)) {
          process.stderr.write(`# SKIP e2e tx afxdp: ${m}\n`);
          t.plan(0, `no AF_XDP sockets here: ${m}`);
          return;
        }
        throw e;
      }
      t.ok(engine.running, `engine running on backend ${backend}`);
      t.equal(engine.backend, backend);
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
      t.ok(res.lane >= 1, `worker claimed its own lane (${res.lane})`);

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
      t.ok(engine.region.counter(0, 'tx_syscalls') <= engine.region.counter(0, 'tx_flushes'), 'one system call per flush at most');
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

  t.test('timed packets leave in time order', async (t) => {
    if (skipWithoutEngine(t)) return;
    const tb = await Testbed.create(t, { hosts: ['a', 'b'], links: [['a', 'b']] });
    const engine = new Engine({ interface: 'veth0', netns: tb.ns('a'), backend: 'afpacket' });
    t.teardown(() => (engine.running ? engine.stop() : undefined));
    await engine.start();
    const count = 50;
    const spacingNs = 2_000_000; // 2 ms apart: far above the 20-50 us wake-up jitter
    const rx = await startReceiver(tb, 'b', { bind: `${tb.addr('b')}:${PORT}`, count, timeoutMs: 8000, timestamps: true });
    const dests = [await makeDestination(parseEndpoint(`${tb.addr('b')}:${PORT}`), { netns: tb.ns('a') })];
    const pool = new Piscina({ filename: WORKER, minThreads: 1, maxThreads: 1, execArgv: [] });
    t.teardown(() => pool.destroy());
    await pool.run({ sab: engine.region.sab, dests, count, sizes: [100], seed: 7, aggregate: count, stream: 2, spacingNs } satisfies TxTask);
    const r = await rx.result;
    t.equal(r.received, count, 'every timed packet arrived');
    const want: string[] = [];
    for (let i = 0; i < count; i++) want.push(payloadHash(7, i, 100));
    t.same(r.hashes, want, 'in order, intact');
    // one aggregate spanning ~100 ms must be spread out, not sent in one burst
    const times = r.times!.map((x) => BigInt(x));
    const spanMs = Number(times[times.length - 1] - times[0]) / 1e6;
    t.ok(spanMs > (count - 1) * 2 * 0.5, `arrivals span ${spanMs.toFixed(1)} ms for a 98 ms schedule`);
  });

  t.test('no namespace of this test file is left', async (t) => {
    // every earlier subtest's teardown (engine stop, pool destroy, testbed) has run
    t.same(Testbed.namespacesOf(), []);
  });
}
