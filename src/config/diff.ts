// SPDX-License-Identifier: MIT
// The difference between two valid configs, as the smallest set of actions:
// a reload applies only these, so an output that did not change never sees
// a policy message and loses no packet.
import { formatEndpoint } from '../net/address';
import type { Config, RelayConfig, SessionConfig } from './schema';

export interface RelayChange {
  name: string;
  subscribersAdded: string[];
  subscribersRemoved: string[];
  /** max_pps / max_bps changed to these (applied live, without replacing the relay) */
  limit?: { maxPps: number; maxBps: number };
}

export interface ConfigDiff {
  relaysAdded: RelayConfig[];
  /** names */
  relaysRemoved: string[];
  /** same name, listen and sources: only subscribers differ */
  relaysChanged: RelayChange[];
  sessionsAdded: SessionConfig[];
  sessionsRemoved: string[];
  /** keys that only take effect at the next start ("engine.workers", ...) */
  restartRequired: string[];
  logLevelChanged: boolean;
}

export function relayIdentity(r: RelayConfig): string {
  // the join (ssm) and the multicast TTL are fixed when the relay is added: a change replaces it
  return `${formatEndpoint(r.listen)} from ${r.sources.map((p) => `${p.address}/${p.length}`).sort().join(',')} ssm ${String(r.ssm ?? 'derived')} ttl ${r.multicastTtl ?? 16}`;
}

export function sessionIdentity(s: SessionConfig): string {
  return JSON.stringify([s.file, formatEndpoint(s.to), s.format, s.loop]);
}

export function diffConfig(before: Config, after: Config): ConfigDiff {
  const d: ConfigDiff = {
    relaysAdded: [],
    relaysRemoved: [],
    relaysChanged: [],
    sessionsAdded: [],
    sessionsRemoved: [],
    restartRequired: [],
    logLevelChanged: before.log.level !== after.log.level,
  };
  const oldRelays = new Map(before.relays.map((r) => [r.name, r]));
  const newRelays = new Map(after.relays.map((r) => [r.name, r]));
  for (const [name, r] of oldRelays) {
    const n = newRelays.get(name);
    // a relay whose listen address or sources changed is replaced as a whole
    if (!n || relayIdentity(n) !== relayIdentity(r)) d.relaysRemoved.push(name);
  }
  for (const [name, n] of newRelays) {
    const r = oldRelays.get(name);
    if (!r || relayIdentity(n) !== relayIdentity(r)) {
      d.relaysAdded.push(n);
      continue;
    }
    const was = new Set(r.subscribers.map(formatEndpoint));
    const now = new Set(n.subscribers.map(formatEndpoint));
    const added = [...now].filter((s) => !was.has(s));
    const removed = [...was].filter((s) => !now.has(s));
    const limit = { maxPps: n.maxPps ?? 0, maxBps: n.maxBps ?? 0 };
    const limitChanged = limit.maxPps !== (r.maxPps ?? 0) || limit.maxBps !== (r.maxBps ?? 0);
    if (added.length || removed.length || limitChanged) {
      d.relaysChanged.push({ name, subscribersAdded: added, subscribersRemoved: removed, ...(limitChanged ? { limit } : {}) });
    }
  }
  const oldSessions = new Map(before.sessions.map((s) => [s.name, s]));
  const newSessions = new Map(after.sessions.map((s) => [s.name, s]));
  for (const [name, s] of oldSessions) {
    const n = newSessions.get(name);
    if (!n || sessionIdentity(n) !== sessionIdentity(s)) d.sessionsRemoved.push(name);
  }
  for (const [name, n] of newSessions) {
    const s = oldSessions.get(name);
    if (!s || sessionIdentity(n) !== sessionIdentity(s)) d.sessionsAdded.push(n);
  }
  const flat = (c: Config): Record<string, string> => ({
    'engine': JSON.stringify(c.engine),
    'metrics.listen': c.metrics.listen ? formatEndpoint(c.metrics.listen) : 'null',
    'control': JSON.stringify(c.control),
    'media_root': c.mediaRoot,
    'cluster': JSON.stringify(c.cluster),
  });
  const a = flat(before);
  const b = flat(after);
  for (const k of Object.keys(a)) if (a[k] !== b[k]) d.restartRequired.push(k);
  return d;
}

export function isEmptyDiff(d: ConfigDiff): boolean {
  return (
    !d.relaysAdded.length && !d.relaysRemoved.length && !d.relaysChanged.length &&
    !d.sessionsAdded.length && !d.sessionsRemoved.length
  );
}
