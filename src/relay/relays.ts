// SPDX-License-Identifier: MIT
// The relays manager (main thread): validates relays and their outputs with
// exact messages, refuses loops, resolves each output's next-hop MAC from the
// kernel's tables (src/net/neighbour.ts) and keeps it fresh, and sends
// the policy messages (src/relay/policy.ts) through the policy ring, waiting
// for the engine's ack of each. Packets never pass through here.
//
// Ids: relay ids count up; every relay and every output owns one slot of the
// region's output counters (relay slot: packets matched, drops for sources
// outside its prefixes or above its rate limit; output slot: packets, bytes
// and drops of that output).
//
// Faults: a change the engine does not acknowledge in time is undone at once
// by the opposite message (the engine applies messages in order), so a
// refused call is never applied later; counter slots come back only when
// every message naming them has been answered (PolicyChannel.whenSettled).
// Concurrent calls with the same relay name (or listen address) are refused
// from the moment the first one starts, not only once it finished.
import { EventEmitter } from 'node:events';
import { adoptChild, disownChild } from '../engine/children';
import { ReflectorError, invalidArg } from '../errors';
import { checkName } from '../names';
import { formatEndpoint, parseEndpoint, parsePrefix, type Endpoint, type Prefix } from '../net/address';
import { resolveNextHop, type NextHop } from '../net/neighbour';
import { EVENT_ERROR, EVENT_LANE_QUARANTINED, EVENT_STOPPED, LANE_FAULT_NAMES } from '../region/layout';
import type { Region } from '../region/region';
import { PolicyChannel, type EngineEvent } from './channel';
import { anySourceProblem, localAddresses } from './guards';
import { Memberships } from './membership';
import { CaptureRing } from '../capture/ring';
import { checkCaptureOptions, writePcap, type CaptureOptions, type CaptureResult, type CaptureSummary, type CapturedPacket } from '../capture/capture';
import { DEFAULT_MULTICAST_TTL, groupMac, groupProblem, interfaceAddress, isMulticast, sourceGroupProblem, ssmOf } from '../net/multicast';
import {
  ERRNO, MAX_OUTPUTS, MAX_PREFIXES, MAX_RELAYS, NONE, OP, OUT_F_DSCP, OUT_F_MAC_VALID, OUT_F_TTL,
} from './policy';

/** The part of Engine (src/engine/engine.ts) the manager needs. */
export interface RelayEngine {
  readonly region: Region;
  readonly interface: string;
  readonly netnsPath?: string;
}

export interface RelaysOptions {
  /** How long to wait for the engine's ack of a policy message (default 2000 ms). */
  ackTimeoutMs?: number;
  /** Re-resolve next hops this often, pushing changed MACs (default 5000 ms; 0 = never). */
  refreshMs?: number;
  /** Next-hop resolver (tests may pass their own). */
  resolve?: (dst: string, opts: { netns?: string }) => Promise<NextHop>;
  /**
   * Is `address` one of the engine namespace's own (a relay's listen address
   * must be)? Default: `ip -j addr show` in the engine's namespace.
   */
  isLocal?: (address: string, opts: { netns?: string }) => Promise<boolean>;
}

export interface RelaySpecInput {
  name: string;
  listen: Endpoint | string;
  sources: Array<Prefix | string>;
  subscribers?: Array<Endpoint | string>;
  /** accept 0.0.0.0/0 or ::/0 in sources (anyone may send); default false */
  allowAnySource?: boolean;
  /** ingress limits: packets per second, bits per second (frame bytes x 8); 0 or absent = none */
  maxPps?: number;
  maxBps?: number;
  /**
   * listen is a multicast group: join it source-specifically (one join per
   * source, every source a single host). Default: derived, true when every
   * source is a /32 or /128. Refused on a unicast listen address.
   */
  ssm?: boolean;
  /** TTL / hop limit of the relay's multicast outputs without their own ttl (default 16). */
  multicastTtl?: number;
}

export interface RelayLimit {
  /** packets per second (0 = none), at most 4294967295 */
  maxPps?: number;
  /** bits per second of frame bytes (0 = none) */
  maxBps?: number;
}

/** What the manager reports besides return values. */
export type RelaysEvent =
  /** an output lost its next hop (drops until a refresh finds it) or a late undo failed */
  | { type: 'fault'; relay: string; subscriber?: string; code: string; reason: string }
  /** the engine's RX thread reported an error (RF_EVENT_ERROR) or stopped */
  | { type: 'engine'; thread: 'tx' | 'rx'; code: string; reason: string }
  /** the engine quarantined a lane that broke the region's rules (docs/trust.md) */
  | { type: 'lane'; lane: number; fault: string; faults: number; reason: string };

export interface OutputOptions {
  /** Address and port to send from (default: the relay's listen address and port). */
  source?: Endpoint | string;
  /** DSCP 0..63 (default: keep the arriving packet's). */
  dscp?: number;
  /** TTL / hop limit 1..255 (default 64; a multicast output: the relay's multicastTtl, 16). */
  ttl?: number;
}

interface OutputState {
  id: number;
  to: Endpoint;
  from: Endpoint;
  mac: string | null;
}

interface RelayState {
  id: number;
  counter: number;
  name: string;
  listen: Endpoint;
  sources: Prefix[];
  outputs: Map<string, OutputState>; // formatEndpoint(to) ->
  limit: { pps: number; bytesPerS: number };
  /** listen is a group; ssm: joined source-specifically */
  group: { ssm: boolean } | null;
  multicastTtl: number;
  /** what removed outputs had sent, read once the engine acked the removal (their slots are reused after) */
  retired: { packets: bigint; bytes: bigint; drops: bigint };
  /** counter slots of outputs removed but not yet acked: still counted live, so the relay's totals never dip */
  retiring: Set<number>;
}

export const MAX_PPS = 0xffffffff;
/** bits per second: bytes per second is a uint64 in the engine, kept exact here */
export const MAX_BPS = Number.MAX_SAFE_INTEGER;

function limitOf(l: RelayLimit, what: string): { pps: number; bytesPerS: number } {
  const pps = l.maxPps ?? 0;
  const bps = l.maxBps ?? 0;
  if (typeof pps !== 'number' || !Number.isInteger(pps) || pps < 0 || pps > MAX_PPS) {
    throw invalidArg(`${what}.maxPps: ${String(l.maxPps)} is not an integer in 0..${MAX_PPS} (packets per second, 0 = no limit)`);
  }
  if (typeof bps !== 'number' || !Number.isInteger(bps) || bps < 0 || bps > MAX_BPS) {
    throw invalidArg(`${what}.maxBps: ${String(l.maxBps)} is not an integer in 0..${MAX_BPS} (bits per second, 0 = no limit)`);
  }
  // the engine counts bytes; a limit of a few bits is still one byte per second
  return { pps, bytesPerS: Math.ceil(bps / 8) };
}

export interface RelayInfo {
  name: string;
  listen: string;
  sources: string[];
  subscribers: string[];
  /** listen is a multicast group: 'asm' (any-source join) or 'ssm' (source-specific) */
  join?: 'asm' | 'ssm';
}

function keyOf(e: Endpoint): string {
  return formatEndpoint(e);
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.family === b.family && a.address === b.address && a.port === b.port;
}

function isTimeout(e: unknown): boolean {
  return e instanceof ReflectorError && e.code === 'ERR_RING_TIMEOUT' && !/nothing was sent/.test(e.message);
}

function toEndpoint(v: Endpoint | string, what: string): Endpoint {
  if (typeof v === 'string') return parseEndpoint(v, what);
  if (v === null || typeof v !== 'object' || (v.family !== 4 && v.family !== 6)) {
    throw invalidArg(`${what}: expected "ADDR:PORT" or an endpoint, got ${JSON.stringify(v)}`);
  }
  return parseEndpoint(formatEndpoint(v), what);
}

function toPrefix(v: Prefix | string, what: string): Prefix {
  if (typeof v === 'string') return parsePrefix(v, what);
  if (v === null || typeof v !== 'object') throw invalidArg(`${what}: expected "ADDR/LEN", got ${JSON.stringify(v)}`);
  return parsePrefix(`${v.address}/${v.length}`, what);
}

export class Relays extends EventEmitter {
  private readonly engine: RelayEngine;
  private readonly channel: PolicyChannel;
  private readonly groups: Memberships;
  private readonly netns: string | undefined;
  private readonly resolver: (dst: string, opts: { netns?: string }) => Promise<NextHop>;
  private readonly isLocal: (address: string, opts: { netns?: string }) => Promise<boolean>;
  private readonly refreshMs: number;
  private readonly relays = new Map<string, RelayState>();
  /** names and listen addresses of relays being added: taken from the first await on */
  private readonly reservedNames = new Set<string>();
  private readonly reservedListens = new Set<string>();
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  private nextRelayId = 1;
  private readonly hops = new Map<string, Promise<NextHop | null>>();
  private refresher: NodeJS.Timeout | null = null;
  /** Last operation per relay/output key: operations on one key run in call order. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private started = false;
  private stopped = false;
  /** the relay being captured (one capture per engine: the RX thread has one ring) */
  private capturing: string | null = null;
  private captureRing: CaptureRing | null = null;
  private committed = false;
  private commitTimer: NodeJS.Timeout | null = null;

  constructor(engine: RelayEngine, opts: RelaysOptions = {}) {
    super();
    this.engine = engine;
    this.netns = engine.netnsPath?.replace(/^\/run\/netns\//, '');
    this.channel = new PolicyChannel(engine.region, { timeoutMs: opts.ackTimeoutMs });
    this.channel.onEvent((e) => this.onEngineEvent(e));
    this.groups = new Memberships(engine.interface, engine.netnsPath);
    this.resolver = opts.resolve ?? ((dst, o) => resolveNextHop(dst, o));
    this.isLocal = opts.isLocal ?? (async (a, o) => (await localAddresses(o.netns)).has(a.toLowerCase()));
    // Engine.close() stops us before the engine (src/engine/children.ts)
    adoptChild(engine.region.sab, this, 'relays');
    const refresh = opts.refreshMs ?? 5000;
    if (!Number.isInteger(refresh) || refresh < 0) throw invalidArg(`relays.refreshMs: ${String(opts.refreshMs)} is not an integer >= 0 (0 = never)`);
    this.refreshMs = refresh;
  }

  /**
   * Start refreshing next hops. Relayed traffic is kept from the kernel
   * stack by the engine's tc program, from the same policy messages
   * (docs/kernel-tier.md): nothing to install here.
   */
  async start(): Promise<void> {
    if (this.stopped) throw new ReflectorError('ERR_CLOSED', 'relays: start() after stop()');
    if (this.started) return;
    this.started = true;
    this.commitTimer = setTimeout(() => void this.commit().catch(() => undefined), 5000);
    this.commitTimer.unref();
    if (this.refreshMs > 0) {
      const tick = (): void => {
        this.refresher = null;
        this.refreshNextHops()
          .catch(() => undefined)
          .finally(() => {
            if (this.started) {
              this.refresher = setTimeout(tick, this.refreshMs);
              this.refresher.unref();
            }
          });
      };
      this.refresher = setTimeout(tick, this.refreshMs);
      this.refresher.unref();
    }
  }

  /** Remove every relay from the engine (when it still answers). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.started = false;
    if (this.commitTimer) clearTimeout(this.commitTimer);
    this.commitTimer = null;
    if (this.refresher) clearTimeout(this.refresher);
    this.refresher = null;
    for (const name of [...this.relays.keys()]) {
      await this.removeRelay(name).catch(() => undefined);
    }
    this.stopped = true;
    this.groups.leaveAll();
    this.channel.close();
    disownChild(this.engine.region.sab, this);
  }

  /**
   * The relays are all added: a kernel tier that adopted a previous
   * server's programs (hitless restart, docs/kernel-tier.md) switches to
   * this table now, each relay in one step, so outputs present in both see
   * every packet once. Called by the server once its configuration is
   * applied; start() calls it itself 5 s after start if nobody did. A no-op
   * for the engine otherwise.
   */
  async commit(): Promise<void> {
    if (this.commitTimer) clearTimeout(this.commitTimer);
    this.commitTimer = null;
    if (this.committed || !this.started) return;
    this.committed = true;
    await this.channel.send(OP.KERNEL_COMMIT, 'kernel tier commit', () => undefined);
  }

  /** stop(), by the name Engine.close() cascades with. */
  close(): Promise<void> {
    return this.stop();
  }

  list(): RelayInfo[] {
    return [...this.relays.values()].map((r) => ({
      name: r.name,
      listen: keyOf(r.listen),
      sources: r.sources.map((p) => `${p.address}/${p.length}`),
      subscribers: [...r.outputs.keys()],
      ...(r.group ? { join: r.group.ssm ? ('ssm' as const) : ('asm' as const) } : {}),
    }));
  }

  async addRelay(spec: RelaySpecInput): Promise<void> {
    this.checkStarted('addRelay');
    if (spec === null || typeof spec !== 'object') throw invalidArg('relay: expected { name, listen, sources, subscribers }');
    const name = checkName('relay', spec.name, 'relay.name');
    if (this.relays.has(name) || this.reservedNames.has(name)) throw invalidArg(`relay "${name}" already exists`);
    if (this.relays.size + this.reservedNames.size >= MAX_RELAYS) throw invalidArg(`relay "${name}": the engine holds at most ${MAX_RELAYS} relays`);
    const listen = toEndpoint(spec.listen, `relay "${name}".listen`);
    if (this.reservedListens.has(keyOf(listen))) throw invalidArg(`relay "${name}".listen: ${keyOf(listen)} is being added by another call`);
    for (const r of this.relays.values()) {
      if (sameEndpoint(r.listen, listen)) throw invalidArg(`relay "${name}".listen: ${keyOf(listen)} is already relay "${r.name}"'s listen address`);
      for (const o of r.outputs.values()) {
        if (sameEndpoint(o.to, listen)) {
          throw invalidArg(`relay "${name}".listen: ${keyOf(listen)} is a subscriber of relay "${r.name}" (the packets would loop)`);
        }
      }
    }
    if (!Array.isArray(spec.sources) || spec.sources.length === 0) {
      throw invalidArg(`relay "${name}".sources: at least one source prefix is required (a relay must not be an open amplifier: list the prefixes of the hosts that may send)`);
    }
    if (spec.sources.length > MAX_PREFIXES) throw invalidArg(`relay "${name}".sources: ${spec.sources.length} prefixes, at most ${MAX_PREFIXES}`);
    const sources = spec.sources.map((s, i) => toPrefix(s, `relay "${name}".sources[${i}]`));
    sources.forEach((p, i) => {
      if (p.family !== listen.family) {
        throw invalidArg(`relay "${name}".sources[${i}]: ${p.address}/${p.length} is IPv${p.family}, the listen address ${keyOf(listen)} is IPv${listen.family}`);
      }
      const g = sourceGroupProblem(p);
      if (g) throw invalidArg(`relay "${name}".sources[${i}]: ${g}`);
      const any = anySourceProblem(p, spec.allowAnySource === true);
      if (any) throw invalidArg(`relay "${name}".sources[${i}]: ${any}`);
    });
    const isGroup = isMulticast(listen.address, listen.family);
    if (isGroup) {
      const gp = groupProblem(listen);
      if (gp) throw invalidArg(`relay "${name}".listen: ${gp}`);
    }
    const ssm = ssmOf(listen, sources, spec.ssm, `relay "${name}"`);
    if ('problem' in ssm) throw invalidArg(ssm.problem);
    const mttl = spec.multicastTtl ?? DEFAULT_MULTICAST_TTL;
    if (!Number.isInteger(mttl) || mttl < 1 || mttl > 255) throw invalidArg(`relay "${name}".multicastTtl: ${String(spec.multicastTtl)} is not an integer in 1..255`);
    const limit = limitOf(spec, `relay "${name}"`);
    const subs = (spec.subscribers ?? []).map((s, i) => toEndpoint(s, `relay "${name}".subscribers[${i}]`));
    // from here on the name and the address are ours, across every await below
    this.reservedNames.add(name);
    this.reservedListens.add(keyOf(listen));
    try {
      // a group is nobody's address: the join (below) is what makes it the host's
      if (!isGroup && !(await this.isLocal(listen.address, { netns: this.netns }))) {
        const where = this.netns ? `namespace ${this.netns}` : "the server's namespace";
        throw invalidArg(
          `relay "${name}".listen: ${listen.address} is not an address of ${where} (a relay takes only traffic addressed to the engine's host; accepted: an address \`ip${this.netns ? ` -n ${this.netns}` : ''} addr\` lists)`,
        );
      }
      this.checkStarted('addRelay');
      await this.addRelayNow(name, listen, sources, subs, limit, isGroup ? { ssm: ssm.ssm } : null, mttl);
    } finally {
      this.reservedNames.delete(name);
      this.reservedListens.delete(keyOf(listen));
    }
  }

  private async addRelayNow(
    name: string, listen: Endpoint, sources: Prefix[], subs: Endpoint[], limit: RelayState['limit'], group: RelayState['group'], multicastTtl: number,
  ): Promise<void> {
    const relay: RelayState = {
      id: this.nextRelayId++, counter: this.takeSlot(name), name, listen, sources, outputs: new Map(), limit: { pps: 0, bytesPerS: 0 }, group, multicastTtl,
      retired: { packets: 0n, bytes: 0n, drops: 0n }, retiring: new Set(),
    };
    // the engine's tc program takes P's traffic from the kernel stack from
    // the moment the engine applies this message (no ICMP unreachable)
    try {
      await this.channel.send(OP.RELAY_ADD, `relay "${name}" (${keyOf(listen)})`, (w, b) =>
        w.relayAdd(b, { relayId: relay.id, counter: relay.counter, family: listen.family, port: listen.port, addr: listen.address, name }),
      );
    } catch (e) {
      // timed out: the relay may still be added later; the removal behind it makes sure it is not
      if (isTimeout(e)) this.undo(`undo relay "${name}"`, name, undefined, OP.RELAY_REMOVE, (w, b) => w.relayRef(b, relay.id));
      this.freeSlot(relay.counter);
      throw e;
    }
    this.relays.set(name, relay);
    try {
      // the limit before the sources: the relay never takes traffic unlimited
      if (limit.pps || limit.bytesPerS) await this.sendLimit(relay, limit);
      for (const p of sources) {
        await this.channel.send(OP.RELAY_ALLOW, `relay "${name}" source ${p.address}/${p.length}`, (w, b) =>
          w.relayAllow(b, { relayId: relay.id, family: p.family, length: p.length, addr: p.address }),
        );
      }
      for (const s of subs) await this.addOutput(name, s);
      // last: the group's traffic is asked for once the relay can take it
      // (the engine's tc program already keeps it from the kernel's UDP layer)
      if (group) this.groups.join({ relay: name, listen, sources: group.ssm ? sources : [] });
    } catch (e) {
      await this.removeRelay(name).catch(() => undefined);
      throw e;
    }
  }

  /** Change a relay's ingress limit at once (0 = none); the buckets start full. */
  async setLimit(relayName: string, l: RelayLimit): Promise<void> {
    this.checkStarted('setLimit');
    const r = this.relayOf(relayName);
    const limit = limitOf(l, `relay "${r.name}"`);
    if (limit.pps === r.limit.pps && limit.bytesPerS === r.limit.bytesPerS) return;
    await this.sendLimit(r, limit);
  }

  /** The limit in force (maxBps as bytes x 8). */
  limitOf(relayName: string): { maxPps: number; maxBps: number } | null {
    const r = this.relays.get(relayName);
    return r ? { maxPps: r.limit.pps, maxBps: r.limit.bytesPerS * 8 } : null;
  }

  private async sendLimit(r: RelayState, limit: RelayState['limit']): Promise<void> {
    const before = r.limit;
    try {
      await this.channel.send(OP.RELAY_LIMIT, `relay "${r.name}" limit`, (w, b) => w.relayLimit(b, { relayId: r.id, ...limit }));
    } catch (e) {
      if (isTimeout(e)) this.undo(`undo relay "${r.name}" limit`, r.name, undefined, OP.RELAY_LIMIT, (w, b) => w.relayLimit(b, { relayId: r.id, ...before }));
      throw e;
    }
    r.limit = limit;
  }

  /**
   * Queue the opposite of a change the engine did not answer in time: it is
   * applied after it, whatever the engine made of the first. Its own answer
   * only matters when it says the engine refused it.
   */
  private undo(what: string, relay: string, subscriber: string | undefined, op: (typeof OP)[keyof typeof OP], fill: Parameters<PolicyChannel['send']>[2]): void {
    this.channel.send(op, what, fill).catch((e: unknown) => {
      const err = e as ReflectorError;
      // ENOENT: the first change was refused or never applied: nothing to undo
      if (err.code === 'ERR_POLICY' && err.message.includes(ERRNO[2])) return;
      if (err.code === 'ERR_CLOSED') return;
      this.report({ type: 'fault', relay, subscriber, code: err.code ?? 'ERR_POLICY', reason: `${what}: ${err.message}` });
    });
  }

  private report(e: RelaysEvent): void {
    if (this.listenerCount('event') > 0) this.emit('event', e);
  }

  private onEngineEvent(e: EngineEvent): void {
    const thread = e.a === 0n ? 'tx' : 'rx';
    if (e.type === EVENT_ERROR) {
      const errno = Number(e.b);
      this.report({ type: 'engine', thread, code: 'ERR_ENGINE', reason: `the ${thread.toUpperCase()} thread reported ${ERRNO[errno] ?? `errno ${errno}`}` });
    } else if (e.type === EVENT_STOPPED) {
      this.report({ type: 'engine', thread, code: 'ERR_ENGINE_STATE', reason: `the ${thread.toUpperCase()} thread stopped` });
    } else if (e.type === EVENT_LANE_QUARANTINED) {
      const lane = Number(e.a);
      const fault = LANE_FAULT_NAMES[Number(e.b)] ?? `fault ${String(e.b)}`;
      const who = lane === this.engine.region.laneCount ? 'the control channel' : `lane ${lane}`;
      this.report({
        type: 'lane', lane, fault, faults: Number(e.c),
        reason: `${who} broke the region's rules ${String(e.c)} times (last: ${fault}); the engine takes nothing more from it until it restarts`,
      });
    }
  }

  async removeRelay(name: string): Promise<void> {
    const r = this.relays.get(name);
    if (!r) throw invalidArg(`relay "${String(name)}" does not exist (relays: ${[...this.relays.keys()].join(', ') || 'none'})`);
    this.relays.delete(name);
    // first: the group's traffic stops being asked for before the relay goes
    this.groups.leave(name);
    try {
      await this.channel.send(OP.RELAY_REMOVE, `remove relay "${name}"`, (w, b) => w.relayRef(b, r.id));
    } catch (e) {
      // a removal cannot be undone: it stays queued and the engine applies it
      // before any later change; the relay is gone from here on either way
      if (!isTimeout(e)) throw e;
    } finally {
      for (const o of r.outputs.values()) this.freeSlot(o.id);
      this.freeSlot(r.counter);
    }
  }

  /** Run fn after every earlier operation on `key` settled (different keys run concurrently). */
  private serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.chains.set(key, tail);
    void tail.then(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key);
    });
    return next;
  }

  /** Add a subscriber; calls for the same relay and subscriber apply in call order. */
  addOutput(relayName: string, subscriber: Endpoint | string, opts: OutputOptions = {}): Promise<void> {
    return this.serial(`${String(relayName)} ${typeof subscriber === 'string' ? subscriber : formatEndpoint(subscriber)}`, () =>
      this.addOutputNow(relayName, subscriber, opts),
    );
  }

  /** Remove a subscriber; calls for the same relay and subscriber apply in call order. */
  removeOutput(relayName: string, subscriber: Endpoint | string): Promise<void> {
    return this.serial(`${String(relayName)} ${typeof subscriber === 'string' ? subscriber : formatEndpoint(subscriber)}`, () =>
      this.removeOutputNow(relayName, subscriber),
    );
  }

  private async addOutputNow(relayName: string, subscriber: Endpoint | string, opts: OutputOptions): Promise<void> {
    this.checkStarted('addOutput');
    const r = this.relayOf(relayName);
    const what = `relay "${r.name}" subscriber`;
    const to = toEndpoint(subscriber, what);
    const k = keyOf(to);
    if (to.family !== r.listen.family) throw invalidArg(`${what} ${k}: IPv${to.family}, the relay listens on IPv${r.listen.family} ${keyOf(r.listen)}`);
    if (r.outputs.has(k)) throw invalidArg(`${what} ${k} already exists`);
    for (const o of this.relays.values()) {
      if (sameEndpoint(o.listen, to)) throw invalidArg(`${what} ${k} is relay "${o.name}"'s listen address (the packets would loop)`);
    }
    let from = opts.source === undefined ? r.listen : toEndpoint(opts.source, `${what} ${k}: source`);
    if (from.family !== to.family) throw invalidArg(`${what} ${k}: source ${keyOf(from)} is not IPv${to.family}`);
    const { dscp, ttl } = opts;
    if (dscp !== undefined && (!Number.isInteger(dscp) || dscp < 0 || dscp > 63)) throw invalidArg(`${what} ${k}: dscp ${String(dscp)} is not in 0..63`);
    if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 1 || ttl > 255)) throw invalidArg(`${what} ${k}: ttl ${String(ttl)} is not in 1..255`);
    let total = 0;
    for (const o of this.relays.values()) total += o.outputs.size;
    if (total >= MAX_OUTPUTS) throw invalidArg(`${what} ${k}: the engine holds at most ${MAX_OUTPUTS} outputs`);
    const group = isMulticast(to.address, to.family);
    if (group) {
      const gp = groupProblem(to);
      if (gp) throw invalidArg(`${what} ${k}: ${gp}`);
    }
    if (isMulticast(from.address, from.family)) {
      if (opts.source !== undefined) {
        throw invalidArg(`${what} ${k}: source ${keyOf(from)} is a multicast group (a group is nobody's source address: set source to an address of the engine's interface)`);
      }
      // a relay on a group sends from the interface's own address (same port)
      from = { family: from.family, address: await interfaceAddress(this.engine.interface, from.family, this.netns), port: from.port };
    }
    // a group's frame goes to its Ethernet address: no neighbour to resolve or refresh
    const hop = group ? { mac: groupMac(to.address, to.family) } : await this.nextHop(to.address);
    const out: OutputState = { id: this.takeSlot(`${what} ${k}`), to, from, mac: hop?.mac ?? null };
    const outTtl = ttl ?? (group ? r.multicastTtl : undefined);
    r.outputs.set(k, out);
    try {
      await this.channel.send(OP.OUTPUT_ADD, `${what} ${k}`, (w, b) =>
        w.outputAdd(b, {
          relayId: r.id,
          outputId: out.id,
          family: to.family,
          flags: (out.mac ? OUT_F_MAC_VALID : 0) | (dscp !== undefined ? OUT_F_DSCP : 0) | (outTtl !== undefined ? OUT_F_TTL : 0),
          ttl: outTtl ?? 0,
          dscp: dscp ?? 0,
          srcPort: from.port,
          dstPort: to.port,
          dstMac: out.mac ?? '00:00:00:00:00:00',
          srcAddr: from.address,
          dstAddr: to.address,
        }),
      );
    } catch (e) {
      r.outputs.delete(k);
      if (isTimeout(e)) this.undo(`undo relay "${r.name}" subscriber ${k}`, r.name, k, OP.OUTPUT_REMOVE, (w, b) => w.outputRef(b, r.id, out.id));
      this.freeSlot(out.id);
      throw e;
    }
  }

  private async removeOutputNow(relayName: string, subscriber: Endpoint | string): Promise<void> {
    const r = this.relayOf(relayName);
    const to = toEndpoint(subscriber, `relay "${r.name}" subscriber`);
    const k = keyOf(to);
    const out = r.outputs.get(k);
    if (!out) throw invalidArg(`relay "${r.name}" has no subscriber ${k} (subscribers: ${[...r.outputs.keys()].join(', ') || 'none'})`);
    r.outputs.delete(k);
    try {
      await this.channel.send(OP.OUTPUT_REMOVE, `remove relay "${r.name}" subscriber ${k}`, (w, b) => w.outputRef(b, r.id, out.id));
    } catch (e) {
      // as removeRelay: queued in order, gone from here on
      if (!isTimeout(e)) throw e;
    } finally {
      r.retiring.add(out.id);
      this.channel.whenSettled(() => {
        // the engine no longer writes this slot: its last values join the relay's totals
        const c = this.engine.region.outputCounters(out.id);
        r.retired.packets += c.packets;
        r.retired.bytes += c.bytes;
        r.retired.drops += c.drops;
        r.retiring.delete(out.id);
        this.freeSlots.push(out.id);
      });
    }
  }

  outputStats(relayName: string, subscriber: Endpoint | string): { packets: bigint; bytes: bigint; drops: bigint } | null {
    const r = this.relays.get(relayName);
    if (!r) return null;
    const out = r.outputs.get(keyOf(toEndpoint(subscriber, `relay "${relayName}" subscriber`)));
    return out ? this.engine.region.outputCounters(out.id) : null;
  }

  /** Packets matched by the relay, and drops for sources outside its prefixes. */
  relayStats(relayName: string): { packets: bigint; bytes: bigint; notAllowed: bigint; rateLimited: bigint; sent: { packets: bigint; bytes: bigint; drops: bigint } } | null {
    const r = this.relays.get(relayName);
    if (!r) return null;
    const c = this.engine.region.outputCounters(r.counter);
    // the relay's drops count both kinds; `limited` the rate-limit ones alone
    return { packets: c.packets, bytes: c.bytes, notAllowed: c.drops - c.limited, rateLimited: c.limited, sent: this.sentTotals(r) };
  }

  /** Sent to every subscriber the relay has or had: live outputs, outputs being removed, and the retired ones' last values. */
  private sentTotals(r: RelayState): { packets: bigint; bytes: bigint; drops: bigint } {
    const t = { ...r.retired };
    const slots = [...[...r.outputs.values()].map((o) => o.id), ...r.retiring];
    for (const id of slots) {
      const c = this.engine.region.outputCounters(id);
      t.packets += c.packets;
      t.bytes += c.bytes;
      t.drops += c.drops;
    }
    return t;
  }

  // ------------------------------------------------------------ capture --

  /**
   * Capture what relay `name` receives and sends: its ingress frames as they
   * arrived and each output's frame as rewritten (or one output's only, with
   * `subscriber`), until `count` packets or `seconds` passed. An async
   * generator of packets whose return value says how many the engine had to
   * drop (the ring was full: the capture, never the relay, loses them). One
   * capture at a time per engine; ERR_CAPTURE while another runs.
   */
  async *capture(name: string, opts: CaptureOptions): AsyncGenerator<CapturedPacket, CaptureResult> {
    this.checkStarted('capture');
    const r = this.relayOf(name);
    const what = `capture of relay "${r.name}"`;
    const lim = checkCaptureOptions(opts, what);
    let only: OutputState | null = null;
    if (opts.subscriber !== undefined) {
      const k = keyOf(toEndpoint(opts.subscriber, `${what}.subscriber`));
      only = r.outputs.get(k) ?? null;
      if (!only) throw invalidArg(`${what}.subscriber: ${k} is not a subscriber of relay "${r.name}" (subscribers: ${[...r.outputs.keys()].join(', ') || 'none'})`);
    }
    if (this.capturing !== null) {
      throw new ReflectorError('ERR_CAPTURE', `${what}: a capture of relay "${this.capturing}" is running (one capture at a time per engine); wait for it to end`);
    }
    this.capturing = r.name;
    const ring = (this.captureRing ??= new CaptureRing(this.engine.region.sab, 1));
    const names = new Map<number, string>();
    for (const o of r.outputs.values()) names.set(o.id, keyOf(o.to));
    ring.skip();
    const dropped0 = ring.dropped;
    let armed = false;
    let n = 0;
    try {
      await this.channel.send(OP.CAPTURE, `${what} (arm)`, (w, b) => w.capture(b, { relayId: r.id, outputId: only ? only.id : NONE, ingress: only === null }));
      armed = true;
      opts.onArmed?.();
      const deadline = lim.seconds === Infinity ? Infinity : Date.now() + lim.seconds * 1000;
      while (n < lim.count && Date.now() < deadline && !opts.signal?.aborted && this.relays.get(r.name) === r) {
        const recs = ring.drain(lim.count - n);
        for (const x of recs) {
          // outputs added during the capture: their names as they are now
          const out = x.kind === 'output' ? (names.get(x.id) ?? [...r.outputs.values()].find((o) => o.id === x.id)?.to) : null;
          const label = x.kind === 'ingress' ? r.name : typeof out === 'string' ? out : out ? keyOf(out) : `output ${x.id}`;
          n++;
          yield { kind: x.kind, what: label, tsNs: x.tsNs, wireLen: x.wireLen, data: x.data };
        }
        if (!recs.length) await new Promise((res) => setTimeout(res, 2));
      }
    } finally {
      if (armed) {
        await this.channel.send(OP.CAPTURE, `${what} (disarm)`, (w, b) => w.capture(b, { relayId: NONE, outputId: NONE, ingress: false })).catch(() => undefined);
      }
      // what the engine wrote before it took the disarm is not this capture's business beyond count
      this.capturing = null;
    }
    const rest = ring.drain(lim.count - n);
    for (const x of rest) {
      n++;
      const label = x.kind === 'ingress' ? r.name : (names.get(x.id) ?? `output ${x.id}`);
      yield { kind: x.kind, what: label, tsNs: x.tsNs, wireLen: x.wireLen, data: x.data };
    }
    ring.skip();
    return { dropped: Number(ring.dropped - dropped0) };
  }

  /** capture() into a nanosecond pcap file; the file is created first (ERR_CAPTURE naming it when it cannot be). */
  async captureToFile(name: string, file: string, opts: CaptureOptions): Promise<CaptureSummary> {
    this.checkStarted('capture');
    const r = this.relayOf(name);
    checkCaptureOptions(opts, `capture of relay "${r.name}"`);
    if (this.capturing !== null) {
      throw new ReflectorError('ERR_CAPTURE', `capture of relay "${r.name}": a capture of relay "${this.capturing}" is running (one capture at a time per engine); wait for it to end`);
    }
    return writePcap(file, () => this.capture(name, opts), `capture of relay "${r.name}".out`);
  }

  /** Records the engine dropped because a capture ring (relays' or sessions') was full, since it started (reflector_capture_dropped_total). */
  captureDropped(): bigint {
    const rx = (this.captureRing ??= new CaptureRing(this.engine.region.sab, 1));
    return rx.dropped + new CaptureRing(this.engine.region.sab, 0).dropped;
  }

  /** Re-resolve every output's next hop; push the MACs that changed. */
  async refreshNextHops(): Promise<void> {
    this.hops.clear();
    for (const r of [...this.relays.values()]) {
      for (const out of [...r.outputs.values()]) {
        if (isMulticast(out.to.address, out.to.family)) continue;
        const hop = await this.nextHop(out.to.address).catch(() => null);
        const mac = hop?.mac ?? null;
        if (mac === out.mac || !r.outputs.has(keyOf(out.to))) continue;
        if (mac === null) {
          this.report({ type: 'fault', relay: r.name, subscriber: keyOf(out.to), code: 'ERR_NO_NEIGHBOUR', reason: `next hop of ${keyOf(out.to)} lost: dropped (no_neighbour) until it answers again` });
        }
        await this.channel.send(OP.OUTPUT_SET_MAC, `relay "${r.name}" subscriber ${keyOf(out.to)} next hop`, (w, b) =>
          w.outputMac(b, { relayId: r.id, outputId: out.id, dstMac: mac ?? '00:00:00:00:00:00', valid: mac !== null }),
        );
        // only once the engine has it: a refresh after a failed one sends it again
        out.mac = mac;
      }
    }
  }

  private nextHop(address: string): Promise<NextHop | null> {
    let p = this.hops.get(address);
    if (!p) {
      p = this.resolver(address, { netns: this.netns }).then(
        (hop) => {
          if (hop.dev !== this.engine.interface) {
            this.hops.delete(address);
            throw invalidArg(`subscriber ${address}: the route goes through ${hop.dev}, not the engine's interface ${this.engine.interface}`);
          }
          return hop;
        },
        (e: unknown) => {
          // unresolved for now: the output drops (no_neighbour) until a refresh finds it
          this.hops.delete(address);
          if (e instanceof ReflectorError && e.code === 'ERR_NO_NEIGHBOUR') return null;
          throw e;
        },
      );
      this.hops.set(address, p);
    }
    return p;
  }

  private relayOf(name: string): RelayState {
    const r = this.relays.get(name);
    if (!r) throw invalidArg(`relay "${String(name)}" does not exist (relays: ${[...this.relays.keys()].join(', ') || 'none'})`);
    return r;
  }

  private checkStarted(what: string): void {
    if (this.stopped) throw new ReflectorError('ERR_CLOSED', `relays.${what}: the relay manager is stopped`);
    if (!this.started) throw new ReflectorError('ERR_ENGINE_STATE', `relays.${what}: call start() first`);
  }

  private takeSlot(what: string): number {
    const s = this.freeSlots.pop();
    // the engine zeroes a slot it is given again: so does the kernel tier's part
    if (s !== undefined) {
      this.engine.region.resetKernelOutput(s);
      return s;
    }
    if (this.nextSlot >= this.engine.region.maxOutputs) {
      throw invalidArg(`${what}: no output counter left (region.maxOutputs = ${this.engine.region.maxOutputs})`);
    }
    return this.nextSlot++;
  }

  /** Give a counter slot back once no message naming it is unanswered. */
  private freeSlot(s: number): void {
    this.channel.whenSettled(() => this.freeSlots.push(s));
  }
}
