// SPDX-License-Identifier: MIT
// A cluster's desired state: relays and sessions with their placement, in
// the same schema as the YAML entries of a server config and validated by
// the same walk (src/config/validate.ts, parseConfig with desired: true).
//
// Two forms: a file given to `reflector ctl --etcd URL apply FILE` (problems
// as FILE:LINE:COL, like check-config), and the value of one key under the
// cluster's prefix (problems name the key and its revision). What is stored
// in etcd is the YAML entry itself as canonical JSON (keys sorted, media
// paths absolute, node always a list), so every key the schema knows is
// kept, and an entry that did not change is byte-for-byte the same value.
import * as path from 'node:path';
import { isMap, isScalar, LineCounter, parse as parseYaml, parseDocument, type Node } from 'yaml';
import { formatEndpoint } from '../net/address';
import { parseConfig, type Problem } from '../config/validate';
import type { RelayConfig, SessionConfig } from '../config/schema';
import type { EntryKind } from './keys';

export interface DesiredState {
  relays: RelayConfig[];
  sessions: SessionConfig[];
}

/** One entry as stored under PREFIX/relays/NAME or PREFIX/sessions/NAME. */
export interface StoredEntry {
  kind: EntryKind;
  name: string;
  /** canonical JSON */
  value: string;
}

export interface DesiredFile {
  state: DesiredState;
  entries: StoredEntry[];
}

const TOP_KEYS = ['relays', 'sessions'];

/**
 * Validate a desired-state file (relays and sessions only). Media paths are
 * resolved against the file's folder: every node must have the file at that
 * absolute path (shared storage or the same image).
 */
export function parseDesiredFile(text: string, file: string, opts: { checkFiles?: boolean } = {}): { desired: DesiredFile | null; problems: Problem[] } {
  const r = parseConfig(text, file, { desired: true, checkFiles: opts.checkFiles ?? false });
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, keepSourceTokens: true });
  const at = (node: Node | null | undefined, keyPath: string, message: string): Problem => {
    const pos = lc.linePos(node?.range?.[0] ?? 0);
    return { file, line: pos.line, column: pos.col, path: keyPath, message };
  };
  const problems = [...r.problems];
  if (isMap(doc.contents)) {
    for (const pair of doc.contents.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : '';
      if (!TOP_KEYS.includes(k)) {
        problems.push(at(pair.key as Node, k, `a desired-state file holds only ${TOP_KEYS.join(' and ')}; "${k}" belongs in each node's own config file`));
      }
    }
  }
  if (!r.config || problems.length) return { desired: null, problems: problems.sort((a, b) => a.line - b.line || a.column - b.column) };
  const state: DesiredState = { relays: r.config.relays, sessions: r.config.sessions };
  for (const p of cascadeProblems(state.relays)) {
    problems.push(at(doc.getIn(p.path, true) as Node | undefined, p.path.map((x, i) => (typeof x === 'number' ? `[${x}]` : i ? `.${x}` : x)).join(''), p.message));
  }
  if (problems.length) return { desired: null, problems };
  const raw = (parseYaml(text) ?? {}) as { relays?: Array<Record<string, unknown>>; sessions?: Array<Record<string, unknown>> };
  const entries: StoredEntry[] = [];
  (raw.relays ?? []).forEach((e, i) => entries.push({ kind: 'relay', name: state.relays[i].name, value: canonical({ ...e, node: state.relays[i].node }) }));
  (raw.sessions ?? []).forEach((e, i) => {
    const s = state.sessions[i];
    const { node: _node, ...rest } = e;
    entries.push({ kind: 'session', name: s.name, value: canonical({ ...rest, file: s.file, ...(s.node ? { node: s.node } : {}) }) });
  });
  return { desired: { state, entries }, problems: [] };
}

export interface ParsedEntry {
  relay?: RelayConfig;
  session?: SessionConfig;
  /** "key.path: what" lines; empty when valid */
  problems: string[];
}

/** Validate the value of PREFIX/relays/NAME or PREFIX/sessions/NAME with the config's own rules. */
export function parseEntry(kind: EntryKind, name: string, value: string): ParsedEntry {
  let obj: unknown;
  try {
    obj = JSON.parse(value);
  } catch (err) {
    return { problems: [`not JSON: ${(err as Error).message}`] };
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return { problems: [`expected a JSON object (a ${kind} entry), got ${Array.isArray(obj) ? 'a list' : JSON.stringify(obj)}`] };
  const o = obj as Record<string, unknown>;
  if (o.name !== name) return { problems: [`name: ${JSON.stringify(o.name)} differs from the key's name "${name}"`] };
  if (kind === 'session' && typeof o.file === 'string' && !path.isAbsolute(o.file)) {
    return { problems: [`file: "${o.file}" is not an absolute path (reflector ctl apply resolves media paths against its file's folder)`] };
  }
  const list = `${kind}s`;
  const r = parseConfig(JSON.stringify({ [list]: [o] }), '', { desired: true, checkFiles: false });
  if (!r.config) {
    const strip = new RegExp(`^${list}\\[0\\]\\.?`);
    return { problems: r.problems.map((p) => `${p.path.replace(strip, '') || '(entry)'}: ${p.message}`) };
  }
  return kind === 'relay' ? { relay: r.config.relays[0], problems: [] } : { session: r.config.sessions[0], problems: [] };
}

/**
 * Rules across relays: a relay may feed another node's relay (origin ->
 * regional -> edge), but not a relay that may run on the same node (the
 * engine does not loop a packet back into its own table), and relays must
 * not feed each other in a circle (every packet would go round for ever).
 */
export function cascadeProblems(relays: RelayConfig[]): Array<{ path: Array<string | number>; message: string }> {
  const out: Array<{ path: Array<string | number>; message: string }> = [];
  const byListen = new Map(relays.map((r, i) => [formatEndpoint(r.listen), i]));
  const edges: number[][] = relays.map(() => []);
  relays.forEach((r, i) =>
    r.subscribers.forEach((s, j) => {
      const q = byListen.get(formatEndpoint(s));
      if (q === undefined || q === i) return;
      edges[i].push(q);
      const shared = (r.node ?? []).filter((n) => (relays[q].node ?? []).includes(n));
      if (shared.length) {
        out.push({
          path: ['relays', i, 'subscribers', j],
          message: `${formatEndpoint(s)} is the listen address of relay "${relays[q].name}", which may run on the same node (${shared.join(', ')}): a relay may feed only other nodes' relays`,
        });
      }
    }),
  );
  // a circle in the feed graph (depth-first, three colours)
  const colour = relays.map(() => 0);
  const stack: number[] = [];
  const visit = (i: number): number[] | null => {
    colour[i] = 1;
    stack.push(i);
    for (const q of edges[i]) {
      if (colour[q] === 1) return [...stack.slice(stack.indexOf(q)), q];
      if (colour[q] === 0) {
        const c = visit(q);
        if (c) return c;
      }
    }
    stack.pop();
    colour[i] = 2;
    return null;
  };
  for (let i = 0; i < relays.length; i++) {
    if (colour[i] !== 0) continue;
    const cycle = visit(i);
    if (cycle) {
      out.push({ path: ['relays', cycle[0], 'subscribers'], message: `relays ${cycle.map((k) => `"${relays[k].name}"`).join(' -> ')} feed each other in a circle` });
      break;
    }
  }
  return out;
}

/** JSON with keys sorted at every level: equal entries are equal strings. */
export function canonical(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, sortKeys(o[k])]));
  }
  return v;
}
