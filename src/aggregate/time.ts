// SPDX-License-Identifier: MIT
// The patent's three forms of transmission time, and their normalisation to
// the engine's clock (CLOCK_MONOTONIC ns, what process.hrtime.bigint() reads):
//   (a) sequence numbers with an interval: time = base + seq * interval
//   (b) offsets in ms, us or ns from the aggregate's base time
//   (c) one relative range for the whole aggregate, spread evenly in packet order
// plus the already-normalised absolute form that sessions use.
import { invalidArg } from '../errors';

export type TimeUnit = 'ms' | 'us' | 'ns';
export const TIME_UNITS: readonly TimeUnit[] = ['ms', 'us', 'ns'];

/** (a) The packet's place in the transmission sequence; the interval comes from here or from the aggregate. */
export interface SeqTime {
  readonly seq: number;
  readonly intervalNs?: number | bigint;
}
/** (b) An offset from the aggregate's base time. */
export interface OffsetTime {
  readonly offset: number | bigint;
  readonly unit: TimeUnit;
}
/** An absolute CLOCK_MONOTONIC time in ns (already normalised). */
export interface AbsoluteTime {
  readonly at: bigint;
}
/** A packet time; `undefined` in an aggregate built with a range (form c). */
export type TxTime = SeqTime | OffsetTime | AbsoluteTime;

/** (c) The whole aggregate's relative range: first..last from the base, spread evenly in packet order. */
export interface RangeTime {
  readonly first: number | bigint;
  readonly last: number | bigint;
  readonly unit: TimeUnit;
}

export type TimeForm = 'sequence' | 'offset' | 'absolute' | 'range';

const UNIT_NS: Record<TimeUnit, bigint> = { ms: 1_000_000n, us: 1_000n, ns: 1n };

/** Which form a packet time is in; throws naming the value when it is none of them. */
export function timeForm(t: unknown, what: string): Exclude<TimeForm, 'range'> {
  if (t !== null && typeof t === 'object') {
    if ('seq' in t) return 'sequence';
    if ('offset' in t) return 'offset';
    if ('at' in t) return 'absolute';
  }
  throw invalidArg(`${what}: expected {seq, intervalNs?}, {offset, unit} or {at}, got ${describe(t)}`);
}

/** A number or bigint of `unit` as integer ns; fractions of a ns are rounded. */
export function toNs(value: number | bigint, unit: TimeUnit, what: string): bigint {
  if (!TIME_UNITS.includes(unit)) throw invalidArg(`${what}: unit "${String(unit)}" is not one of ms, us, ns`);
  if (typeof value === 'bigint') return value * UNIT_NS[unit];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw invalidArg(`${what}: ${describe(value)} is not a finite number of ${unit}`);
  }
  if (Number.isInteger(value) && Math.abs(value) <= Number.MAX_SAFE_INTEGER) return BigInt(value) * UNIT_NS[unit];
  return BigInt(Math.round(value * Number(UNIT_NS[unit])));
}

/** Time of one packet in form (a), (b) or absolute, relative to `base`, in CLOCK_MONOTONIC ns. */
export function normalise(t: TxTime, base: bigint, defaultIntervalNs: bigint | undefined, what: string): bigint {
  if ('at' in t) {
    if (typeof t.at !== 'bigint') throw invalidArg(`${what}: at must be a bigint of CLOCK_MONOTONIC ns, got ${describe(t.at)}`);
    return t.at;
  }
  if ('offset' in t) return base + toNs(t.offset, t.unit, `${what}.offset`);
  const seq = t.seq;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    throw invalidArg(`${what}: seq ${describe(seq)} is not an integer >= 0`);
  }
  const interval = t.intervalNs !== undefined ? toNs(t.intervalNs, 'ns', `${what}.intervalNs`) : defaultIntervalNs;
  if (interval === undefined) {
    throw invalidArg(`${what}: seq ${seq} has no interval: give intervalNs in the time or in the aggregate's options`);
  }
  if (interval < 0n) throw invalidArg(`${what}: intervalNs ${interval} is negative`);
  return base + BigInt(seq) * interval;
}

/** Times of `count` packets spread evenly over a range (form c), in packet order. */
export function spreadRange(r: RangeTime, base: bigint, count: number, what: string): bigint[] {
  const first = toNs(r.first, r.unit, `${what}.first`);
  const last = toNs(r.last, r.unit, `${what}.last`);
  if (last < first) throw invalidArg(`${what}: last ${String(r.last)} ${r.unit} is before first ${String(r.first)} ${r.unit}`);
  if (count <= 1) return count === 1 ? [base + first] : [];
  const span = last - first;
  const steps = BigInt(count - 1);
  const out = new Array<bigint>(count);
  for (let i = 0; i < count; i++) out[i] = base + first + (span * BigInt(i)) / steps;
  return out;
}

/** ns as a short human text for error messages ("12.5 ms"). */
export function formatNs(ns: bigint): string {
  const a = ns < 0n ? -ns : ns;
  const sign = ns < 0n ? '-' : '';
  if (a >= 1_000_000n) return `${sign}${Number(a) / 1e6} ms`;
  if (a >= 1_000n) return `${sign}${Number(a) / 1e3} us`;
  return `${sign}${a} ns`;
}

function describe(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return `"${v}"`;
  try {
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x)) ?? String(v);
  } catch {
    return String(v);
  }
}
