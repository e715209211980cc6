// SPDX-License-Identifier: MIT
// Where each relay and session runs, decided by every node alike from the
// same view (the watched keys) and made exclusive by etcd: a node runs an
// object only while it holds the object's placement key, which it creates
// with a create-if-absent transaction bound to its own lease. When a node
// dies its lease expires, etcd deletes its placement keys, and the next node
// in each object's order claims it.
//
// The order of an object's nodes: a relay's (or a pinned session's) `node`
// list, live nodes only, as written; a session without `node`: rendezvous
// hashing over the live nodes. A placement is sticky: an object stays where
// it runs while that node is live and still listed (no fail-back when the
// first node returns; a new node takes only new or orphaned sessions).
import type { RelayConfig, SessionConfig } from '../config/schema';
import type { EntryKind } from './keys';
import { rendezvousOrder } from './rendezvous';

export interface Placed {
  node: string;
  /** the lease the placement key is bound to (hex) */
  lease: string;
}

export interface PlacementView {
  /** registered nodes (their lease is alive) */
  live: ReadonlySet<string>;
  relays: ReadonlyMap<string, RelayConfig>;
  sessions: ReadonlyMap<string, SessionConfig>;
  /** by refKey(kind, name) */
  placements: ReadonlyMap<string, Placed>;
}

export interface Ref {
  kind: EntryKind;
  name: string;
}

export function refKey(kind: EntryKind, name: string): string {
  return `${kind}/${name}`;
}

/** The live nodes that may run an object, in the order they take it. */
export function candidates(kind: EntryKind, name: string, entry: RelayConfig | SessionConfig, live: ReadonlySet<string>): string[] {
  if (entry.node && entry.node.length) return entry.node.filter((n) => live.has(n));
  if (kind === 'relay') return [];
  return rendezvousOrder(name, live);
}

export interface Plan {
  /** vacant objects this node is first in line for: claim them */
  claim: Ref[];
  /** objects placed on this node that must leave it (removed, or this node is no longer listed) */
  release: Ref[];
  /** objects placed on this node that stay */
  keep: Ref[];
}

/** What `me` should do now. */
export function plan(view: PlacementView, me: string): Plan {
  const out: Plan = { claim: [], release: [], keep: [] };
  const consider = (kind: EntryKind, entries: ReadonlyMap<string, RelayConfig | SessionConfig>): void => {
    for (const [name, entry] of entries) {
      const p = view.placements.get(refKey(kind, name));
      const order = candidates(kind, name, entry, view.live);
      if (p) {
        if (p.node !== me) continue;
        if (order.includes(me)) out.keep.push({ kind, name });
        else out.release.push({ kind, name });
      } else if (order[0] === me) out.claim.push({ kind, name });
    }
  };
  consider('relay', view.relays);
  consider('session', view.sessions);
  // placements of objects that are gone from the desired state
  for (const [k, p] of view.placements) {
    if (p.node !== me) continue;
    const slash = k.indexOf('/');
    const kind = k.slice(0, slash) as EntryKind;
    const name = k.slice(slash + 1);
    const entries: ReadonlyMap<string, unknown> = kind === 'relay' ? view.relays : view.sessions;
    if (!entries.has(name)) out.release.push({ kind, name });
  }
  return out;
}

export interface Where extends Ref {
  /** the node holding its placement, null when none does */
  placedOn: string | null;
  /** live nodes in the order they would take it */
  order: string[];
  /** what is wrong, for `reflector ctl status`: nodes that do not exist, nowhere to run */
  problems: string[];
}

/** Where every object runs (or why it does not), for status. */
export function where(view: PlacementView): Where[] {
  const out: Where[] = [];
  const add = (kind: EntryKind, name: string, entry: RelayConfig | SessionConfig): void => {
    const p = view.placements.get(refKey(kind, name));
    const order = candidates(kind, name, entry, view.live);
    const problems: string[] = [];
    for (const n of entry.node ?? []) if (!view.live.has(n)) problems.push(`node "${n}" does not exist (no live node has that name)`);
    if (!p && order.length === 0) problems.push(entry.node ? `not running: none of its nodes (${entry.node.join(', ')}) is live` : 'not running: no live node');
    out.push({ kind, name, placedOn: p?.node ?? null, order, problems });
  };
  for (const [n, r] of view.relays) add('relay', n, r);
  for (const [n, s] of view.sessions) add('session', n, s);
  return out;
}
