// SPDX-License-Identifier: MIT
// What happened to the objects a server runs, as typed events: the control
// API's Watch stream pushes them, the logs and the tests read them. One
// ServerEvents per Server. A listener that throws is the listener's bug: it
// is logged by the emitter's owner and never reaches the code that emitted.
//
// Adding a variant is backwards compatible (Watch clients ignore types they
// do not know); renaming or removing one is not.
import { EventEmitter } from 'node:events';

export type ServerEvent =
  /** a session played to its end (loop: false) and left the running state */
  | { type: 'session_ended'; session: string }
  /** a session stopped on an error (bad media, worker crash, ...) and left the running state */
  | { type: 'session_failed'; session: string; code: string; reason: string }
  /** a relay or one of its outputs cannot do its job (engine refused a change, next hop lost, ...) */
  | { type: 'relay_fault'; relay: string; subscriber?: string; code: string; reason: string }
  /** a config reload was applied (possibly with errors: `errors` lists what failed) */
  | { type: 'reload_applied'; reason: string; errors: string[] }
  /** a config reload was refused: the running config stays */
  | { type: 'reload_refused'; reason: string; problems: string[] }
  /** the engine stopped (server stop, or a fault) */
  | { type: 'engine_stopped'; reason: string }
  /** a session worker crashed or hung; each of `sessions` is then restarted or failed */
  | { type: 'worker_died'; lane: number; reason: string; sessions: string[]; reclaimed: number | null }
  /** a session moved to a new worker after its worker died (it plays from the top of its file) */
  | { type: 'session_restarted'; session: string; reason: string }
  /** an engine thread reported an error (RF_EVENT_ERROR) or stopped on its own */
  | { type: 'engine_error'; thread: 'tx' | 'rx'; code: string; reason: string }
  /** the engine quarantined a lane (a session worker's, or the control channel) that broke the region's rules */
  | { type: 'lane_quarantined'; lane: number; fault: string; faults: number; reason: string };

export type ServerEventType = ServerEvent['type'];

/** An event with the time it was emitted (ms since the epoch). */
export type StampedEvent = ServerEvent & { at: number };

export class ServerEvents {
  private readonly emitter = new EventEmitter();

  constructor(private readonly onListenerError: (err: unknown, ev: StampedEvent) => void = () => undefined) {
    // one listener per Watch stream: many clients are fine, a leak is not
    this.emitter.setMaxListeners(0);
  }

  emit(ev: ServerEvent): void {
    const stamped: StampedEvent = { ...ev, at: Date.now() };
    for (const l of this.emitter.listeners('event') as Array<(e: StampedEvent) => void>) {
      try {
        l(stamped);
      } catch (err) {
        this.onListenerError(err, stamped);
      }
    }
  }

  /** Calls `fn` for every later event; returns the function that stops it. */
  subscribe(fn: (ev: StampedEvent) => void): () => void {
    this.emitter.on('event', fn);
    return () => this.emitter.off('event', fn);
  }

  get listenerCount(): number {
    return this.emitter.listenerCount('event');
  }
}
