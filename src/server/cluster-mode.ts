// SPDX-License-Identifier: MIT
// The server in cluster mode (cluster.etcd set): its relays and sessions
// come from etcd (src/cluster/node.ts) instead of its file, and each desired
// state goes through RunningState.applyConfig, the same path as a reload:
// only the difference is applied, what did not change is not touched.
import type { Config } from '../config/schema';
import { ClusterNode } from '../cluster/node';
import type { DesiredStateSource } from '../cluster/source';
import type { Logger } from '../log';
import type { ServerDeps } from './deps';
import type { RunningState } from './state';

export interface ClusterModeOptions {
  config: Config;
  state: RunningState;
  deps: ServerDeps;
  log: Logger;
  version: string;
  onFatal: (err: Error) => void;
}

/** Join the cluster and apply what it places here; resolves after the first apply (or once etcd is found unreachable). */
export async function startClusterMode(o: ClusterModeOptions): Promise<DesiredStateSource> {
  const c = o.config;
  const node = new ClusterNode({
    cluster: c.cluster,
    engine: { interface: c.engine.interface, netns: c.engine.netns },
    version: o.version,
    log: o.log,
    positions: async () => (await o.deps.sessions.positions?.()) ?? new Map(),
    onFatal: o.onFatal,
  });
  await node.start(async (desired) => {
    const report = await o.state.applyConfig({ ...c, relays: desired.relays, sessions: desired.sessions });
    const d = report.diff;
    if (d.relaysAdded.length || d.relaysRemoved.length || d.relaysChanged.length || d.sessionsAdded.length || d.sessionsRemoved.length) {
      o.log.info('cluster state applied', {
        revision: node.revision,
        relaysAdded: d.relaysAdded.map((r) => r.name),
        relaysRemoved: d.relaysRemoved,
        relaysChanged: d.relaysChanged.map((r) => r.name),
        sessionsAdded: d.sessionsAdded.map((s) => s.name),
        sessionsRemoved: d.sessionsRemoved,
      });
    }
    // failed steps were logged by RunningState; the next change retries them
    if (report.errors.length) o.log.error('cluster state applied with errors', { revision: node.revision, errors: report.errors.map((e) => `${e.what}: ${(e.err as Error)?.message ?? String(e.err)}`) });
  });
  return node;
}
