// SPDX-License-Identifier: MIT
// A node's registration: PREFIX/nodes/NODE, bound to the node's lease,
// created with a create-if-absent transaction. Two live nodes with one name
// would both claim the same objects, so the second refuses to start.
//
// A node restarted after a crash finds its own old key, still held by the
// old process's lease for up to lease_s: it waits that long (once) for the
// lease to run out before it decides the name is taken.
import * as os from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { ReflectorError } from '../errors';
import type { Logger } from '../log';
import type { ClusterKeys } from './keys';
import type { NodeLease } from './node-lease';

export interface NodeInfo {
  node: string;
  host: string;
  pid: number;
  version: string;
  /** ISO time the process registered first */
  started: string;
  /** random per process: tells our own key from another process's */
  instance: string;
}

export function nodeInfo(node: string, version: string): NodeInfo {
  return { node, host: os.hostname(), pid: process.pid, version, started: new Date().toISOString(), instance: randomUUID() };
}

export class NodeNameTaken extends ReflectorError {
  constructor(readonly holder: Partial<NodeInfo>, node: string, lease: string) {
    const who = [holder.host && `host ${holder.host}`, holder.pid && `pid ${holder.pid}`, holder.started && `since ${holder.started}`].filter(Boolean).join(', ');
    super('ERR_CLUSTER', `cluster.node: the name "${node}" is held by another live node (${who || 'unknown'}; lease ${lease}): two nodes with one name would run the same relays and sessions. Give this node its own cluster.node.`);
  }
}

/** Register `info` under `lease`; throws NodeNameTaken when a live node holds the name. */
export async function register(client: Etcd3, keys: ClusterKeys, info: NodeInfo, lease: NodeLease, log: Logger, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): Promise<void> {
  const key = keys.node(info.node);
  const value = JSON.stringify(info);
  let waited = false;
  for (;;) {
    const id = lease.id;
    if (id === null) throw new ReflectorError('ERR_CLUSTER', 'register: no lease granted');
    const r = await client.if(key, 'Create', '==', 0).then(client.put(key).value(value).lease(id)).else(client.get(key)).commit();
    if (r.succeeded) {
      log.info('cluster node registered', { node: info.node, key, lease: id });
      return;
    }
    const kv = r.responses[0]?.response_range?.kvs?.[0];
    if (!kv) continue; // deleted in between: try again
    let holder: Partial<NodeInfo> = {};
    try {
      holder = JSON.parse(kv.value.toString()) as Partial<NodeInfo>;
    } catch {
      // someone wrote something else there: it is still taken
    }
    if (holder.instance === info.instance) {
      // our own key under an older lease of ours (we re-granted): move it to the new lease
      const moved = await client.if(key, 'Mod', '==', kv.mod_revision).then(client.put(key).value(value).lease(id)).commit();
      if (moved.succeeded) return;
      continue;
    }
    if (waited) throw new NodeNameTaken(holder, info.node, kv.lease);
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: kv.lease }).then((t) => Number(t.TTL), () => -1);
    waited = true;
    // etcd deletes an expired lease's keys within about half a second of its expiry
    const wait = Math.max(ttl, 0) + 1;
    log.warn('cluster node name held by another lease; waiting for it to expire (a crashed predecessor) before refusing', { node: info.node, holder, wait_s: wait });
    await sleep(wait * 1000);
  }
}
