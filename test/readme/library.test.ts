// SPDX-License-Identifier: MIT
// The README's "Using Reflector as a library" example, run for real through
// the public entry point (src/index.ts) on a namespace testbed: a relay with
// a subscriber added and one removed at run time, then an aggregate whose
// packets leave in time order, not in the order they were added (the async
// forms on the main thread), and engine.close() that closes everything.
import t from 'tap';
import { createHash } from 'node:crypto';
import { Aggregate, Engine, Relays, makeDestination, parseEndpoint } from '../../src/index';
import { startReceiver } from '../helpers/receiver';
import { Testbed, skipUnlessRoot } from '../helpers/testbed';
import { endpoint, send, startPorts } from '../relay/bed';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

if (!skipUnlessRoot(t)) {
  t.test('the README library example works as written', async (t) => {
    const tb = await Testbed.create(t, { hosts: ['origin', 'relay', 'sub'], segments: [['origin', 'relay', 'sub']] });
    const engine = new Engine({ interface: tb.iface('relay').name, netns: tb.ns('relay') });
    await engine.start();
    t.teardown(async () => {
      if (engine.running) await engine.stop();
    });
    const relays = new Relays(engine);
    await relays.start();
    t.teardown(() => relays.stop());

    const relayAddr = tb.addr('relay', 4);
    const subAddr = tb.addr('sub', 4);
    await relays.addRelay({
      name: 'camera1',
      listen: `${relayAddr}:5000`,
      sources: ['198.18.0.0/16'],
      subscribers: [`${subAddr}:6000`, `${subAddr}:6001`],
    });
    await relays.addOutput('camera1', `${subAddr}:6002`, { dscp: 34 });
    await relays.removeOutput('camera1', `${subAddr}:6000`);
    t.same(relays.list().find((r) => r.name === 'camera1')?.subscribers.map(String).sort(),
      [`${subAddr}:6001`, `${subAddr}:6002`], 'the table holds what the calls left');

    // Redirect and split: 6001 and 6002 get every packet, 6000 (removed) none
    const COUNT = 100;
    const rx = await startPorts({ tb, engine, relays }, 'sub', subAddr, [6000, 6001, 6002], COUNT, 8000, 1000);
    const sent = await send({ tb, engine, relays }, endpoint(tb.addr('origin', 4), 4444), `${relayAddr}:5000`, COUNT, 1000, 200);
    t.equal(sent.sent, COUNT);
    const got = await rx.result;
    t.equal(got.ports['6001']?.received, COUNT, 'subscriber 6001 got every packet');
    t.equal(got.ports['6002']?.received, COUNT, 'subscriber 6002 (added at run time) got every packet');
    t.equal(got.ports['6000']?.received ?? 0, 0, 'subscriber 6000 (removed) got nothing');

    // Aggregate timed transmit from the main thread's lane
    const receiver = await startReceiver(tb, 'sub', { bind: `${subAddr}:7000`, count: 2, timeoutMs: 5000, list: true });
    const lane = engine.region.lane(0);
    lane.writeDest(lane.destFirst, await makeDestination(parseEndpoint(`${subAddr}:7000`), { netns: tb.ns('relay') }));
    const agg = new Aggregate(lane, { base: process.hrtime.bigint() + 20_000_000n });
    await agg.addAsync(Buffer.from('A'), lane.destFirst, 1, { offset: 14, unit: 'ms' });
    await agg.addAsync(Buffer.from('F'), lane.destFirst, 1, { offset: 13, unit: 'ms' });
    t.equal(await agg.submitAsync(), 2);
    const r = await receiver.result;
    t.same(r.hashes, [sha('F'), sha('A')], 'F (T13) leaves before A (T14), whatever the order they were added in');

    await engine.close();
    t.equal(engine.running, false, 'engine.close() stopped the engine');
    t.same(relays.list(), [], 'and removed the relays first');
  });
}
