// SPDX-License-Identifier: MIT
// Rendezvous (highest random weight) hashing: every node computes the same
// order of nodes for a session from nothing but the session's name and the
// set of live nodes. A session goes to the first; when that node dies, the
// session goes to the next one in its own order, and no other session moves
// (Thaler and Ravishankar, "Using name-based mappings to increase hit
// rates", 1998).
import { createHash } from 'node:crypto';

/** The weight of `node` for `key`: 64 bits of SHA-256 (uniform, the same on every node and version). */
export function weight(key: string, node: string): bigint {
  return createHash('sha256').update(node).update('\0').update(key).digest().readBigUInt64BE(0);
}

/** `nodes` in the order `key` prefers them: highest weight first (ties, which SHA-256 makes rare, by name). */
export function rendezvousOrder(key: string, nodes: Iterable<string>): string[] {
  const w = [...nodes].map((n) => ({ n, w: weight(key, n) }));
  w.sort((a, b) => (a.w === b.w ? (a.n < b.n ? -1 : 1) : a.w > b.w ? -1 : 1));
  return w.map((x) => x.n);
}
