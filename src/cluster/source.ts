// SPDX-License-Identifier: MIT
// Where a server's relays and sessions come from: its config file, or (in
// cluster mode) etcd through src/cluster/node.ts. The server applies each
// desired state through RunningState.applyConfig, the same code path as a
// reload: only the difference.
import type { DesiredState } from './desired';
import type { ClusterWriter } from './writer';

export type { DesiredState };

/** Apply a desired state; resolves when it was applied (failures of single objects are logged by the applier). */
export type ApplyDesired = (desired: DesiredState) => Promise<void>;

export interface DesiredStateSource {
  /**
   * Start delivering desired states to `apply`, one at a time (a change
   * arriving during an apply is delivered after it, merged with any other).
   * Rejects only for what retrying cannot fix (another live node has this
   * node's name); an unreachable store is retried in the background.
   */
  start(apply: ApplyDesired): Promise<void>;
  /** Stop delivering (an orderly leave: what this node ran may move at once). */
  stop(): Promise<void>;
  /** A desired state from the store was applied at least once. */
  readonly synced: boolean;
  /** The store answers now. */
  readonly connected: boolean;
  /** Why the node is not ready (for /readyz), or null. */
  notReady(): string | null;
  /** Where the control API writes through to (cluster mode), if the store takes writes. */
  writer?(): ClusterWriter;
  /** A session this source placed here ended on its own (not stopped, not failed): not to be run again. */
  sessionEnded?(name: string): void;
}
