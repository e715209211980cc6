// SPDX-License-Identifier: MIT
// Engine.close(): idempotent, and it closes what was built on the engine
// first (session managers, then relays managers), so a library user who
// only closes the engine leaks no worker and leaves no policy behind.
import t from 'tap';
import { Engine } from '../../src/engine/engine';
import { Relays } from '../../src/relay/relays';
import { SessionManager } from '../../src/session/manager';

let engine: Engine | null = null;
try {
  engine = new Engine({ interface: 'lo', backend: 'null', region: { lanes: 2, slotsPerLane: 16, submitEntries: 16 } });
} catch (e) {
  t.plan(0, `the addon is not built: ${(e as Error).message}`);
}

if (engine) {
  const e = engine;
  t.test('close() cascades to sessions and relays, once', async (t) => {
    await e.start();
    const relays = new Relays(e, { refreshMs: 0, isLocal: async () => true });
    await relays.start();
    await relays.addRelay({ name: 'r', listen: '127.0.0.1:5900', sources: ['127.0.0.1/32'] });
    const sessions = await SessionManager.create({ region: e.region, workers: 1, resolveDestination: async () => ({ family: 4, srcAddr: '127.0.0.1', dstAddr: '127.0.0.1', srcPort: 1, dstPort: 2, srcMac: '00:00:00:00:00:00', dstMac: '00:00:00:00:00:00' }) });
    const applied = e.region.counter(1, 'policy_applied');
    const first = e.close();
    t.equal(e.close(), first, 'a second close() is the same promise');
    await first;
    t.equal(e.running, false, 'the engine stopped');
    t.same(relays.list(), [], 'the relays manager removed its relays');
    t.equal(e.region.counter(1, 'policy_applied'), applied + 1n, 'its removal reached the engine before the engine stopped');
    await t.rejects(relays.addRelay({ name: 's', listen: '127.0.0.1:5901', sources: ['127.0.0.1/32'] }), { code: 'ERR_CLOSED' }, 'the relays manager is closed');
    await t.rejects(sessions.start('x', '/nonexistent.ts', '127.0.0.1:1'), { code: 'ERR_CLOSED' }, 'the session manager is closed');
    t.equal(sessions.workerCount, 0, 'its workers are gone');
    await t.rejects(e.start(), { code: 'ERR_CLOSED', message: 'engine: start() after close()' });
    await e.close();
    t.pass('close() after close() resolves');
  });
}
