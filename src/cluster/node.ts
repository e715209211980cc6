// SPDX-License-Identifier: MIT
// A Reflector node of a cluster (docs/cluster.md): the DesiredStateSource
// that takes this node's relays and sessions from etcd.
//
//   lease (node-lease.ts) ── registration (registration.ts)
//   view (view.ts: list at R, watch from R + 1) ── state (state.ts: typed)
//   placement (placement.ts) ── claim: create-if-absent bound to the lease
//   apply (the server's RunningState.applyConfig: only the difference)
//   checkpoints (checkpoints.ts) ── address takeover (takeover.ts)
//
// What this node runs is exactly what it holds a placement for. A claim is
// one transaction: create the placement key if absent, bound to this node's
// lease, and read the session's checkpoint in the same revision. A release
// happens after the server stopped the object, so the next node does not
// start it while this one still sends.
//
// While etcd is unreachable nothing changes here: the node keeps serving
// its last state, says so in notReady() and `connected`, and resumes the
// watch from the last revision when etcd returns.
import { ClusterWriter } from './writer';
import type { Etcd3 } from 'etcd3';
import { sessionIdentity } from '../config/diff';
import type { ClusterConfig, RelayConfig, SessionConfig, SessionPosition } from '../config/schema';
import { ReflectorError } from '../errors';
import type { Logger } from '../log';
import { CheckpointWriter, decodeCheckpoint, endedBefore, resumeFrom } from './checkpoints';
import type { DesiredState } from './desired';
import { connectEtcd, etcdError } from './etcd';
import { ClusterKeys, type EntryKind } from './keys';
import { NodeLease } from './node-lease';
import { plan, refKey, type Ref } from './placement';
import { nodeInfo, NodeNameTaken, register, type NodeInfo } from './registration';
import type { ApplyDesired, DesiredStateSource } from './source';
import { ClusterState } from './state';
import { AddressTakeover, movesAddress } from './takeover';
import { ClusterView, type ViewChange } from './view';

export interface ClusterNodeOptions {
  cluster: ClusterConfig;
  /** the engine's interface and namespace (relay address takeover) */
  engine: { interface: string; netns: string | null };
  version: string;
  log: Logger;
  /** where each running session is (SessionManagerLike.positions) */
  positions: () => Promise<Map<string, SessionPosition>>;
  /** something retrying cannot fix happened after start() (another node took this name): the server stops */
  onFatal?: (err: Error) => void;
  /** tests: another announcer, another client */
  takeover?: AddressTakeover;
  client?: Etcd3;
}

interface Held {
  /** revision of the claim (or of the first listing that showed it) */
  rev: number;
  /** a session's checkpoint when claimed, for the first start here */
  resume?: { identity: string; position: SessionPosition };
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;

export class ClusterNode implements DesiredStateSource {
  private readonly keys: ClusterKeys;
  private readonly client: Etcd3;
  private readonly lease: NodeLease;
  private readonly view: ClusterView;
  private readonly state: ClusterState;
  private readonly info: NodeInfo;
  private readonly checkpoints: CheckpointWriter;
  private readonly takeover: AddressTakeover;
  private readonly log: Logger;
  private apply: ApplyDesired | null = null;
  /** placements this node holds, by refKey */
  private readonly held = new Map<string, Held>();
  /** sessions that ended on their own (here, or before a claim), by name: the identity that ended */
  private readonly ended = new Map<string, string>();
  /** what the server runs now (the last desired state applied) */
  private running: DesiredState = { relays: [], sessions: [] };
  private dirty = false;
  private reconciling: Promise<void> | null = null;
  private connecting: Promise<void> | null = null;
  private stopped = false;
  private isSynced = false;
  private disconnectedSince: number | null = null;
  private lastError: string | null = null;

  constructor(private readonly o: ClusterNodeOptions) {
    const c = o.cluster;
    this.log = o.log.child({ node: c.node });
    this.keys = new ClusterKeys(c.prefix);
    this.client = o.client ?? connectEtcd(c);
    this.lease = new NodeLease(this.client, c.leaseS, this.log);
    this.view = new ClusterView(this.client, this.keys, this.log);
    this.state = new ClusterState(this.keys, this.log);
    this.info = nodeInfo(c.node, o.version);
    this.takeover = o.takeover ?? new AddressTakeover({ interface: o.engine.interface, netns: o.engine.netns, lifetimeS: c.leaseS, log: this.log });
    this.checkpoints = new CheckpointWriter({
      client: this.client,
      keys: this.keys,
      node: c.node,
      lease: () => (this.connected ? this.lease.id : null),
      positions: o.positions,
      owned: () => new Map(this.running.sessions.map((s) => [s.name, s])),
      intervalMs: c.checkpointMs,
      log: this.log,
    });
    this.view.on('change', (ch: ViewChange) => {
      this.state.update(this.view.kvs, ch.keys);
      this.kick();
    });
    this.view.on('disconnected', () => {
      this.disconnectedSince ??= Date.now();
      this.log.warn('cluster: etcd unreachable, serving the last state', { revision: this.view.revision });
    });
    this.view.on('connected', () => {
      if (this.disconnectedSince !== null) this.log.info('cluster: etcd reachable again', { revision: this.view.revision, after_ms: Date.now() - this.disconnectedSince });
      this.disconnectedSince = null;
      this.kick();
    });
    this.lease.on('expired', () => void this.onLeaseExpired());
  }

  get name(): string {
    return this.o.cluster.node;
  }

  /** The control API's write-through: requests to this node edit the cluster's desired state. */
  writer(): ClusterWriter {
    return new ClusterWriter(this.client, this.keys, this.name);
  }

  get synced(): boolean {
    return this.isSynced;
  }

  get connected(): boolean {
    return this.view.connected && this.lease.healthy;
  }

  /** Revision of the desired state this node reflects. */
  get revision(): number {
    return this.view.revision;
  }

  /**
   * A session of this node's ended on its own (a file played once): it is
   * not run again, by this node or by one taking it over, until its
   * definition changes (docs/cluster.md "Sessions that end").
   */
  sessionEnded(name: string): void {
    const spec = this.running.sessions.find((s) => s.name === name);
    if (!spec) return;
    this.ended.set(name, sessionIdentity(spec));
    this.log.info('cluster session ended: it stays placed here and is not run again', { session: name });
    void this.checkpoints.markEnded(name, spec, undefined);
    this.kick();
  }

  /** What this node holds placements for ("relay/NAME", "session/NAME"). */
  holds(): string[] {
    return [...this.held.keys()].sort();
  }

  notReady(): string | null {
    if (!this.isSynced) return `cluster: not synchronised with etcd yet${this.lastError ? ` (${this.lastError})` : ''}`;
    if (!this.connected) {
      const s = this.disconnectedSince === null ? 0 : Math.round((Date.now() - this.disconnectedSince) / 1000);
      return `cluster: etcd unreachable for ${s} s, serving the last state (revision ${this.view.revision})`;
    }
    return null;
  }

  async start(apply: ApplyDesired): Promise<void> {
    this.apply = apply;
    this.stopped = false;
    try {
      await this.connect();
    } catch (err) {
      if (err instanceof NodeNameTaken) throw err;
      this.noteError('cluster: etcd unreachable at start, retrying in the background', err);
      this.connecting = this.retryConnect();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.checkpoints.stop();
    await this.connecting?.catch(() => undefined);
    await this.reconciling?.catch(() => undefined);
    const online = this.connected;
    // the last positions, so the nodes taking over resume exactly here
    if (online) await this.checkpoints.tick().catch(() => undefined);
    await this.view.stop();
    // an orderly leave: etcd drops the registration and every placement at once
    if (online) await this.lease.revoke();
    else await this.lease.stop();
    await this.takeover.releaseAll();
    if (!this.o.client) this.client.close();
    this.log.info('cluster node left', { holds: this.holds() });
  }

  // ------------------------------------------------------------ connect --

  private async connect(): Promise<void> {
    await this.lease.grant();
    await register(this.client, this.keys, this.info, this.lease, this.log);
    this.lease.start();
    await this.view.start();
    this.state.load(this.view.kvs);
    this.lastError = null;
    this.checkpoints.start();
    this.log.info('cluster node joined', { etcd: this.o.cluster.etcd, prefix: this.o.cluster.prefix, revision: this.view.revision, nodes: [...this.state.live].sort() });
    this.kick();
    await this.reconciling;
  }

  private async retryConnect(): Promise<void> {
    let delay = RETRY_MIN_MS;
    while (!this.stopped) {
      await new Promise((r) => setTimeout(r, delay));
      if (this.stopped) return;
      try {
        await this.lease.stop();
        await this.connect();
        return;
      } catch (err) {
        if (err instanceof NodeNameTaken) return this.fatal(err);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
        this.noteError('cluster: etcd still unreachable, retrying', err, delay);
      }
    }
  }

  private async onLeaseExpired(): Promise<void> {
    if (this.stopped) return;
    // etcd deleted the registration and every placement: others take them; re-join and claim what is still ours to take
    this.held.clear();
    try {
      await this.lease.grant();
      await register(this.client, this.keys, this.info, this.lease, this.log);
      this.kick();
    } catch (err) {
      if (err instanceof NodeNameTaken) return this.fatal(err);
      this.noteError('cluster: re-registration after the lease expired failed, retrying', err);
      setTimeout(() => void this.onLeaseExpired(), RETRY_MIN_MS).unref();
    }
  }

  private fatal(err: Error): void {
    this.log.error('cluster: this node cannot stay in the cluster', { err });
    this.o.onFatal?.(err);
  }

  private noteError(msg: string, err: unknown, retryMs?: number): void {
    const e = err instanceof ReflectorError ? err : etcdError(this.o.cluster, 'cluster', err);
    this.lastError = e.message;
    this.log.error(msg, { err: e, ...(retryMs !== undefined ? { retry_ms: retryMs } : {}) });
  }

  // ---------------------------------------------------------- reconcile --

  /** Reconcile soon (changes that arrive meanwhile are merged into one pass). */
  private kick(): void {
    this.dirty = true;
    if (!this.reconciling && this.apply) this.reconciling = this.loop().finally(() => (this.reconciling = null));
  }

  private async loop(): Promise<void> {
    while (this.dirty && !this.stopped) {
      this.dirty = false;
      try {
        await this.reconcile();
      } catch (err) {
        this.log.error('cluster: reconcile failed, retrying', { err });
        await new Promise((r) => setTimeout(r, RETRY_MIN_MS));
        this.dirty = true;
      }
    }
  }

  private async reconcile(): Promise<void> {
    const me = this.name;
    const lease = this.lease.id;
    const connected = this.connected && lease !== null;
    this.syncHeld(lease);
    const p = plan(this.state, me);
    if (connected) {
      await Promise.all(p.claim.map((r) => this.claim(r, lease).catch((err: Error) => this.log.warn('cluster claim failed', { ...r, err }))));
    }
    const release = new Set(p.release.map((r) => refKey(r.kind, r.name)));
    for (const [name, identity] of this.ended) {
      const s = this.state.sessions.get(name);
      if (!s || sessionIdentity(s) !== identity) this.ended.delete(name);
    }
    const desired: DesiredState = { relays: [], sessions: [] };
    for (const [k, h] of this.held) {
      if (release.has(k)) continue;
      const [kind, name] = splitRef(k);
      if (kind === 'relay') {
        const r = this.state.relays.get(name);
        if (r) desired.relays.push(r);
      } else {
        const s = this.state.sessions.get(name);
        if (s && this.ended.get(name) !== sessionIdentity(s)) desired.sessions.push(h.resume && h.resume.identity === sessionIdentity(s) ? { ...s, resume: h.resume.position } : s);
      }
    }
    // a moving unicast address first: the engine's relay is useless until senders reach this node
    for (const r of desired.relays) {
      if (movesAddress(r) && !this.takeover.addresses().includes(r.listen.address)) {
        await this.takeover.acquire(r.listen).catch((err: Error) => this.log.error('cluster address takeover failed', { relay: r.name, address: r.listen.address, err }));
      }
    }
    await this.apply!(desired);
    // a checkpoint is for the first start here; a later restart (a changed definition) starts afresh
    for (const s of desired.sessions) if (s.resume) delete this.held.get(refKey('session', s.name))?.resume;
    const before = this.running;
    this.running = desired;
    this.isSynced = this.isSynced || connected;
    const kept = new Set(desired.relays.map((r) => r.listen.address));
    for (const r of before.relays) {
      if (movesAddress(r) && !kept.has(r.listen.address)) await this.takeover.release(r.listen);
    }
    if (connected) for (const k of release) await this.release(k, lease);
  }

  /** Bring `held` in line with the placements the view shows (claims the watch has not shown yet stay). */
  private syncHeld(lease: string | null): void {
    for (const [k, p] of this.state.placements) {
      if (p.node === this.name && p.lease === lease && !this.held.has(k)) this.held.set(k, { rev: this.view.revision });
    }
    for (const [k, h] of this.held) {
      const p = this.state.placements.get(k);
      const gone = p ? p.node !== this.name || p.lease !== lease : this.view.revision >= h.rev;
      if (gone) this.held.delete(k);
    }
  }

  private async claim(r: Ref, lease: string): Promise<void> {
    const key = this.keys.placement(r.kind, r.name);
    const c = this.client;
    const value = JSON.stringify({ node: this.name });
    const then = [c.put(key).value(value).lease(lease), ...(r.kind === 'session' ? [c.get(this.keys.checkpoint(r.name))] : [])];
    const res = await c.if(key, 'Create', '==', 0).then(...then).commit();
    if (!res.succeeded) return;
    const rev = Number(res.header.revision);
    const held: Held = { rev };
    if (r.kind === 'session') {
      const spec = this.state.sessions.get(r.name);
      const cp = decodeCheckpoint(res.responses[1]?.response_range?.kvs?.[0]?.value?.toString());
      const pos = spec ? resumeFrom(spec, cp) : null;
      if (spec && pos) held.resume = { identity: sessionIdentity(spec), position: pos };
      if (spec && endedBefore(spec, cp)) {
        this.ended.set(r.name, sessionIdentity(spec));
        this.log.info('cluster session placed here, ended already: not run', { session: r.name, revision: rev, ended_on: cp?.node });
      } else this.log.info('cluster session placed here', { session: r.name, revision: rev, resume: pos ?? 'from the beginning', checkpoint_from: cp?.node, checkpoint_age_ms: cp ? Date.now() - cp.at : undefined });
    } else this.log.info('cluster relay placed here', { relay: r.name, revision: rev });
    this.held.set(refKey(r.kind, r.name), held);
  }

  private async release(k: string, lease: string): Promise<void> {
    const [kind, name] = splitRef(k);
    const key = this.keys.placement(kind, name);
    await this.client.if(key, 'Lease', '==', lease).then(this.client.delete().key(key)).commit();
    this.held.delete(k);
    this.log.info(`cluster ${kind} released`, { [kind]: name });
  }
}

function splitRef(k: string): [EntryKind, string] {
  const i = k.indexOf('/');
  return [k.slice(0, i) as EntryKind, k.slice(i + 1)];
}

export type { RelayConfig, SessionConfig };
