// SPDX-License-Identifier: MIT
// The relays manager (main thread): validates relays and their outputs with
// exact messages, refuses loops, resolves each output's next-hop MAC from the
// kernel's tables (src/net/neighbour.ts) and keeps it fresh, installs the
// nftables rule that keeps consumed traffic from the kernel stack, and sends
// the policy messages (src/relay/policy.ts) through the policy ring, waiting
// for the engine's ack of each. Packets never pass through here.
//
// Ids: relay ids count up; every relay and every output owns one slot of the
// region's output counters (relay slot: packets matched, drops for sources
// outside its prefixes; output slot: packets, bytes and drops of that output).
import { ReflectorError, invalidArg } from '../errors';
import { formatEndpoint, parseEndpoint, parsePrefix, type Endpoint, type Prefix } from '../net/address';
import { resolveNextHop, type NextHop } from '../net/neighbour';
import type { Region } from '../region/region';
import { PolicyChannel } from './channel';
import { NftGuard } from './nft';
import {
  MAX_OUTPUTS, MAX_PREFIXES, MAX_RELAYS, NAME_LEN, OP, OUT_F_DSCP, OUT_F_MAC_VALID, OUT_F_TTL,
} from './policy';

/** The part of Engine (src/engine/engine.ts) the manager needs. */
export interface RelayEngine {
  readonly region: Region;
  readonly interface: string;
  readonly netnsPath?: string;
}

export interface RelaysOptions {
  /** Install the nftables rule per relay (default true). Without it the kernel also gets relayed traffic. */
  nft?: boolean;
  /** How long to wait for the engine's ack of a policy message (default 2000 ms). */
  ackTimeoutMs?: number;
  /** Re-resolve next hops this often, pushing changed MACs (default 5000 ms; 0 = never). */
  refreshMs?: number;
  /** Next-hop resolver (tests may pass their own). */
  resolve?: (dst: string, opts: { netns?: string }) => Promise<NextHop>;
}

export interface RelaySpecInput {
  name: string;
  listen: Endpoint | string;
  sources: Array<Prefix | string>;
  subscribers?: Array<Endpoint | string>;
}

export interface OutputOptions {
  /** Address and port to send from (default: the relay's listen address and port). */
  source?: Endpoint | string;
  /** DSCP 0..63 (default: keep the arriving packet's). */
  dscp?: number;
  /** TTL / hop limit 1..255 (default 64). */
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
}

export interface RelayInfo {
  name: string;
  listen: string;
  sources: string[];
  subscribers: string[];
}

function keyOf(e: Endpoint): string {
  return formatEndpoint(e);
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.family === b.family && a.address === b.address && a.port === b.port;
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

export class Relays {
  private readonly engine: RelayEngine;
  private readonly channel: PolicyChannel;
  private readonly nft: NftGuard | null;
  private readonly netns: string | undefined;
  private readonly resolver: (dst: string, opts: { netns?: string }) => Promise<NextHop>;
  private readonly refreshMs: number;
  private readonly relays = new Map<string, RelayState>();
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  private nextRelayId = 1;
  private readonly hops = new Map<string, Promise<NextHop | null>>();
  private refresher: NodeJS.Timeout | null = null;
  /** Last operation per relay/output key: operations on one key run in call order. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private started = false;
  private stopped = false;

  constructor(engine: RelayEngine, opts: RelaysOptions = {}) {
    this.engine = engine;
    this.netns = engine.netnsPath?.replace(/^\/run\/netns\//, '');
    this.channel = new PolicyChannel(engine.region, { timeoutMs: opts.ackTimeoutMs });
    this.nft = opts.nft === false ? null : new NftGuard({ interface: engine.interface, netns: this.netns });
    this.resolver = opts.resolve ?? ((dst, o) => resolveNextHop(dst, o));
    const refresh = opts.refreshMs ?? 5000;
    if (!Number.isInteger(refresh) || refresh < 0) throw invalidArg(`relays.refreshMs: ${String(opts.refreshMs)} is not an integer >= 0 (0 = never)`);
    this.refreshMs = refresh;
  }

  /** Create the nftables table; start refreshing next hops. */
  async start(): Promise<void> {
    if (this.stopped) throw new ReflectorError('ERR_CLOSED', 'relays: start() after stop()');
    if (this.started) return;
    await this.nft?.start();
    this.started = true;
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

  /** Remove every relay from the engine (when it still answers), then our nftables table. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.started = false;
    if (this.refresher) clearTimeout(this.refresher);
    this.refresher = null;
    for (const name of [...this.relays.keys()]) {
      await this.removeRelay(name).catch(() => undefined);
    }
    this.stopped = true;
    this.channel.close();
    await this.nft?.stop();
  }

  list(): RelayInfo[] {
    return [...this.relays.values()].map((r) => ({
      name: r.name,
      listen: keyOf(r.listen),
      sources: r.sources.map((p) => `${p.address}/${p.length}`),
      subscribers: [...r.outputs.keys()],
    }));
  }

  async addRelay(spec: RelaySpecInput): Promise<void> {
    this.checkStarted('addRelay');
    if (spec === null || typeof spec !== 'object') throw invalidArg('relay: expected { name, listen, sources, subscribers }');
    const name = spec.name;
    if (typeof name !== 'string' || name === '' || Buffer.byteLength(name) > NAME_LEN) {
      throw invalidArg(`relay.name: ${JSON.stringify(name)} is not a name of 1..${NAME_LEN} bytes`);
    }
    if (this.relays.has(name)) throw invalidArg(`relay "${name}" already exists`);
    if (this.relays.size >= MAX_RELAYS) throw invalidArg(`relay "${name}": the engine holds at most ${MAX_RELAYS} relays`);
    const listen = toEndpoint(spec.listen, `relay "${name}".listen`);
    for (const r of this.relays.values()) {
      if (sameEndpoint(r.listen, listen)) throw invalidArg(`relay "${name}".listen: ${keyOf(listen)} is already relay "${r.name}"'s listen address`);
      for (const o of r.outputs.values()) {
        if (sameEndpoint(o.to, listen)) {
          throw invalidArg(`relay "${name}".listen: ${keyOf(listen)} is a subscriber of relay "${r.name}" (the packets would loop)`);
        }
      }
    }
    if (!Array.isArray(spec.sources) || spec.sources.length === 0) {
      throw invalidArg(`relay "${name}".sources: at least one source prefix is required (a relay must not be an open amplifier; use "0.0.0.0/0" to allow anyone)`);
    }
    if (spec.sources.length > MAX_PREFIXES) throw invalidArg(`relay "${name}".sources: ${spec.sources.length} prefixes, at most ${MAX_PREFIXES}`);
    const sources = spec.sources.map((s, i) => toPrefix(s, `relay "${name}".sources[${i}]`));
    sources.forEach((p, i) => {
      if (p.family !== listen.family) {
        throw invalidArg(`relay "${name}".sources[${i}]: ${p.address}/${p.length} is IPv${p.family}, the listen address ${keyOf(listen)} is IPv${listen.family}`);
      }
    });
    const subs = (spec.subscribers ?? []).map((s, i) => toEndpoint(s, `relay "${name}".subscribers[${i}]`));
    const relay: RelayState = { id: this.nextRelayId++, counter: this.takeSlot(name), name, listen, sources, outputs: new Map() };
    // kernel rule first: from now on nothing sent to P reaches the host's
    // UDP layer (no ICMP unreachable while the engine learns the relay)
    try {
      await this.nft?.add(name, listen);
      await this.channel.send(OP.RELAY_ADD, `relay "${name}" (${keyOf(listen)})`, (w, b) =>
        w.relayAdd(b, { relayId: relay.id, counter: relay.counter, family: listen.family, port: listen.port, addr: listen.address, name }),
      );
    } catch (e) {
      this.freeSlot(relay.counter);
      await this.nft?.remove(name).catch(() => undefined);
      throw e;
    }
    this.relays.set(name, relay);
    try {
      for (const p of sources) {
        await this.channel.send(OP.RELAY_ALLOW, `relay "${name}" source ${p.address}/${p.length}`, (w, b) =>
          w.relayAllow(b, { relayId: relay.id, family: p.family, length: p.length, addr: p.address }),
        );
      }
      for (const s of subs) await this.addOutput(name, s);
    } catch (e) {
      await this.removeRelay(name).catch(() => undefined);
      throw e;
    }
  }

  async removeRelay(name: string): Promise<void> {
    const r = this.relays.get(name);
    if (!r) throw invalidArg(`relay "${String(name)}" does not exist (relays: ${[...this.relays.keys()].join(', ') || 'none'})`);
    this.relays.delete(name);
    try {
      await this.channel.send(OP.RELAY_REMOVE, `remove relay "${name}"`, (w, b) => w.relayRef(b, r.id));
    } finally {
      for (const o of r.outputs.values()) this.freeSlot(o.id);
      this.freeSlot(r.counter);
      // after the engine stopped relaying: the kernel rule goes last
      await this.nft?.remove(name);
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
    const from = opts.source === undefined ? r.listen : toEndpoint(opts.source, `${what} ${k}: source`);
    if (from.family !== to.family) throw invalidArg(`${what} ${k}: source ${keyOf(from)} is not IPv${to.family}`);
    const { dscp, ttl } = opts;
    if (dscp !== undefined && (!Number.isInteger(dscp) || dscp < 0 || dscp > 63)) throw invalidArg(`${what} ${k}: dscp ${String(dscp)} is not in 0..63`);
    if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 1 || ttl > 255)) throw invalidArg(`${what} ${k}: ttl ${String(ttl)} is not in 1..255`);
    let total = 0;
    for (const o of this.relays.values()) total += o.outputs.size;
    if (total >= MAX_OUTPUTS) throw invalidArg(`${what} ${k}: the engine holds at most ${MAX_OUTPUTS} outputs`);
    const hop = await this.nextHop(to.address);
    const out: OutputState = { id: this.takeSlot(`${what} ${k}`), to, from, mac: hop?.mac ?? null };
    r.outputs.set(k, out);
    try {
      await this.channel.send(OP.OUTPUT_ADD, `${what} ${k}`, (w, b) =>
        w.outputAdd(b, {
          relayId: r.id,
          outputId: out.id,
          family: to.family,
          flags: (out.mac ? OUT_F_MAC_VALID : 0) | (dscp !== undefined ? OUT_F_DSCP : 0) | (ttl !== undefined ? OUT_F_TTL : 0),
          ttl: ttl ?? 0,
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
    } finally {
      this.freeSlot(out.id);
    }
  }

  outputStats(relayName: string, subscriber: Endpoint | string): { packets: bigint; bytes: bigint; drops: bigint } | null {
    const r = this.relays.get(relayName);
    if (!r) return null;
    const out = r.outputs.get(keyOf(toEndpoint(subscriber, `relay "${relayName}" subscriber`)));
    return out ? this.engine.region.outputCounters(out.id) : null;
  }

  /** Packets matched by the relay, and drops for sources outside its prefixes. */
  relayStats(relayName: string): { packets: bigint; bytes: bigint; notAllowed: bigint } | null {
    const r = this.relays.get(relayName);
    if (!r) return null;
    const c = this.engine.region.outputCounters(r.counter);
    return { packets: c.packets, bytes: c.bytes, notAllowed: c.drops };
  }

  /** Re-resolve every output's next hop; push the MACs that changed. */
  async refreshNextHops(): Promise<void> {
    this.hops.clear();
    for (const r of [...this.relays.values()]) {
      for (const out of [...r.outputs.values()]) {
        const hop = await this.nextHop(out.to.address).catch(() => null);
        const mac = hop?.mac ?? null;
        if (mac === out.mac || !r.outputs.has(keyOf(out.to))) continue;
        out.mac = mac;
        await this.channel.send(OP.OUTPUT_SET_MAC, `relay "${r.name}" subscriber ${keyOf(out.to)} next hop`, (w, b) =>
          w.outputMac(b, { relayId: r.id, outputId: out.id, dstMac: mac ?? '00:00:00:00:00:00', valid: mac !== null }),
        );
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
    if (s !== undefined) return s;
    if (this.nextSlot >= this.engine.region.maxOutputs) {
      throw invalidArg(`${what}: no output counter left (region.maxOutputs = ${this.engine.region.maxOutputs})`);
    }
    return this.nextSlot++;
  }

  private freeSlot(s: number): void {
    this.freeSlots.push(s);
  }
}
