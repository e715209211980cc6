// SPDX-License-Identifier: MIT
// deploy/prometheus/alerts.yml passes `promtool check rules`, and
// `promtool test rules` (deploy/prometheus/alerts.test.yml) shows when each
// alert fires and when it stays quiet. The dashboard is valid JSON whose
// every panel has a Prometheus query (prometheus.test.ts runs them).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

const ROOT = join(__dirname, '..', '..', '..');
const DIR = join(ROOT, 'deploy', 'prometheus');
const PROMTOOL = '/usr/bin/promtool';

interface Rules {
  groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }> }>;
}

t.test('promtool check rules and test rules', { skip: existsSync(PROMTOOL) ? false : `${PROMTOOL} is not installed (Debian package prometheus)` }, async (t) => {
  const check = spawnSync(PROMTOOL, ['check', 'rules', 'alerts.yml'], { cwd: DIR, encoding: 'utf8' });
  t.equal(check.status, 0, `promtool check rules: ${check.stdout}${check.stderr}`);
  const test = spawnSync(PROMTOOL, ['test', 'rules', 'alerts.test.yml'], { cwd: DIR, encoding: 'utf8' });
  t.equal(test.status, 0, `promtool test rules: ${test.stdout}${test.stderr}`);
  t.match(test.stdout, /SUCCESS/);
});

t.test('every alert the issue names, each tested, each with severity and text', async (t) => {
  const rules = parse(readFileSync(join(DIR, 'alerts.yml'), 'utf8')) as Rules;
  const all = rules.groups.flatMap((g) => g.rules);
  const names = all.map((r) => r.alert);
  for (const want of ['ReflectorDropsRising', 'ReflectorLatenessP99High', 'ReflectorConfigReloadFailed', 'ReflectorEngineDown']) t.ok(names.includes(want), `${want} exists`);
  const tests = readFileSync(join(DIR, 'alerts.test.yml'), 'utf8');
  for (const r of all) {
    t.ok(r.labels?.severity, `${r.alert} has a severity`);
    t.ok(r.annotations?.summary && r.annotations.description, `${r.alert} has a summary and a description`);
    t.match(tests, new RegExp(`alertname: ${r.alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`), `${r.alert} is tested firing`);
    t.match(r.expr, /\s(<|>|<=|>=|==|!=)\s+[0-9.e+-]+\s*$/, `${r.alert}: <query> <comparison> <number> (its query is run on live data)`);
  }
});

t.test('the dashboard: valid JSON, a query in every panel, the panels the operator needs', async (t) => {
  const d = JSON.parse(readFileSync(join(ROOT, 'deploy', 'grafana', 'reflector.json'), 'utf8')) as { uid: string; panels: Array<{ type: string; title: string; targets?: Array<{ expr: string }> }> };
  t.equal(d.uid, 'reflector');
  const panels = d.panels.filter((p) => p.type !== 'row');
  for (const p of panels) t.ok(p.targets?.length && p.targets.every((x) => x.expr), `${p.title}: has queries`);
  const exprs = panels.flatMap((p) => p.targets!.map((x) => x.expr)).join('\n');
  for (const m of ['reflector_relay_received_packets_total', 'reflector_relay_packets_total', 'reflector_relay_bytes_total', 'reflector_interface_drops_total',
    'reflector_relay_subscriber_packets_total', 'reflector_lateness_seconds_bucket', 'reflector_ring_used_entries', 'reflector_config_reloads_total']) {
    t.match(exprs, m, `a panel shows ${m}`);
  }
  t.ok(panels.some((p) => p.type === 'heatmap' && p.targets!.some((x) => /reflector_lateness_seconds_bucket/.test(x.expr))), 'lateness as a heatmap');
});
