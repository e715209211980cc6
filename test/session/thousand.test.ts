// SPDX-License-Identifier: MIT
// 1,000 sessions at once, spread over the worker pool, through the engine's
// null backend (it counts every frame and discards it): every session's
// stream counters reach exactly its file's datagrams, with none dropped. The
// wire tests (sessions.test.ts) prove the packets themselves; this one proves
// the scale of the session machinery.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Destination } from '../../src/region/lane';
import { SessionManager } from '../../src/session/manager';
import { engineOrSkip } from '../aggregate/capture';
import { concat, stream } from '../media/synth';

const N = 1000;

t.test(`${N} sessions over 2 workers`, async (t) => {
  const engine = engineOrSkip(t, {
    interface: 'lo',
    backend: 'null',
    region: { lanes: 3, slotsPerLane: 4096, destsPerLane: 512, maxStreams: 1024, submitEntries: 4096 },
  });
  if (!engine) return;
  const dir = mkdtempSync(join(tmpdir(), 'rf-1k-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'short.ts');
  writeFileSync(file, concat(stream(70, 7, 0.5e6))); // 10 datagrams over 35 ms
  await engine.start();
  const dest: Destination = { family: 4, srcAddr: '198.18.0.1', dstAddr: '198.18.0.2', srcPort: 5004, dstPort: 6000, srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02' };
  const sessions = await SessionManager.create({ region: engine.region, workers: 2, resolveDestination: async (to) => ({ ...dest, dstPort: to.port }) });
  t.teardown(() => sessions.close());
  let ended = 0;
  sessions.on('ended', () => ended++);
  const startAt = process.hrtime.bigint() + 3_000_000_000n;
  const infos = await Promise.all(Array.from({ length: N }, (_, i) => sessions.start(`s${i}`, file, `198.18.0.2:${10000 + i}`, 'mpegts', false, { startAt })));
  const perLane = new Map<number, number>();
  for (const i of infos) perLane.set(i.lane, (perLane.get(i.lane) ?? 0) + 1);
  t.same([...perLane.values()].sort(), [N / 2, N / 2], 'spread evenly over the two workers');
  t.equal(new Set(infos.map((i) => i.stream)).size, N, 'a stream id each');
  const deadline = Date.now() + 20_000;
  while (ended < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.equal(ended, N, 'every session ended');
  await new Promise((r) => setTimeout(r, 200)); // the last packets leave after the worker handed them over
  let exact = 0;
  let dropped = 0n;
  for (const i of infos) {
    const c = engine.region.streamCounters(i.stream);
    if (c.packets === 10n) exact++;
    dropped += c.dropped;
  }
  t.equal(exact, N, 'each session: its 10 datagrams counted by the engine on its stream');
  t.equal(dropped, 0n, 'none dropped');
  t.equal(engine.region.counter(0, 'tx_packets'), BigInt(N * 10));
  await sessions.close();
  await engine.stop();
});
