// SPDX-License-Identifier: MIT
// The seam for "the control API of any node writes through to etcd": in
// cluster mode a node's control requests (add or remove a relay, subscribe,
// unsubscribe, start or stop a session) edit the desired state in etcd
// instead of the node's own running state; the change reaches the node that
// runs the object through its watch, like any `ctl apply`.
//
// Each request edits one entry: read it, change it, write it only if it did
// not change since (a transaction comparing its revision; re-read and tried
// again when it did). The new value is validated by the same rules as
// everything else in the desired state before it is written. Errors carry a
// reason the control API maps to its own codes (exists, not found, invalid,
// conflict).
import type { Etcd3 } from 'etcd3';
import { ReflectorError } from '../errors';
import { canonical, parseEntry } from './desired';
import type { ClusterKeys, EntryKind } from './keys';

export type WriteRefusal = 'exists' | 'not_found' | 'invalid' | 'conflict';

export class ClusterWriteError extends ReflectorError {
  constructor(
    readonly reason: WriteRefusal,
    message: string,
  ) {
    super('ERR_CLUSTER', message);
  }
}

/** A relay as the control API gives it (addresses as text). */
export interface RelayRequest {
  name: string;
  listen: string;
  sources: string[];
  subscribers?: string[];
  /** default: the node that took the request */
  node?: string[];
}

export interface SessionRequest {
  name: string;
  /** absolute path */
  file: string;
  to: string;
  format?: string;
  loop?: boolean;
  /** default: rendezvous hashing */
  node?: string[];
}

const ATTEMPTS = 5;

export class ClusterWriter {
  constructor(
    private readonly client: Etcd3,
    private readonly keys: ClusterKeys,
    /** the node whose control API this is: new relays run there unless told otherwise */
    private readonly node: string,
  ) {}

  addRelay(r: RelayRequest): Promise<void> {
    return this.create('relay', r.name, { name: r.name, listen: r.listen, sources: r.sources, subscribers: r.subscribers ?? [], node: r.node ?? [this.node] });
  }

  removeRelay(name: string): Promise<void> {
    return this.remove('relay', name);
  }

  startSession(s: SessionRequest): Promise<void> {
    const v: Record<string, unknown> = { name: s.name, file: s.file, to: s.to, format: s.format ?? 'mpegts', loop: s.loop ?? false };
    if (s.node) v.node = s.node;
    return this.create('session', s.name, v);
  }

  stopSession(name: string): Promise<void> {
    return this.remove('session', name);
  }

  subscribe(relay: string, subscriber: string): Promise<void> {
    return this.edit('relay', relay, (v) => {
      const subs = (v.subscribers as string[] | undefined) ?? [];
      if (subs.includes(subscriber)) throw new ClusterWriteError('exists', `${subscriber} already subscribes to relay "${relay}"`);
      return { ...v, subscribers: [...subs, subscriber] };
    });
  }

  unsubscribe(relay: string, subscriber: string): Promise<void> {
    return this.edit('relay', relay, (v) => {
      const subs = (v.subscribers as string[] | undefined) ?? [];
      if (!subs.includes(subscriber)) throw new ClusterWriteError('not_found', `${subscriber} does not subscribe to relay "${relay}"`);
      return { ...v, subscribers: subs.filter((s) => s !== subscriber) };
    });
  }

  private valid(kind: EntryKind, name: string, v: Record<string, unknown>): string {
    const text = canonical(v);
    const r = parseEntry(kind, name, text);
    if (r.problems.length) throw new ClusterWriteError('invalid', `${kind} "${name}": ${r.problems.join('; ')}`);
    return text;
  }

  private async create(kind: EntryKind, name: string, v: Record<string, unknown>): Promise<void> {
    const key = this.keys.entry(kind, name);
    const text = this.valid(kind, name, v);
    const r = await this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(text)).commit();
    if (!r.succeeded) throw new ClusterWriteError('exists', `${kind} "${name}" already exists in the cluster`);
  }

  private async remove(kind: EntryKind, name: string): Promise<void> {
    const key = this.keys.entry(kind, name);
    const ops = [this.client.delete().key(key), ...(kind === 'session' ? [this.client.delete().key(this.keys.checkpoint(name))] : [])];
    const r = await this.client.if(key, 'Create', '>', 0).then(...ops).commit();
    if (!r.succeeded) throw new ClusterWriteError('not_found', `no ${kind} named "${name}" in the cluster`);
  }

  private async edit(kind: EntryKind, name: string, change: (v: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
    const key = this.keys.entry(kind, name);
    for (let i = 0; i < ATTEMPTS; i++) {
      const cur = await this.client.get(key).exec();
      const kv = cur.kvs[0];
      if (!kv) throw new ClusterWriteError('not_found', `no ${kind} named "${name}" in the cluster`);
      let v: Record<string, unknown>;
      try {
        v = JSON.parse(kv.value.toString()) as Record<string, unknown>;
      } catch {
        throw new ClusterWriteError('invalid', `${key} holds no valid ${kind} (revision ${kv.mod_revision}); apply a valid one first`);
      }
      const text = this.valid(kind, name, change(v));
      const r = await this.client.if(key, 'Mod', '==', kv.mod_revision).then(this.client.put(key).value(text)).commit();
      if (r.succeeded) return;
    }
    throw new ClusterWriteError('conflict', `${kind} "${name}" changed under ${ATTEMPTS} edits in a row; try again`);
  }
}
