// SPDX-License-Identifier: MIT
// The one registry of metric names. Engine values are read at scrape time
// (collect) from the shared counters through a MetricsSource, never pushed on
// a timer. Names: prefix reflector_, counters end in _total, base units
// (seconds, bytes). `promtool check metrics` runs on the output in
// test/metrics/promtool.test.ts.
import * as client from 'prom-client';

export interface EngineCounterReader {
  /** rf_counter_names, enum order */
  counterNames(): string[];
  counter(thread: 0 | 1, name: string): bigint;
  /** lateness buckets of the TX thread: bucket i counts packets at most 1us*2^i late, last = +Inf */
  histogram(thread: 0 | 1): bigint[];
}

export interface RelayOutputSample {
  relay: string;
  subscriber: string; // "addr:port"
  packets: bigint;
  bytes: bigint;
  drops: bigint;
}

export interface RelaySample {
  relay: string;
  /** packets that matched the relay's <address, port> from an allowed source */
  packets: bigint;
  bytes: bigint;
  /** dropped: source outside the relay's prefixes */
  notAllowed: bigint;
  /** dropped: above the relay's max_pps / max_bps */
  rateLimited?: bigint;
  /**
   * sent to all its subscribers, the removed ones included (the relays
   * manager keeps what a removed output had sent): only goes up while the
   * relay exists. Absent: the source cannot say (no relay totals exported).
   */
  sent?: OutputTotals;
}

export interface OutputTotals {
  packets: bigint;
  bytes: bigint;
  drops: bigint;
}

export interface SessionSample {
  session: string;
  packets: bigint;
  bytes: bigint;
  late: bigint;
  dropped: bigint;
}

export interface RingSample {
  ring: string; // "lane0.submit", "policy", "event", ...
  used: number;
  size: number;
}

export interface LaneSample {
  lane: string; // "0".."n-1", or "control" (the policy and event rings)
  quarantined: boolean;
  /** by reason (rf_lane_fault_names) */
  faults: Record<string, bigint>;
}

export interface MetricsSource {
  interfaceName(): string;
  /** null while the engine is not running */
  engine(): EngineCounterReader | null;
  relayOutputs(): RelayOutputSample[];
  relays(): RelaySample[];
  sessions(): SessionSample[];
  rings(): RingSample[];
  pool(): { used: number; size: number } | null;
  /** each lane's faults and state (region.h rf_lane_counters); absent: none */
  lanes?(): LaneSample[];
  relayCount(): number;
  sessionCount(): number;
  ready(): boolean;
  /** cluster mode: etcd answers (null: not a cluster node) */
  clusterConnected?(): boolean | null;
  /** packets a capture lost because the engine's capture ring was full (null: no engine) */
  captureDropped?(): bigint | null;
}

/** Engine thread index -> label value. */
const THREADS: Array<[0 | 1, string]> = [
  [0, 'tx'],
  [1, 'rx'],
];

/** Counters that become named interface metrics; drop_* become reasons; the rest are engine events. */
const INTERFACE_COUNTERS: Record<string, string> = {
  rx_packets: 'reflector_interface_rx_packets_total',
  rx_bytes: 'reflector_interface_rx_bytes_total',
  tx_packets: 'reflector_interface_tx_packets_total',
  tx_bytes: 'reflector_interface_tx_bytes_total',
};

export const LATENESS_BUCKETS = 24;

/** Upper bound of lateness bucket i in seconds (1us * 2^i). */
export function latenessBound(i: number): number {
  return 1e-6 * 2 ** i;
}

type Labels = Record<string, string | number>;
interface Value {
  labels?: Labels;
  value: number;
}

/**
 * A counter whose values live in the shared region (or in a manager's
 * accumulators): prom-client's own Counter, filled by its collect() at
 * scrape time. Every source it reads only goes up.
 */
function sharedCounter(registry: client.Registry, name: string, help: string, labelNames: string[], read: () => Value[]): client.Counter<string> {
  return new client.Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const v of read()) this.inc(v.labels ?? {}, v.value);
    },
  });
}

/** A gauge read at scrape time: prom-client's own Gauge and its collect(). */
function sharedGauge(registry: client.Registry, name: string, help: string, labelNames: string[], read: () => Value[]): client.Gauge<string> {
  return new client.Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const v of read()) this.set(v.labels ?? {}, v.value);
    },
  });
}

/**
 * The engine's lateness histogram: the TX thread counts each packet into a
 * bucket of the shared region, so the bucket counts are read, never observed
 * one by one (prom-client's Histogram has no bulk observe). prom-client's own
 * Histogram with the engine's bounds; what it exports is built from the
 * region's buckets at scrape time in the format its get() documents.
 */
class SharedHistogram extends client.Histogram<string> {
  constructor(
    registry: client.Registry,
    private readonly metricName: string,
    private readonly metricHelp: string,
    private readonly read: () => bigint[],
  ) {
    // the last engine bucket is +Inf, which prom-client adds by itself
    super({ name: metricName, help: metricHelp, buckets: Array.from({ length: LATENESS_BUCKETS - 1 }, (_, i) => latenessBound(i)), registers: [registry] });
  }

  override async get(): Promise<client.MetricObjectWithValues<client.MetricValueWithName<string>>> {
    const h = this.read();
    const values: Array<client.MetricValueWithName<string>> = [];
    let cum = 0;
    let sum = 0;
    h.forEach((v, i) => {
      cum += Number(v);
      const last = i === h.length - 1;
      // the +Inf bucket has no bound: count it at the largest finite bound
      sum += Number(v) * latenessBound(last ? i - 1 : i);
      values.push({ metricName: `${this.metricName}_bucket`, labels: { le: last ? '+Inf' : latenessBound(i) }, value: cum });
    });
    values.push({ metricName: `${this.metricName}_sum`, labels: {}, value: sum });
    values.push({ metricName: `${this.metricName}_count`, labels: {}, value: cum });
    return { name: this.metricName, help: this.metricHelp, type: 'histogram' as unknown as client.MetricType, values, aggregator: 'sum', collect: () => undefined };
  }

  // the registry prefers this to get() when a metric has it
  getForPromString(): Promise<client.MetricObjectWithValues<client.MetricValueWithName<string>>> {
    return this.get();
  }
}

// prom-client's defaults that promtool rejects (gauges ending in _total)
const REJECTED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export interface ServerMetrics {
  registry: client.Registry;
  configReloads: client.Counter;
  configReloadFailures: client.Counter;
  configLastReload: client.Gauge;
  controlRequests: client.Counter<'command' | 'result'>;
  controlConnections: client.Counter<'transport'>;
  controlBadFrames: client.Counter<'reason'>;
}

/**
 * Build the registry. `source` is read at every scrape. `defaults` adds
 * prom-client's process metrics (off in tests that count exact lines).
 */
export function createMetrics(source: MetricsSource, opts: { defaults?: boolean; version?: string } = {}): ServerMetrics {
  const registry = new client.Registry();
  const num = (v: bigint): number => Number(v);
  const iface = (): string => source.interfaceName();

  const engineSum = (name: string): number => {
    const e = source.engine();
    if (!e || !e.counterNames().includes(name)) return 0;
    return THREADS.reduce((acc, [t]) => acc + num(e.counter(t, name)), 0);
  };

  const counter = (name: string, help: string, labelNames: string[], read: () => Value[]): void => void sharedCounter(registry, name, help, labelNames, read);
  const gauge = (name: string, help: string, labelNames: string[], read: () => Value[]): void => void sharedGauge(registry, name, help, labelNames, read);

  for (const [c, name] of Object.entries(INTERFACE_COUNTERS)) {
    const what = c.replace('_', ' ');
    counter(name, `Frames/bytes on the engine's interface: ${what} (both engine threads)`, ['interface'], () => (source.engine() ? [{ labels: { interface: iface() }, value: engineSum(c) }] : []));
  }
  counter('reflector_interface_drops_total', 'Packets dropped by the engine, by reason (rf_counter_names drop_*)', ['interface', 'reason'], () => {
    const e = source.engine();
    if (!e) return [];
    return e
      .counterNames()
      .filter((n) => n.startsWith('drop_'))
      .map((n) => ({ labels: { interface: iface(), reason: n.slice(5) }, value: engineSum(n) }));
  });
  counter('reflector_engine_events_total', 'Engine thread events by counter (rf_counter_names other than traffic and drops)', ['thread', 'event'], () => {
    const e = source.engine();
    if (!e) return [];
    const out: Value[] = [];
    for (const n of e.counterNames()) {
      if (n in INTERFACE_COUNTERS || n.startsWith('drop_')) continue;
      for (const [t, label] of THREADS) out.push({ labels: { thread: label, event: n }, value: num(e.counter(t, n)) });
    }
    return out;
  });
  new SharedHistogram(registry, 'reflector_lateness_seconds', 'How late the TX thread sent timed packets (bounds 1us * 2^i); _sum counts each packet at its bucket bound (an upper bound)', () => {
    const e = source.engine();
    return e ? e.histogram(0) : new Array<bigint>(LATENESS_BUCKETS).fill(0n);
  });

  // a relay's totals include the subscribers it had: they do not fall when one is removed
  const sent = (key: keyof OutputTotals) => (): Value[] =>
    source.relays().flatMap((r) => (r.sent ? [{ labels: { relay: r.relay }, value: num(r.sent[key]) }] : []));
  counter('reflector_relay_packets_total', 'Packets sent by a relay to all its subscribers, past ones included', ['relay'], sent('packets'));
  counter('reflector_relay_bytes_total', 'Frame bytes (Ethernet, IP and UDP headers included) sent by a relay to all its subscribers, past ones included', ['relay'], sent('bytes'));
  counter('reflector_relay_dropped_packets_total', 'Packets a relay dropped on the way to its subscribers (all of them, past ones included)', ['relay'], sent('drops'));
  const perRelay = (pick: (r: RelaySample) => bigint) => (): Value[] => source.relays().map((r) => ({ labels: { relay: r.relay }, value: num(pick(r)) }));
  counter('reflector_relay_received_packets_total', "Packets that reached a relay's address and port from an allowed source", ['relay'], perRelay((r) => r.packets));
  counter('reflector_relay_received_bytes_total', 'Frame bytes of the packets that reached a relay from an allowed source', ['relay'], perRelay((r) => r.bytes));
  counter('reflector_relay_not_allowed_packets_total', 'Packets to a relay dropped because their source is outside its prefixes', ['relay'], perRelay((r) => r.notAllowed));
  counter('reflector_relay_rate_limited_packets_total', 'Packets to a relay dropped because they exceeded its max_pps or max_bps', ['relay'], perRelay((r) => r.rateLimited ?? 0n));
  const perOutput = (pick: (o: RelayOutputSample) => bigint) => (): Value[] =>
    source.relayOutputs().map((o) => ({ labels: { relay: o.relay, subscriber: o.subscriber }, value: num(pick(o)) }));
  counter('reflector_relay_subscriber_packets_total', 'Packets sent to one subscriber of a relay', ['relay', 'subscriber'], perOutput((o) => o.packets));
  counter('reflector_relay_subscriber_bytes_total', 'Frame bytes (Ethernet, IP and UDP headers included) sent to one subscriber of a relay', ['relay', 'subscriber'], perOutput((o) => o.bytes));
  counter('reflector_relay_subscriber_drops_total', 'Packets for one subscriber of a relay that were dropped', ['relay', 'subscriber'], perOutput((o) => o.drops));
  const perSession = (pick: (s: SessionSample) => bigint) => (): Value[] => source.sessions().map((s) => ({ labels: { session: s.session }, value: num(pick(s)) }));
  counter('reflector_session_packets_total', 'Packets a session sent', ['session'], perSession((s) => s.packets));
  counter('reflector_session_bytes_total', 'Frame bytes (Ethernet, IP and UDP headers included) a session sent', ['session'], perSession((s) => s.bytes));
  counter('reflector_session_late_packets_total', 'Packets of a session sent after their time', ['session'], perSession((s) => s.late));
  counter('reflector_session_dropped_packets_total', 'Packets of a session dropped (too late or refused)', ['session'], perSession((s) => s.dropped));

  gauge('reflector_ring_used_entries', 'Entries waiting in a shared ring', ['ring'], () => source.rings().map((r) => ({ labels: { ring: r.ring }, value: r.used })));
  gauge('reflector_ring_size_entries', 'Capacity of a shared ring', ['ring'], () => source.rings().map((r) => ({ labels: { ring: r.ring }, value: r.size })));
  gauge('reflector_pool_used_slots', 'Packet pool slots in use (not on a free ring)', [], () => {
    const p = source.pool();
    return p ? [{ value: p.used }] : [];
  });
  gauge('reflector_pool_size_slots', 'Packet pool slots in total', [], () => {
    const p = source.pool();
    return p ? [{ value: p.size }] : [];
  });
  counter('reflector_lane_faults_total', 'Times a lane broke the rules of the shared region, by lane and reason (docs/trust.md)', ['lane', 'reason'], () => {
    const out: Value[] = [];
    for (const l of source.lanes?.() ?? []) for (const [reason, v] of Object.entries(l.faults)) out.push({ labels: { lane: l.lane, reason }, value: num(v) });
    return out;
  });
  gauge('reflector_lane_quarantined', '1 while the engine takes nothing from a lane that broke the rules too often (until the engine restarts)', ['lane'], () =>
    (source.lanes?.() ?? []).map((l) => ({ labels: { lane: l.lane }, value: l.quarantined ? 1 : 0 })),
  );
  counter('reflector_capture_dropped_total', 'Packets a capture (reflector ctl capture) lost because the engine\'s capture ring was full; the relay itself lost none', [], () => {
    const d = source.captureDropped?.() ?? null;
    return d === null ? [] : [{ value: num(d) }];
  });
  gauge('reflector_engine_up', '1 when the engine is running', [], () => [{ value: source.engine() ? 1 : 0 }]);
  gauge('reflector_ready', '1 when the engine runs and the config is applied (/readyz)', [], () => [{ value: source.ready() ? 1 : 0 }]);
  gauge('reflector_relays', 'Relays configured (config and control API)', [], () => [{ value: source.relayCount() }]);
  gauge('reflector_sessions', 'Sessions running (config and control API)', [], () => [{ value: source.sessionCount() }]);
  gauge('reflector_cluster_connected', '1 while this cluster node reaches etcd (watch and lease), 0 while it serves its last state without it; absent outside cluster mode', [], () => {
    const c = source.clusterConnected?.() ?? null;
    return c === null ? [] : [{ value: c ? 1 : 0 }];
  });

  const configReloads = new client.Counter({ name: 'reflector_config_reloads_total', help: 'Config reloads applied', registers: [registry] });
  const configReloadFailures = new client.Counter({
    name: 'reflector_config_reload_failures_total',
    help: 'Config reloads refused (invalid file or failed apply); the running config was kept',
    registers: [registry],
  });
  const configLastReload = new client.Gauge({
    name: 'reflector_config_last_reload_success_timestamp_seconds',
    help: 'Unix time of the last config load that was applied',
    registers: [registry],
  });
  const controlRequests = new client.Counter({
    name: 'reflector_control_requests_total',
    help: 'Control API requests by command and result (ok or an error code)',
    labelNames: ['command', 'result'] as const,
    registers: [registry],
  });
  const controlConnections = new client.Counter({
    name: 'reflector_control_connections_total',
    help: 'Control API connections accepted by transport',
    labelNames: ['transport'] as const,
    registers: [registry],
  });
  const controlBadFrames = new client.Counter({
    name: 'reflector_control_bad_frames_total',
    help: 'Control API frames refused, by reason (oversize, malformed, unauthenticated)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const info = new client.Gauge({ name: 'reflector_build_info', help: 'Reflector version', labelNames: ['version'] as const, registers: [registry] });
  info.set({ version: opts.version ?? 'unknown' }, 1);

  if (opts.defaults ?? true) {
    const defaults = new client.Registry();
    client.collectDefaultMetrics({ register: defaults });
    for (const name of REJECTED_DEFAULTS) defaults.removeSingleMetric(name);
    const merged = client.Registry.merge([registry, defaults]);
    return { registry: merged, configReloads, configReloadFailures, configLastReload, controlRequests, controlConnections, controlBadFrames };
  }
  return { registry, configReloads, configReloadFailures, configLastReload, controlRequests, controlConnections, controlBadFrames };
}

/** One series of the registry: what `reflector ctl stats` shows, under the same names as /metrics. */
export interface SeriesValue {
  name: string;
  labels: Record<string, string>;
  value: bigint;
}

/**
 * Every reflector_* series as /metrics has it at this moment (prom-client's
 * process metrics left out), for the control API's Stats: one set of names.
 * Counter values are integers; gauges that are not (timestamps) are rounded.
 */
export async function seriesOf(registry: client.Registry): Promise<SeriesValue[]> {
  const out: SeriesValue[] = [];
  for (const m of await registry.getMetricsAsJSON()) {
    if (!m.name.startsWith('reflector_')) continue;
    for (const v of m.values as Array<client.MetricValueWithName<string>>) {
      const labels: Record<string, string> = {};
      for (const [k, x] of Object.entries(v.labels ?? {})) if (x !== undefined) labels[k] = String(x);
      out.push({ name: v.metricName ?? m.name, labels, value: BigInt(Math.round(Number.isFinite(v.value) ? v.value : 0)) });
    }
  }
  return out;
}
