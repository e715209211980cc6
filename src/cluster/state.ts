// SPDX-License-Identifier: MIT
// The cluster as the keys say it is, typed: live nodes, the desired relays
// and sessions (validated by the config's own rules, src/cluster/desired.ts)
// and who holds which placement. Built from a node's watched view or from
// one listing (reflector ctl status).
//
// A value that does not validate is logged with its key and revision and
// ignored: the rest applies, and an object that had a valid value keeps it
// (as a config reload that finds an invalid file keeps the running config).
import type { RelayConfig, SessionConfig } from '../config/schema';
import type { Logger } from '../log';
import { parseEntry } from './desired';
import type { ClusterKeys, EntryKind } from './keys';
import { refKey, type Placed, type PlacementView } from './placement';
import type { NodeInfo } from './registration';
import type { KV } from './view';

export interface LiveNode {
  info: Partial<NodeInfo>;
  lease: string;
  /** revision the registration was made at */
  since: number;
}

export interface InvalidValue {
  key: string;
  revision: number;
  problems: string[];
}

export class ClusterState implements PlacementView {
  readonly nodes = new Map<string, LiveNode>();
  readonly relays = new Map<string, RelayConfig>();
  readonly sessions = new Map<string, SessionConfig>();
  readonly placements = new Map<string, Placed>();
  /** by key */
  readonly invalid = new Map<string, InvalidValue>();
  /** kv revision of each entry's last valid value, by refKey */
  readonly entryRevision = new Map<string, number>();

  constructor(
    private readonly keys: ClusterKeys,
    private readonly log: Logger,
  ) {}

  /** names of the live nodes (the keys of `nodes`) */
  readonly live = new Set<string>();

  /** Bring `keys` up to date from `kvs` (absent from kvs: deleted). */
  update(kvs: ReadonlyMap<string, KV>, keys: Iterable<string>): void {
    for (const key of keys) {
      const p = this.keys.parse(key);
      if (!p) continue;
      const kv = kvs.get(key);
      switch (p.t) {
        case 'node':
          if (!kv) {
            this.nodes.delete(p.name);
            this.live.delete(p.name);
          } else {
            this.nodes.set(p.name, { info: parseJson(kv.value) ?? {}, lease: kv.lease, since: kv.create });
            this.live.add(p.name);
          }
          break;
        case 'placement': {
          const k = refKey(p.kind, p.name);
          const v = kv ? (parseJson(kv.value) as { node?: unknown } | null) : null;
          if (!kv) this.placements.delete(k);
          else if (v && typeof v.node === 'string') this.placements.set(k, { node: v.node, lease: kv.lease });
          else this.log.error('cluster value ignored', { key, revision: kv.mod, problems: ['expected {"node": NAME}'] });
          break;
        }
        case 'relay':
        case 'session':
          this.entry(p.t, p.name, key, kv);
          break;
        default:
          break;
      }
    }
  }

  /** Load a whole listing (status). */
  load(kvs: ReadonlyMap<string, KV>): void {
    this.update(kvs, kvs.keys());
  }

  private entry(kind: EntryKind, name: string, key: string, kv: KV | undefined): void {
    const map: Map<string, RelayConfig | SessionConfig> = kind === 'relay' ? this.relays : this.sessions;
    if (!kv) {
      map.delete(name);
      this.invalid.delete(key);
      this.entryRevision.delete(refKey(kind, name));
      return;
    }
    const r = parseEntry(kind, name, kv.value);
    const entry = r.relay ?? r.session;
    if (!entry) {
      this.invalid.set(key, { key, revision: kv.mod, problems: r.problems });
      this.log.error('cluster value ignored', { key, revision: kv.mod, problems: r.problems, kept: map.has(name) ? 'the last valid value' : 'nothing' });
      return;
    }
    this.invalid.delete(key);
    map.set(name, entry);
    this.entryRevision.set(refKey(kind, name), kv.mod);
  }
}

function parseJson(s: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(s) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
