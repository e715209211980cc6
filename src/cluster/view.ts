// SPDX-License-Identifier: MIT
// A node's copy of the watched keys (src/cluster/keys.ts: everything but the
// checkpoints), kept current by one etcd watch: list once at a revision R,
// then watch from R + 1, so no change is missed and none is seen twice.
//
// After a disconnection the watch is made again from the last revision seen
// plus one (etcd replays what happened meanwhile), not from scratch: what did
// not change produces no change event and so restarts nothing. Only when etcd
// has compacted that revision away does the view list again, and then it
// reports exactly the keys whose value differs from its copy.
//
// etcd3's Watcher reconnects by itself too, but it moves its resume revision
// to the server's current one as soon as the new stream is created, before
// the replayed events arrive; a second break in between would lose them. So
// the view cancels a broken watcher and makes its own, after a probe call
// shows etcd answers again (no busy loop while it does not).
import { EventEmitter } from 'node:events';
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import type { Logger } from '../log';
import type { ClusterKeys } from './keys';

export interface KV {
  value: string;
  /** revision of the last change */
  mod: number;
  create: number;
  /** lease ID (decimal), "0" when none */
  lease: string;
}

export interface ViewChange {
  /** keys whose value changed, appeared or disappeared */
  keys: string[];
  /** the revision the view now reflects */
  revision: number;
}

export class ClusterView extends EventEmitter {
  readonly kvs = new Map<string, KV>();
  private rev = 0;
  private watcher: Watcher | null = null;
  private isConnected = false;
  private stopped = false;
  private reconnecting: Promise<void> | null = null;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: ClusterKeys,
    private readonly log: Logger,
  ) {
    super();
  }

  /** The revision the view reflects. */
  get revision(): number {
    return this.rev;
  }

  /** The watch stream is up. */
  get connected(): boolean {
    return this.isConnected;
  }

  /** List, then watch. Rejects when etcd cannot be reached (the caller retries). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.list();
    await this.watch();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const w = this.watcher;
    this.watcher = null;
    this.isConnected = false;
    await w?.cancel().catch(() => undefined);
    await this.reconnecting?.catch(() => undefined);
  }

  /** Replace the copy with a listing at one revision; emits the keys that differ. */
  private async list(): Promise<void> {
    const r = await this.client.getAll().inRange(this.keys.watched()).exec();
    const fresh = new Map<string, KV>();
    for (const kv of r.kvs) fresh.set(kv.key.toString(), toKV(kv));
    const changed: string[] = [];
    for (const [k, v] of fresh) {
      const old = this.kvs.get(k);
      if (!old || old.mod !== v.mod) changed.push(k);
    }
    for (const k of this.kvs.keys()) if (!fresh.has(k)) changed.push(k);
    this.kvs.clear();
    for (const [k, v] of fresh) this.kvs.set(k, v);
    this.rev = Number(r.header.revision);
    if (changed.length) this.emit('change', { keys: changed, revision: this.rev } satisfies ViewChange);
  }

  private async watch(): Promise<void> {
    const w = await this.client.watch().inRange(this.keys.watched()).startRevision(String(this.rev + 1)).create();
    if (this.stopped) {
      await w.cancel().catch(() => undefined);
      return;
    }
    this.watcher = w;
    w.on('data', (res: IWatchResponse) => this.onData(res));
    w.on('disconnected', (err: Error) => this.onBroken(w, err, false));
    w.on('error', (err: Error) => this.onBroken(w, err, true));
    this.setConnected(true);
  }

  private onData(res: IWatchResponse): void {
    const changed: string[] = [];
    for (const ev of res.events) {
      const k = ev.kv.key.toString();
      if (ev.type === 'Put') this.kvs.set(k, toKV(ev.kv));
      else this.kvs.delete(k);
      changed.push(k);
      this.rev = Math.max(this.rev, Number(ev.kv.mod_revision));
    }
    // a progress notification (no events) moves the revision too: a later resume skips less
    this.rev = Math.max(this.rev, Number(res.header.revision));
    if (changed.length) this.emit('change', { keys: changed, revision: this.rev } satisfies ViewChange);
  }

  private onBroken(w: Watcher, err: Error, canceled: boolean): void {
    if (w !== this.watcher || this.stopped) return;
    this.watcher = null;
    this.setConnected(false);
    this.log.warn(canceled ? 'cluster watch canceled by etcd; listing again' : 'cluster watch disconnected; serving the last state', { revision: this.rev, err });
    void w.cancel().catch(() => undefined);
    this.reconnecting = this.reconnect(canceled);
  }

  /** Probe until etcd answers, then watch from the next revision (or list first, when etcd compacted it). */
  private async reconnect(relist: boolean): Promise<void> {
    let backoff = 100;
    while (!this.stopped) {
      try {
        await this.client.get(this.keys.nodes()).exec();
        if (relist) await this.list();
        await this.watch();
        this.log.info('cluster watch resumed', { revision: this.rev, relisted: relist });
        return;
      } catch (err) {
        // a compacted revision: the watch creation is refused, list again
        if (/compact/i.test((err as Error).message ?? '')) relist = true;
      }
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 1000);
    }
  }

  private setConnected(c: boolean): void {
    if (this.isConnected === c) return;
    this.isConnected = c;
    this.emit(c ? 'connected' : 'disconnected');
  }
}

function toKV(kv: IKeyValue): KV {
  return { value: kv.value.toString(), mod: Number(kv.mod_revision), create: Number(kv.create_revision), lease: kv.lease };
}
