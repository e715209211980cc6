// SPDX-License-Identifier: MIT
// reflector_relay_packets_total / _bytes_total only go up: a relay's totals
// keep what a removed subscriber had sent (src/relay/relays.ts keeps it once
// the engine acked the removal). Real packets through the engine on a veth
// testbed, scraped through the metrics registry; promtool checks the output.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createMetrics, type MetricsSource } from '../../src/metrics/registry';
import { cannotRun, endpoint, makeBed, send, until } from '../relay/bed';

const PROMTOOL = '/usr/bin/promtool';

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

if (!cannotRun(t)) {
  t.test('removing a subscriber does not lower the relay totals', { timeout: 60000 }, async (t) => {
    const bed = await makeBed(t);
    const { tb, relays, engine } = bed;
    const listen = endpoint(tb.addr('relay', 4), 5000);
    const a = endpoint(tb.addr('s1', 4), 6000);
    const b = endpoint(tb.addr('s2', 4), 6000);
    await relays.addRelay({ name: 'cam', listen, sources: ['198.18.0.0/15'] });
    await relays.addOutput('cam', a);
    await relays.addOutput('cam', b);
    const subs = [a, b];
    // the server's source (src/server/server.ts) over this Relays manager
    const source: MetricsSource = {
      interfaceName: () => tb.iface('relay').name,
      engine: () => ({ counterNames: () => [], counter: () => 0n, histogram: () => [] }),
      relayOutputs: () => subs.flatMap((s) => {
        const c = relays.outputStats('cam', s);
        return c ? [{ relay: 'cam', subscriber: s, ...c }] : [];
      }),
      relays: () => {
        const c = relays.relayStats('cam');
        return c ? [{ relay: 'cam', ...c }] : [];
      },
      sessions: () => [],
      rings: () => [],
      pool: () => null,
      relayCount: () => 1,
      sessionCount: () => 0,
      ready: () => true,
    };
    const m = createMetrics(source, { defaults: false });
    const scrape = (): Promise<string> => m.registry.metrics();

    const first = await send(bed, endpoint(tb.addr('origin', 4), 4444), listen, 100, 2000, 200);
    t.equal(first.sent, 100);
    await until(() => (relays.relayStats('cam')?.sent.packets ?? 0n) >= 200n, 5000);
    let text = await scrape();
    t.equal(value(text, 'reflector_relay_packets_total{relay="cam"}'), 200, '100 packets to 2 subscribers');
    const bytesBefore = value(text, 'reflector_relay_bytes_total{relay="cam"}')!;
    t.ok(bytesBefore >= 200 * 200, `bytes counted (${bytesBefore})`);
    t.equal(value(text, `reflector_relay_subscriber_packets_total{relay="cam",subscriber="${b}"}`), 100);

    await relays.removeOutput('cam', b);
    subs.pop();
    text = await scrape();
    t.equal(value(text, 'reflector_relay_packets_total{relay="cam"}'), 200, 'the total keeps what the removed subscriber was sent');
    t.equal(value(text, 'reflector_relay_bytes_total{relay="cam"}'), bytesBefore, 'bytes too');
    t.equal(value(text, `reflector_relay_subscriber_packets_total{relay="cam",subscriber="${b}"}`), undefined, 'the removed subscriber has no series');

    const out0 = engine.region.counter(1, 'relay_out');
    const second = await send(bed, endpoint(tb.addr('origin', 4), 4444), listen, 50, 2000, 200);
    t.equal(second.sent, 50);
    await until(() => engine.region.counter(1, 'relay_out') - out0 >= 50n, 5000);
    text = await scrape();
    t.equal(value(text, 'reflector_relay_packets_total{relay="cam"}'), 250, '50 more to the one subscriber left: 200 + 50');

    // the removed output's slot is reused by the next subscriber, counting from 0
    const c = endpoint(tb.addr('s2', 4), 6001);
    await relays.addOutput('cam', c);
    subs.push(c);
    text = await scrape();
    t.equal(value(text, `reflector_relay_subscriber_packets_total{relay="cam",subscriber="${c}"}`), 0, 'a new subscriber starts at 0');
    t.equal(value(text, 'reflector_relay_packets_total{relay="cam"}'), 250, 'adding one changes nothing either');

    if (!existsSync(PROMTOOL)) {
      t.comment(`SKIP promtool check: ${PROMTOOL} is not installed (Debian package prometheus)`);
      return;
    }
    const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    t.equal(r.status, 0, `promtool check metrics: ${r.stdout}${r.stderr}`);
  });
}
