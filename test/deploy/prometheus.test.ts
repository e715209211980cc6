// SPDX-License-Identifier: MIT
// A real Prometheus (Debian's, on loopback, data in a temp dir, 1 s scrapes
// and rule evaluation) scrapes a real Reflector with relay and session
// traffic; then every expression of deploy/grafana/reflector.json and of
// deploy/prometheus/alerts.yml goes through Prometheus's HTTP API: each must
// parse and return data (an alert's query without its threshold: healthy
// traffic must not fire it, but the query must find its series). Prometheus
// also loads alerts.yml and reports every rule healthy.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse } from 'yaml';
import { Testbed } from '../helpers/testbed';
import { Peer, ServerProcess, serverUnavailable, sleep, ROOT } from '../server/fixtures/harness';

const PROMETHEUS = '/usr/bin/prometheus';
const RATE_WINDOW = '10s';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

interface QueryAnswer {
  status: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

/** The dashboard's Grafana variables, as the test's single instance fills them. */
function grafanaToPromql(expr: string): string {
  return expr.replaceAll('$__rate_interval', RATE_WINDOW).replaceAll('$instance', '.*');
}

/** `<query> <op> <number>` -> `<query>` (alerts.yml keeps that form; rules.test.ts checks it). */
function withoutThreshold(expr: string): string {
  return expr.replace(/\s(<|>|<=|>=|==|!=)\s+[0-9.e+-]+\s*$/, '').trim();
}

const why = serverUnavailable({ netns: true }) ?? (fs.existsSync(PROMETHEUS) ? null : `${PROMETHEUS} is not installed (Debian package prometheus)`);
if (why) {
  process.stderr.write(`# SKIP dashboard and alert queries on a live Prometheus: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('every dashboard and alert expression returns data from a live Prometheus', { timeout: 150000 }, async (t) => {
    const tb = await Testbed.create(t, { hosts: ['client', 'relay'], links: [['client', 'relay']] });
    const client = tb.addr('client');
    const relayAddr = tb.addr('relay');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-prom-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'reflector.yaml');
    fs.writeFileSync(file, `engine:
  interface: ${tb.iface('relay').name}
  netns: ${tb.ns('relay')}
  workers: 1
metrics:
  listen: 127.0.0.1:0
control:
  socket: ctl.sock
media_root: ${ROOT}
relays:
  - name: cam
    listen: ${relayAddr}:5000
    sources: [${client}/32]
    subscribers: [${client}:6000, ${client}:6001]
sessions:
  - name: movie
    file: ${path.join(ROOT, 'media/sample.ts')}
    to: ${client}:7000
    loop: true
`);
    const peer = new Peer(tb.spawn('client', [process.execPath, path.join(ROOT, 'dist/test/server/fixtures/udp-peer.js'), client], { stdio: ['pipe', 'pipe', 'pipe'] }));
    t.teardown(() => peer.close());
    await peer.ready;
    await peer.call('bind', { ports: [6000, 6001, 7000] });
    const server = new ServerProcess(['serve', '--config', file]);
    t.teardown(() => server.kill('SIGKILL'));
    const metricsPort = await server.ready();

    // a reload, so the reload counters have moved (and a refused one)
    const cfg = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, cfg.replace('subscribers: [', `subscribers: [${client}:6002, `));
    await server.waitLog((l) => l.msg === 'config reloaded', 10000);

    const promPort = await freePort();
    const rules = path.join(ROOT, 'deploy', 'prometheus', 'alerts.yml');
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - ${rules}
scrape_configs:
  - job_name: reflector
    static_configs:
      - targets: ['127.0.0.1:${metricsPort}']
`);
    const promLog: string[] = [];
    const prom = spawn(PROMETHEUS, [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`, '--storage.tsdb.retention.time=1h', '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    prom.stderr!.on('data', (b: Buffer) => promLog.push(b.toString()));
    const promExit = new Promise<void>((r) => prom.on('exit', () => r()));
    t.teardown(async () => {
      if (prom.exitCode === null) {
        prom.kill('SIGTERM');
        await promExit;
      }
    });
    const api = async (p: string): Promise<QueryAnswer> => {
      const r = await fetch(`http://127.0.0.1:${promPort}${p}`);
      return (await r.json()) as QueryAnswer;
    };
    const query = (q: string): Promise<QueryAnswer> => api(`/api/v1/query?query=${encodeURIComponent(q)}`);

    // Prometheus up and scraping the server
    const deadline = Date.now() + 30000;
    let up = false;
    while (!up && Date.now() < deadline) {
      await sleep(500);
      up = await query('up{job="reflector"} == 1').then((a) => (a.data?.result.length ?? 0) > 0, () => false);
    }
    t.ok(up, `Prometheus scrapes the server${up ? '' : `: ${promLog.join('').slice(-2000)}`}`);
    if (!up) return;

    // relay traffic over several scrapes (the session sends all along), bounded in count
    let seq = 0;
    for (let i = 0; i < 6; i++) {
      await peer.call('send', { to: `${relayAddr}:5000`, count: 400, pps: 400, first: seq });
      seq += 400;
    }
    await sleep(2000);

    const dash = JSON.parse(fs.readFileSync(path.join(ROOT, 'deploy', 'grafana', 'reflector.json'), 'utf8')) as {
      panels: Array<{ type: string; title: string; targets?: Array<{ expr: string; legendFormat?: string }> }>;
      templating: { list: Array<{ name: string; type: string; definition?: string }> };
    };
    let checked = 0;
    for (const p of dash.panels) {
      for (const target of p.targets ?? []) {
        const q = grafanaToPromql(target.expr);
        const a = await query(q);
        t.equal(a.status, 'success', `dashboard "${p.title}": ${q} parses${a.error ? `: ${a.error}` : ''}`);
        t.ok((a.data?.result.length ?? 0) > 0, `dashboard "${p.title}": ${q} returns data`);
        checked++;
      }
    }
    for (const v of dash.templating.list.filter((x) => x.type === 'query')) {
      const m = /^label_values\((\w+), (\w+)\)$/.exec(v.definition ?? '');
      t.ok(m, `variable ${v.name}: label_values(metric, label)`);
      if (!m) continue;
      const a = await query(m[1]);
      t.ok(a.data?.result.some((r) => r.metric[m[2]]), `variable ${v.name}: ${m[1]} has the label ${m[2]}`);
    }
    t.ok(checked >= 20, `${checked} dashboard queries run`);

    const doc = parse(fs.readFileSync(rules, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    for (const r of doc.groups.flatMap((g) => g.rules)) {
      const whole = await query(r.expr);
      t.equal(whole.status, 'success', `alert ${r.alert}: ${r.expr} parses${whole.error ? `: ${whole.error}` : ''}`);
      const lhs = withoutThreshold(r.expr);
      const a = await query(lhs);
      t.ok((a.data?.result.length ?? 0) > 0, `alert ${r.alert}: ${lhs} returns data`);
    }
    // the rules as Prometheus itself loaded and evaluated them
    const loaded = (await (await fetch(`http://127.0.0.1:${promPort}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> } };
    const lr = loaded.data.groups.flatMap((g) => g.rules);
    t.equal(lr.length, doc.groups.flatMap((g) => g.rules).length, 'Prometheus loaded every rule');
    for (const r of lr) t.equal(r.health, 'ok', `rule ${r.name} evaluates${r.lastError ? `: ${r.lastError}` : ''}`);
    // healthy traffic fires nothing
    const firing = (await query('ALERTS{alertstate="firing"}')).data?.result ?? [];
    t.same(firing.map((f) => f.metric.alertname), [], 'no alert fires on a healthy server');
  });
}
