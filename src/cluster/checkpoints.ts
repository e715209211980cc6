// SPDX-License-Identifier: MIT
// Session checkpoints: every checkpoint_ms the node writes where each of its
// sessions is in its file (next packet, pass) to PREFIX/checkpoints/NAME, so
// that the node taking a session over after this one died resumes near where
// it stopped instead of at the beginning of the file.
//
// All of a node's sessions go in a few transactions per interval (etcd takes
// at most 128 operations per transaction by default), each fenced by the
// node's registration: a node whose lease expired (cut off, then back) does
// not overwrite the checkpoints of the node that took its sessions. A
// checkpoint carries the session's identity (file, destination, format,
// loop): one written for an earlier definition of the session is not used.
//
// A session that ended on its own (a file played once) gets a last
// checkpoint marked `ended`: no node runs that definition again, not the
// next apply here and not a node taking the placement over. A changed
// definition (another identity) runs afresh; `ctl apply` without it deletes
// the checkpoint with the session.
import type { Etcd3 } from 'etcd3';
import { sessionIdentity } from '../config/diff';
import type { SessionConfig, SessionPosition } from '../config/schema';
import type { Logger } from '../log';
import type { ClusterKeys } from './keys';

export interface Checkpoint {
  node: string;
  /** sessionIdentity() of the definition it was written for */
  identity: string;
  packet: number;
  pass: number;
  /** Unix ms when written */
  at: number;
  /** the session ended on its own at this position: not to be run again */
  ended?: true;
}

export function decodeCheckpoint(text: string | null | undefined): Checkpoint | null {
  if (!text) return null;
  try {
    const c = JSON.parse(text) as Partial<Checkpoint>;
    if (typeof c.identity !== 'string' || !Number.isInteger(c.packet) || !Number.isInteger(c.pass) || typeof c.node !== 'string') return null;
    if (c.ended !== undefined && c.ended !== true) return null;
    return c as Checkpoint;
  } catch {
    return null;
  }
}

/** Where to resume `spec` from, given its checkpoint (null: from the beginning). */
export function resumeFrom(spec: SessionConfig, cp: Checkpoint | null): SessionPosition | null {
  if (!cp || cp.identity !== sessionIdentity(spec) || cp.ended) return null;
  return { packet: cp.packet, pass: cp.pass };
}

/** `spec` ended on its own already (its checkpoint says so for this very definition). */
export function endedBefore(spec: SessionConfig, cp: Checkpoint | null): boolean {
  return cp !== null && cp.ended === true && cp.identity === sessionIdentity(spec);
}

/** etcd's default --max-txn-ops is 128; one is the fence. */
const PUTS_PER_TXN = 100;

export interface CheckpointWriterOptions {
  client: Etcd3;
  keys: ClusterKeys;
  node: string;
  lease: () => string | null;
  /** positions of the sessions running here */
  positions: () => Promise<Map<string, SessionPosition>>;
  /** the sessions this node holds and runs, by name */
  owned: () => ReadonlyMap<string, SessionConfig>;
  intervalMs: number;
  log: Logger;
}

export class CheckpointWriter {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private last = new Map<string, string>();
  /** sessions that ended here, their last checkpoint not written yet */
  private readonly ends = new Map<string, Checkpoint>();
  /** transactions that wrote, and that failed (etcd unreachable, fence) */
  written = 0;
  failed = 0;

  constructor(private readonly o: CheckpointWriterOptions) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * `name` (running here as `spec`) ended on its own: its last checkpoint,
   * marked ended, goes out with the next write (now), retried until etcd takes it.
   */
  markEnded(name: string, spec: SessionConfig, at: SessionPosition | undefined): Promise<void> {
    this.ends.set(name, { node: this.o.node, identity: sessionIdentity(spec), packet: at?.packet ?? 0, pass: at?.pass ?? 0, at: Date.now(), ended: true });
    return this.tick();
  }

  /** Write the positions that changed since the last write (one interval's work). */
  async tick(): Promise<void> {
    const lease = this.o.lease();
    if (this.busy || lease === null) return;
    this.busy = true;
    try {
      const owned = this.o.owned();
      const puts: Array<[string, string]> = [];
      for (const [name, cp] of this.ends) {
        puts.push([name, JSON.stringify(cp)]);
        this.last.set(name, 'ended');
      }
      const positions = owned.size ? await this.o.positions() : new Map<string, SessionPosition>();
      const now = Date.now();
      for (const [name, spec] of owned) {
        if (this.ends.has(name) || this.last.get(name) === 'ended') continue;
        const p = positions.get(name);
        if (!p) continue;
        const identity = sessionIdentity(spec);
        const mark = `${identity}|${p.packet}|${p.pass}`;
        if (this.last.get(name) === mark) continue;
        this.last.set(name, mark);
        puts.push([name, JSON.stringify({ node: this.o.node, identity, packet: p.packet, pass: p.pass, at: now } satisfies Checkpoint)]);
      }
      for (const name of this.last.keys()) if (!owned.has(name) && !this.ends.has(name)) this.last.delete(name);
      const c = this.o.client;
      for (let i = 0; i < puts.length; i += PUTS_PER_TXN) {
        const chunk = puts.slice(i, i + PUTS_PER_TXN);
        try {
          const r = await c
            .if(this.o.keys.node(this.o.node), 'Lease', '==', lease)
            .then(...chunk.map(([name, v]) => c.put(this.o.keys.checkpoint(name)).value(v)))
            .commit();
          if (r.succeeded) {
            this.written++;
            for (const [name] of chunk) this.ends.delete(name);
          } else {
            this.failed++;
            for (const [name] of chunk) this.last.delete(name);
          }
        } catch (err) {
          this.failed++;
          for (const [name] of chunk) this.last.delete(name);
          this.o.log.debug('cluster checkpoint write failed (retried next interval)', { err });
        }
      }
    } catch (err) {
      this.o.log.debug('cluster checkpoint: positions unavailable', { err });
    } finally {
      this.busy = false;
    }
  }
}
