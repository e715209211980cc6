// SPDX-License-Identifier: MIT
// The reload diff names only what changed, so unchanged outputs get no policy message.
import t from 'tap';
import { parseConfig } from '../../src/config/validate';
import { diffConfig, isEmptyDiff } from '../../src/config/diff';
import type { Config } from '../../src/config/schema';

const cfg = (yaml: string): Config => {
  const r = parseConfig(yaml, '/tmp/rf-diff/reflector.yaml', { checkFiles: false });
  if (!r.config) throw new Error(JSON.stringify(r.problems));
  return r.config;
};

const base = `
relays:
  - name: a
    listen: 127.0.0.1:5000
    sources: [127.0.0.1/32]
    subscribers: [127.0.0.1:6000, 127.0.0.1:6001]
  - name: b
    listen: 127.0.0.1:5001
    sources: [127.0.0.1/32]
sessions:
  - name: s1
    file: x.ts
    to: 127.0.0.1:7000
`;

t.test('identical configs: empty diff', async (t) => {
  const d = diffConfig(cfg(base), cfg(base));
  t.ok(isEmptyDiff(d));
  t.same(d.restartRequired, []);
});

t.test('subscriber added and removed: only those', async (t) => {
  const d = diffConfig(cfg(base), cfg(base.replace('127.0.0.1:6001', '127.0.0.1:6002')));
  t.same(d.relaysChanged, [{ name: 'a', subscribersAdded: ['127.0.0.1:6002'], subscribersRemoved: ['127.0.0.1:6001'] }]);
  t.same(d.relaysAdded, []);
  t.same(d.relaysRemoved, []);
});

t.test('listen or sources changed: the relay is replaced', async (t) => {
  const d = diffConfig(cfg(base), cfg(base.replace('127.0.0.1:5001', '127.0.0.1:5002')));
  t.same(d.relaysRemoved, ['b']);
  t.same(d.relaysAdded.map((r) => r.name), ['b']);
  t.same(d.relaysChanged, []);
});

t.test('sessions added, removed, changed', async (t) => {
  const next = base.replace('to: 127.0.0.1:7000', 'to: 127.0.0.1:7001') + '  - name: s2\n    file: y.ts\n    to: 127.0.0.1:7002\n';
  const d = diffConfig(cfg(base), cfg(next));
  t.same(d.sessionsRemoved, ['s1']);
  t.same(d.sessionsAdded.map((s) => s.name).sort(), ['s1', 's2']);
});

t.test('engine keys need a restart', async (t) => {
  const d = diffConfig(cfg(base), cfg('engine:\n  workers: 4\n' + base));
  t.same(d.restartRequired, ['engine']);
  t.ok(isEmptyDiff(d));
});
