// SPDX-License-Identifier: MIT
// `reflector ctl --etcd URL apply FILE`: make the desired state in etcd what
// FILE says, declaratively (like kubectl apply): entries FILE adds are
// created, entries whose value differs are replaced, entries FILE no longer
// names are deleted (with their sessions' checkpoints), and entries that did
// not change are not written at all (so nodes see no event for them).
//
// The writes go in one transaction that also checks every key is still as
// read (optimistic concurrency: a concurrent apply or edit makes it fail,
// and it is read and tried again). etcd takes at most 128 operations per
// transaction by default: a larger change is split into several, each still
// checked, and the result says so.
import type { Etcd3 } from 'etcd3';
import { ReflectorError } from '../errors';
import type { StoredEntry } from './desired';
import { ClusterKeys, type EntryKind } from './keys';

export interface ApplyChange {
  kind: EntryKind;
  name: string;
  op: 'add' | 'change' | 'remove';
}

export interface ApplyResult {
  changes: ApplyChange[];
  unchanged: number;
  /** the store's revision after the writes (before them for a dry run or no change) */
  revision: number;
  /** transactions used (1 = atomic) */
  transactions: number;
}

/** entries per transaction: at most 2 writes each, below etcd's default --max-txn-ops of 128 */
const OPS_PER_TXN = 60;
const ATTEMPTS = 3;

interface Op {
  change: ApplyChange | null;
  /** every key the plan read is checked, unchanged ones too: the result is the file, whatever ran in between */
  compare: [string, 'Create' | 'Mod', number];
  /** in the same transaction as the compare (a removed session and its checkpoint go together) */
  writes: Array<{ put: string; value: string } | { del: string }>;
}

export async function applyEntries(client: Etcd3, keys: ClusterKeys, entries: StoredEntry[], opts: { dryRun?: boolean } = {}): Promise<ApplyResult> {
  for (let attempt = 1; ; attempt++) {
    const { ops, unchanged, revision } = await planApply(client, keys, entries);
    const changes = ops.flatMap((o) => (o.change ? [o.change] : []));
    if (opts.dryRun || !ops.some((o) => o.writes.length)) return { changes, unchanged, revision, transactions: 0 };
    let last = revision;
    let txns = 0;
    let conflict = false;
    for (let i = 0; i < ops.length; i += OPS_PER_TXN) {
      const chunk = ops.slice(i, i + OPS_PER_TXN);
      const [k0, t0, v0] = chunk[0].compare;
      let txn = client.if(k0, t0, '==', v0);
      for (const o of chunk.slice(1)) txn = txn.and(o.compare[0], o.compare[1], '==', o.compare[2]);
      const writes = chunk.flatMap((o) => o.writes.map((w) => ('put' in w ? client.put(w.put).value(w.value) : client.delete().key(w.del))));
      const r = await txn.then(...writes).commit();
      txns++;
      last = Number(r.header.revision);
      if (!r.succeeded) {
        conflict = true;
        break;
      }
    }
    if (!conflict) return { changes, unchanged, revision: last, transactions: txns };
    if (attempt >= ATTEMPTS) {
      throw new ReflectorError('ERR_CLUSTER', `apply: the desired state changed under this apply ${ATTEMPTS} times in a row (another apply or edit is running); nothing more was written, run it again`);
    }
  }
}

async function planApply(client: Etcd3, keys: ClusterKeys, entries: StoredEntry[]): Promise<{ ops: Op[]; unchanged: number; revision: number }> {
  // relays/ and sessions/ in one listing: one revision ('0' is the byte after '/')
  const r = await client.getAll().inRange({ start: keys.entries('relay'), end: `${keys.prefix}sessions0` }).exec();
  const current = new Map<string, { value: string; mod: number }>();
  for (const kv of r.kvs) {
    const k = kv.key.toString();
    const p = keys.parse(k);
    if (p && (p.t === 'relay' || p.t === 'session')) current.set(k, { value: kv.value.toString(), mod: Number(kv.mod_revision) });
  }
  const ops: Op[] = [];
  let unchanged = 0;
  const wanted = new Set<string>();
  for (const e of entries) {
    const key = keys.entry(e.kind, e.name);
    wanted.add(key);
    const cur = current.get(key);
    if (!cur) ops.push({ change: { kind: e.kind, name: e.name, op: 'add' }, compare: [key, 'Create', 0], writes: [{ put: key, value: e.value }] });
    else if (cur.value !== e.value) ops.push({ change: { kind: e.kind, name: e.name, op: 'change' }, compare: [key, 'Mod', cur.mod], writes: [{ put: key, value: e.value }] });
    else {
      unchanged++;
      ops.push({ change: null, compare: [key, 'Mod', cur.mod], writes: [] });
    }
  }
  for (const [key, cur] of current) {
    if (wanted.has(key)) continue;
    const p = keys.parse(key) as { t: EntryKind; name: string };
    // a removed session's checkpoint goes with it (a later session of that name starts afresh)
    const writes = [{ del: key }, ...(p.t === 'session' ? [{ del: keys.checkpoint(p.name) }] : [])];
    ops.push({ change: { kind: p.t, name: p.name, op: 'remove' }, compare: [key, 'Mod', cur.mod], writes });
  }
  return { ops, unchanged, revision: Number(r.header.revision) };
}
