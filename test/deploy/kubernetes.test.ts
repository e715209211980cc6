// SPDX-License-Identifier: MIT
// deploy/kubernetes/daemonset.yaml: host networking, only the engine's
// capabilities, probes on /readyz and /healthz at the metrics port the
// config sets, the config mounted as a folder (a subPath mount never sees a
// ConfigMap update), and the ConfigMap's reflector.yaml is a valid config.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/validate';

const ROOT = join(__dirname, '..', '..', '..');
type Doc = { kind: string; metadata: { name: string }; data?: Record<string, string>; spec?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy', 'kubernetes', 'daemonset.yaml'), 'utf8')).map((d) => {
  t.same(d.errors, [], 'YAML parses');
  return d.toJS() as Doc;
});

t.test('the ConfigMap holds a valid config', async (t) => {
  const cm = docs.find((d) => d.kind === 'ConfigMap');
  t.ok(cm?.data?.['reflector.yaml'], 'ConfigMap with reflector.yaml');
  const r = parseConfig(cm!.data!['reflector.yaml'], '/etc/reflector/reflector.yaml', { checkFiles: false });
  t.same(r.problems, [], 'no problems');
  t.equal(r.config?.metrics.listen?.port, 9464);
  t.equal(r.config?.metrics.listen?.address, '0.0.0.0', 'reachable on the node address (host network)');
});

t.test('the DaemonSet: host network, capabilities, probes, config as a folder', async (t) => {
  const ds = docs.find((d) => d.kind === 'DaemonSet')!;
  t.ok(ds, 'a DaemonSet');
  const pod = ds.spec.template.spec;
  t.equal(pod.hostNetwork, true, 'hostNetwork');
  t.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
  const c = pod.containers[0];
  t.same(c.securityContext.capabilities.drop, ['ALL']);
  t.same([...c.securityContext.capabilities.add].sort(), ['BPF', 'NET_ADMIN', 'NET_RAW', 'PERFMON'], 'the unit\'s ambient set, no more');
  t.equal(c.securityContext.allowPrivilegeEscalation, false);
  t.equal(c.readinessProbe.httpGet.path, '/readyz');
  t.equal(c.livenessProbe.httpGet.path, '/healthz');
  t.equal(c.ports.find((p: { name: string }) => p.name === c.readinessProbe.httpGet.port)?.containerPort, 9464);
  const mount = c.volumeMounts.find((m: { name: string }) => m.name === 'config');
  t.equal(mount.mountPath, '/etc/reflector');
  t.notOk(mount.subPath, 'no subPath (it would never see an update)');
  t.same(c.command.slice(-2), ['--config', '/etc/reflector/reflector.yaml']);
  t.equal(pod.volumes.find((v: { name: string }) => v.name === 'config').configMap.name, docs.find((d) => d.kind === 'ConfigMap')!.metadata.name);
  t.same(ds.spec.selector.matchLabels, ds.spec.template.metadata.labels, 'the selector matches the pods');
});
