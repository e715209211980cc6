// SPDX-License-Identifier: MIT
// The one validator of the names a user types: interface, network namespace,
// relay and session names. The config schema, the control API, the engine,
// the relays manager and the session workers all call it, so a name one of
// them accepts is accepted by all (and `check-config` refuses exactly what
// `serve` would).
//
// The character set is small on purpose: these names reach argv of `ip`
// (never a shell), /run/netns paths, metric labels and a fixed 32-byte field
// of the engine's policy messages. A first character that is neither a
// letter, a digit nor "_" is refused, so a name never reads as an option
// ("-n") or a relative path ("..").
import { invalidArg } from './errors';

export type NameKind = 'interface' | 'netns' | 'relay' | 'session';

interface NameRule {
  /** longest name in bytes (all accepted characters are ASCII) */
  readonly max: number;
  /** characters accepted after the first */
  readonly rest: RegExp;
  readonly restText: string;
  readonly why: string;
}

const BASE = '[A-Za-z0-9_.-]';
const OBJECT = '[A-Za-z0-9_.:@/-]';

export const NAME_RULES: Readonly<Record<NameKind, NameRule>> = {
  // IFNAMSIZ (16) with its NUL; the kernel also refuses "/", ":" and spaces
  interface: { max: 15, rest: new RegExp(`^${BASE}*$`), restText: 'letters, digits, "_", "." and "-"', why: 'the kernel\'s IFNAMSIZ' },
  netns: { max: 64, rest: new RegExp(`^${BASE}*$`), restText: 'letters, digits, "_", "." and "-"', why: 'a file name under /run/netns' },
  // RF_RELAY_NAME_LEN: the name field of the engine's relay_add message
  relay: { max: 32, rest: new RegExp(`^${OBJECT}*$`), restText: 'letters, digits, "_", ".", ":", "@", "/" and "-"', why: 'the engine\'s 32-byte relay name' },
  session: { max: 128, rest: new RegExp(`^${OBJECT}*$`), restText: 'letters, digits, "_", ".", ":", "@", "/" and "-"', why: 'a metric label' },
};

const FIRST = /^[A-Za-z0-9_]/;

/** Why `value` is not a valid `kind` name, or null when it is. */
export function nameProblem(kind: NameKind, value: unknown): string | null {
  const r = NAME_RULES[kind];
  const accepted = `accepted: 1..${r.max} characters (${r.why}) of ${r.restText}, starting with a letter, a digit or "_"`;
  const a = kind === 'interface' ? 'an' : 'a';
  if (typeof value !== 'string') return `expected ${a} ${kind} name, got ${value === null ? 'null' : typeof value} (${accepted})`;
  if (value.length === 0) return `${a} ${kind} name must not be empty (${accepted})`;
  if (value.length > r.max) return `"${printable(value)}" is ${value.length} characters, longer than ${r.max} (${accepted})`;
  if (!FIRST.test(value) || !r.rest.test(value.slice(1))) return `"${printable(value)}" is not a valid ${kind} name (${accepted})`;
  return null;
}

/** Throw ERR_INVALID_ARG naming `what` when `value` is not a valid `kind` name; returns it. */
export function checkName(kind: NameKind, value: unknown, what: string): string {
  const p = nameProblem(kind, value);
  if (p !== null) throw invalidArg(`${what}: ${p}`);
  return value as string;
}

/** A name quoted in a message: control characters shown as escapes, at most 64 characters. */
function printable(v: string): string {
  const s = JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}...` : v);
  return s.slice(1, -1);
}
