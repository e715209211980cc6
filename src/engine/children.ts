// SPDX-License-Identifier: MIT
// What runs on an engine's region and must stop before the engine does:
// session managers (they produce into the lanes) and relays managers (they
// remove their policy while the engine still answers). Each registers itself
// with the region it was given; Engine.close() closes them, sessions first.
// Keyed by the SharedArrayBuffer: a manager only holds the Region.

export interface EngineChild {
  close(): Promise<void>;
}

export type ChildKind = 'sessions' | 'relays';

const byRegion = new WeakMap<SharedArrayBuffer, Map<EngineChild, ChildKind>>();

export function adoptChild(sab: SharedArrayBuffer, child: EngineChild, kind: ChildKind): void {
  let m = byRegion.get(sab);
  if (!m) byRegion.set(sab, (m = new Map()));
  m.set(child, kind);
}

export function disownChild(sab: SharedArrayBuffer, child: EngineChild): void {
  byRegion.get(sab)?.delete(child);
}

/** The children of a region of one kind, in the order they registered. */
export function childrenOf(sab: SharedArrayBuffer, kind: ChildKind): EngineChild[] {
  return [...(byRegion.get(sab) ?? new Map<EngineChild, ChildKind>())].filter(([, k]) => k === kind).map(([c]) => c);
}
