// SPDX-License-Identifier: MIT
// The one owner of the key layout under a cluster's prefix (docs/cluster.md):
//
//   PREFIX/checkpoints/NAME        a session's position, written by its owner every checkpoint_ms
//   PREFIX/nodes/NODE              a node's registration, bound to its lease
//   PREFIX/placement/relays/NAME   which node runs a relay, bound to that node's lease
//   PREFIX/placement/sessions/NAME which node runs a session, bound to that node's lease
//   PREFIX/relays/NAME             a relay of the desired state (JSON, the YAML entry's keys)
//   PREFIX/sessions/NAME           a session of the desired state
//
// Every node watches [PREFIX/nodes/, PREFIX/sessions0): everything but the
// checkpoints, which change every second per session and which only a node
// taking a session over reads (once, in its claim transaction).

export type EntryKind = 'relay' | 'session';

export type ParsedKey =
  | { t: 'relay' | 'session' | 'node' | 'checkpoint'; name: string }
  | { t: 'placement'; kind: EntryKind; name: string };

export class ClusterKeys {
  constructor(readonly prefix: string) {}

  entry(kind: EntryKind, name: string): string {
    return `${this.prefix}${kind}s/${name}`;
  }

  /** Every relay, every session: the prefix of entry(kind, *). */
  entries(kind: EntryKind): string {
    return `${this.prefix}${kind}s/`;
  }

  node(name: string): string {
    return `${this.prefix}nodes/${name}`;
  }

  nodes(): string {
    return `${this.prefix}nodes/`;
  }

  placement(kind: EntryKind, name: string): string {
    return `${this.prefix}placement/${kind}s/${name}`;
  }

  checkpoint(name: string): string {
    return `${this.prefix}checkpoints/${name}`;
  }

  checkpoints(): string {
    return `${this.prefix}checkpoints/`;
  }

  /** The range every node watches ('0' is the byte after '/': the end covers all of sessions/). */
  watched(): { start: string; end: string } {
    return { start: `${this.prefix}nodes/`, end: `${this.prefix}sessions0` };
  }

  /** What a key under the prefix is, or null for anything else. */
  parse(key: string): ParsedKey | null {
    if (!key.startsWith(this.prefix)) return null;
    const rest = key.slice(this.prefix.length);
    const slash = rest.indexOf('/');
    if (slash < 0) return null;
    const head = rest.slice(0, slash);
    const name = rest.slice(slash + 1);
    if (name === '') return null;
    switch (head) {
      case 'relays':
        return { t: 'relay', name };
      case 'sessions':
        return { t: 'session', name };
      case 'nodes':
        return { t: 'node', name };
      case 'checkpoints':
        return { t: 'checkpoint', name };
      case 'placement': {
        const s = name.indexOf('/');
        const kind = name.slice(0, s);
        const n = name.slice(s + 1);
        if (s < 0 || n === '' || (kind !== 'relays' && kind !== 'sessions')) return null;
        return { t: 'placement', kind: kind === 'relays' ? 'relay' : 'session', name: n };
      }
      default:
        return null;
    }
  }
}
