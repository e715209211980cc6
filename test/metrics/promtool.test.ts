// SPDX-License-Identifier: MIT
// The whole /metrics output (reflector_* plus prom-client's process metrics)
// passes `promtool check metrics`; names follow the conventions.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createMetrics, type MetricsSource } from '../../src/metrics/registry';

const PROMTOOL = '/usr/bin/promtool';
const names = ['tx_packets', 'tx_bytes', 'rx_packets', 'rx_bytes', 'drop_late', 'drop_bad_len', 'wakeups', 'policy_applied'];

const source: MetricsSource = {
  interfaceName: () => 'eth0',
  engine: () => ({
    counterNames: () => names,
    counter: (thread, n) => BigInt(thread * 1000 + names.indexOf(n)),
    histogram: () => Array.from({ length: 24 }, (_, i) => BigInt(i % 3)),
  }),
  relayOutputs: () => [
    { relay: 'cam', subscriber: '198.18.0.1:6000', packets: 10n, bytes: 13160n, drops: 1n },
    { relay: 'cam', subscriber: '[2001:db8::1]:6000', packets: 5n, bytes: 6580n, drops: 0n },
  ],
  relays: () => [{ relay: 'cam', packets: 15n, bytes: 19740n, notAllowed: 2n, sent: { packets: 15n, bytes: 19740n, drops: 1n } }],
  sessions: () => [{ session: 'movie "1"', packets: 3n, bytes: 3948n, late: 1n, dropped: 0n }],
  rings: () => [{ ring: 'policy', used: 1, size: 64 }, { ring: 'lane0.submit', used: 0, size: 1024 }],
  pool: () => ({ used: 2, size: 4096 }),
  lanes: () => [
    { lane: '1', quarantined: true, faults: { submit_index: 3n, slot: 40n } },
    { lane: 'control', quarantined: false, faults: { submit_index: 0n, slot: 0n } },
  ],
  relayCount: () => 1,
  sessionCount: () => 1,
  ready: () => true,
};

t.test('promtool check metrics passes on the whole output', async (t) => {
  if (!existsSync(PROMTOOL)) {
    t.plan(0, `${PROMTOOL} is not installed (Debian package prometheus)`);
    return;
  }
  const m = createMetrics(source, { defaults: true, version: '0.0.0-test' });
  m.configReloads.inc();
  m.controlRequests.inc({ command: 'list', result: 'ok' });
  const text = await m.registry.metrics();
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  t.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`);
  t.match(text, /^process_cpu_seconds_total /m, 'process metrics included');
  t.notMatch(text, /nodejs_active_handles_total/, 'the gauge promtool rejects is left out');
});

t.test('names: reflector_ prefix, counters end in _total, one HELP each', async (t) => {
  const m = createMetrics(source, { defaults: false });
  const text = await m.registry.metrics();
  const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => [x[1], x[2]]);
  t.ok(types.length > 20);
  for (const [name, type] of types) {
    t.ok(name.startsWith('reflector_'), `${name} has the prefix`);
    if (type === 'counter') t.ok(name.endsWith('_total'), `${name} (counter) ends in _total`);
    else t.notOk(name.endsWith('_total'), `${name} (${type}) does not end in _total`);
  }
  t.equal(new Set(types.map((x) => x[0])).size, types.length, 'each metric declared once');
});

t.test('values are read at scrape time, exactly', async (t) => {
  let packets = 10n;
  const m = createMetrics({
    ...source,
    relayOutputs: () => [{ relay: 'cam', subscriber: '198.18.0.1:6000', packets, bytes: packets * 100n, drops: 0n }],
    relays: () => [{ relay: 'cam', packets, bytes: packets * 100n, notAllowed: 2n, sent: { packets, bytes: packets * 100n, drops: 0n } }],
  }, { defaults: false });
  const get = async (): Promise<string> => m.registry.metrics();
  t.match(await get(), /^reflector_relay_subscriber_packets_total\{relay="cam",subscriber="198\.18\.0\.1:6000"\} 10$/m);
  packets = 12345678901n;
  const text = await get();
  t.match(text, /^reflector_relay_subscriber_packets_total\{relay="cam",subscriber="198\.18\.0\.1:6000"\} 12345678901$/m);
  t.match(text, /^reflector_relay_packets_total\{relay="cam"\} 12345678901$/m);
  t.match(text, /^reflector_relay_not_allowed_packets_total\{relay="cam"\} 2$/m);
  t.match(text, /^reflector_interface_rx_packets_total\{interface="eth0"\} 1004$/m, 'both engine threads summed');
  t.match(text, /^reflector_interface_drops_total\{interface="eth0",reason="late"\} 1008$/m);
  t.match(text, /^reflector_lateness_seconds_bucket\{le="\+Inf"\} 24$/m, 'cumulative buckets');
  t.match(text, /^reflector_lateness_seconds_count 24$/m);
  t.match(text, /^reflector_lane_faults_total\{lane="1",reason="slot"\} 40$/m, 'lane faults by lane and reason');
  t.match(text, /^reflector_lane_faults_total\{lane="control",reason="submit_index"\} 0$/m);
  t.match(text, /^reflector_lane_quarantined\{lane="1"\} 1$/m);
  t.match(text, /^reflector_lane_quarantined\{lane="control"\} 0$/m);
});

t.test('engine stopped: no engine series, engine_up 0', async (t) => {
  const m = createMetrics({ ...source, engine: () => null }, { defaults: false });
  const text = await m.registry.metrics();
  t.match(text, /^reflector_engine_up 0$/m);
  t.notMatch(text, /^reflector_interface_drops_total\{/m);
});

t.test('the relay totals come from the relays manager, not from a sum over current subscribers', async (t) => {
  // one subscriber left, the relay's totals include a removed one: the totals win
  const m = createMetrics({
    ...source,
    relayOutputs: () => [{ relay: 'cam', subscriber: '198.18.0.1:6000', packets: 7n, bytes: 700n, drops: 0n }],
    relays: () => [{ relay: 'cam', packets: 10n, bytes: 1000n, notAllowed: 0n, sent: { packets: 19n, bytes: 1900n, drops: 3n } }],
  }, { defaults: false });
  const text = await m.registry.metrics();
  t.match(text, /^reflector_relay_packets_total\{relay="cam"\} 19$/m);
  t.match(text, /^reflector_relay_bytes_total\{relay="cam"\} 1900$/m);
  t.match(text, /^reflector_relay_dropped_packets_total\{relay="cam"\} 3$/m);
  // a source without totals gets no relay totals at all rather than a sum that could fall
  const bare = createMetrics({ ...source, relays: () => [{ relay: 'cam', packets: 1n, bytes: 1n, notAllowed: 0n }] }, { defaults: false });
  t.notMatch(await bare.registry.metrics(), /^reflector_relay_packets_total\{/m);
});

t.test('built from prom-client collectors, computed in collect()', async (t) => {
  const m = createMetrics(source, { defaults: false });
  const client = await import('prom-client');
  for (const metric of m.registry.getMetricsAsArray()) {
    const ok = metric instanceof client.Counter || metric instanceof client.Gauge || metric instanceof client.Histogram;
    t.ok(ok, `${(metric as unknown as { name: string }).name} is a prom-client Counter, Gauge or Histogram`);
  }
});

t.test('ctl stats and /metrics: one set of names', async (t) => {
  const { seriesOf } = await import('../../src/metrics/registry');
  const m = createMetrics(source, { defaults: true });
  const series = await seriesOf(m.registry);
  const text = await m.registry.metrics();
  const exposed = new Set([...text.matchAll(/^(reflector_[a-z_]+)[{ ]/gm)].map((x) => x[1]));
  t.same(new Set(series.map((s) => s.name)), exposed, 'the same reflector_* series names');
  t.match(series.find((s) => s.name === 'reflector_relay_subscriber_packets_total' && s.labels.subscriber === '198.18.0.1:6000'), { value: 10n });
  t.notOk(series.some((s) => s.name.startsWith('process_')), 'process metrics are not stats');
});
