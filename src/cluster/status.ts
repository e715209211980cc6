// SPDX-License-Identifier: MIT
// `reflector ctl --etcd URL status`: the cluster as etcd has it, from one
// listing of the prefix: the nodes and their leases, every relay and
// session with the node it runs on, its checkpoint, and what is wrong
// (invalid values, objects placed on nodes that do not exist, objects with
// nowhere to run).
import type { Etcd3 } from 'etcd3';
import { formatEndpoint } from '../net/address';
import { silentLogger } from '../log';
import { decodeCheckpoint, type Checkpoint } from './checkpoints';
import type { ClusterKeys, EntryKind } from './keys';
import { where } from './placement';
import { ClusterState } from './state';
import type { KV } from './view';

export interface NodeStatus {
  name: string;
  lease: string;
  /** seconds left on the lease, and its TTL (-1 when etcd did not say) */
  ttl: number;
  grantedTtl: number;
  host?: string;
  pid?: number;
  version?: string;
  started?: string;
  /** relays and sessions placed on it */
  relays: number;
  sessions: number;
}

export interface ObjectStatus {
  kind: EntryKind;
  name: string;
  /** "ADDR:PORT": a relay's listen, a session's destination */
  address: string;
  node: string[] | null;
  placedOn: string | null;
  checkpoint?: Checkpoint;
  problems: string[];
}

export interface ClusterStatus {
  revision: number;
  nodes: NodeStatus[];
  objects: ObjectStatus[];
  /** "key (revision R): problem" */
  invalid: string[];
}

export async function clusterStatus(client: Etcd3, keys: ClusterKeys): Promise<ClusterStatus> {
  const r = await client.getAll().prefix(keys.prefix).exec();
  const kvs = new Map<string, KV>();
  const checkpoints = new Map<string, Checkpoint>();
  for (const kv of r.kvs) {
    const k = kv.key.toString();
    const p = keys.parse(k);
    if (p?.t === 'checkpoint') {
      const c = decodeCheckpoint(kv.value.toString());
      if (c) checkpoints.set(p.name, c);
      continue;
    }
    kvs.set(k, { value: kv.value.toString(), mod: Number(kv.mod_revision), create: Number(kv.create_revision), lease: kv.lease });
  }
  const state = new ClusterState(keys, silentLogger);
  state.load(kvs);
  const objects: ObjectStatus[] = where(state).map((w) => {
    const e = w.kind === 'relay' ? state.relays.get(w.name)! : state.sessions.get(w.name)!;
    const address = formatEndpoint('listen' in e ? e.listen : e.to);
    return { kind: w.kind, name: w.name, address, node: e.node ?? null, placedOn: w.placedOn, ...(w.kind === 'session' && checkpoints.has(w.name) ? { checkpoint: checkpoints.get(w.name) } : {}), problems: w.problems };
  });
  const nodes: NodeStatus[] = [];
  for (const [name, n] of [...state.nodes].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: n.lease }).then(
      (x) => [Number(x.TTL), Number(x.grantedTTL)],
      () => [-1, -1],
    );
    const on = objects.filter((o) => o.placedOn === name);
    nodes.push({
      name,
      lease: BigInt(n.lease).toString(16),
      ttl: ttl[0],
      grantedTtl: ttl[1],
      host: n.info.host,
      pid: n.info.pid,
      version: n.info.version,
      started: n.info.started,
      relays: on.filter((o) => o.kind === 'relay').length,
      sessions: on.filter((o) => o.kind === 'session').length,
    });
  }
  const invalid = [...state.invalid.values()].map((i) => `${i.key} (revision ${i.revision}): ${i.problems.join('; ')}`);
  return { revision: Number(r.header.revision), nodes, objects, invalid };
}

/** The status as text, one object per line. */
export function formatStatus(s: ClusterStatus, now = Date.now()): string {
  const out: string[] = [`revision ${s.revision}`, `nodes (${s.nodes.length}):`];
  for (const n of s.nodes) {
    out.push(`  ${n.name}  lease ${n.lease} ${n.ttl}/${n.grantedTtl} s  ${n.relays} relay(s), ${n.sessions} session(s)  host ${n.host ?? '?'} pid ${n.pid ?? '?'} version ${n.version ?? '?'}`);
  }
  for (const kind of ['relay', 'session'] as const) {
    const list = s.objects.filter((o) => o.kind === kind);
    out.push(`${kind}s (${list.length}):`);
    for (const o of list) {
      const cp = o.checkpoint?.ended ? `  ENDED (${((now - o.checkpoint.at) / 1000).toFixed(1)} s ago, on ${o.checkpoint.node})` : o.checkpoint ? `  at packet ${o.checkpoint.packet} pass ${o.checkpoint.pass} (${((now - o.checkpoint.at) / 1000).toFixed(1)} s ago, from ${o.checkpoint.node})` : '';
      const nodes = o.node ? `node ${o.node.join(', ')}` : 'rendezvous';
      out.push(`  ${o.name}  ${kind === 'relay' ? 'listen' : 'to'} ${o.address}  ${nodes}  ${o.placedOn ? `on ${o.placedOn}` : 'NOT RUNNING'}${cp}`);
    }
  }
  const problems = [...s.objects.flatMap((o) => o.problems.map((p) => `${o.kind} ${o.name}: ${p}`)), ...s.invalid.map((i) => `invalid value ${i}`)];
  if (problems.length) out.push(`problems (${problems.length}):`, ...problems.map((p) => `  ${p}`));
  return out.join('\n') + '\n';
}
