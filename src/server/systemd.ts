// SPDX-License-Identifier: MIT
// The service manager's notify protocol (sd_notify(3)), for Type=notify units
// (deploy/systemd/reflector.service): READY=1 once relays and sessions run,
// RELOADING=1 with MONOTONIC_USEC then READY=1 around each reload,
// STOPPING=1 when an orderly stop begins, WATCHDOG=1 every half of
// WATCHDOG_USEC while the server is healthy. Each message is one datagram on
// NOTIFY_SOCKET, sent through the addon (Node has no AF_UNIX datagram
// sockets). Without NOTIFY_SOCKET there is no notifier at all.
import type { Logger } from '../log';
import { monotonicNs } from '../monotonic';

export interface Notifier {
  /** READY=1 with a STATUS= line (after start, and after each reload). */
  ready(status: string): void;
  /** RELOADING=1 and MONOTONIC_USEC= (CLOCK_MONOTONIC, as systemd compares it). */
  reloading(): void;
  /** STOPPING=1. */
  stopping(): void;
  /** Stop the watchdog timer. */
  close(): void;
}

export interface NotifierOptions {
  env?: NodeJS.ProcessEnv;
  log: () => Logger;
  /** still worth a WATCHDOG=1 (false: the engine died under a running server; systemd restarts it) */
  healthy: () => boolean;
  /** one datagram; "" or what failed (default: the addon's sdNotify) */
  send?: (socket: string, message: string) => string;
}

/** The notifier for this process, or null when no service manager asked for one. */
export function systemdNotifier(opts: NotifierOptions): Notifier | null {
  const env = opts.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return null;
  // as sd_notify(unset_environment=1): the programs this server runs (ip) must not talk to systemd for it
  delete env.NOTIFY_SOCKET;
  const send =
    opts.send ??
    ((s: string, m: string): string => {
      // loaded only under a service manager: the addon is there whenever the engine is
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { native } = require('../native') as typeof import('../native');
      return native().sdNotify(s, m);
    });
  let failed = false;
  const notify = (fields: string[]): void => {
    const err = send(socket, fields.join('\n'));
    if (err && !failed) {
      // once: a manager that is gone would otherwise fill the log every watchdog tick
      failed = true;
      opts.log().warn('cannot notify the service manager', { socket, message: fields[0], reason: err });
    } else if (!err) failed = false;
  };

  let timer: NodeJS.Timeout | null = null;
  const usec = Number(env.WATCHDOG_USEC ?? 0);
  const pid = env.WATCHDOG_PID;
  delete env.WATCHDOG_USEC;
  delete env.WATCHDOG_PID;
  if (Number.isFinite(usec) && usec > 0 && (!pid || Number(pid) === process.pid)) {
    // half the timeout, as sd_watchdog_enabled(3) advises
    const everyMs = Math.max(1, Math.floor(usec / 2000));
    timer = setInterval(() => {
      if (opts.healthy()) notify(['WATCHDOG=1']);
    }, everyMs);
    timer.unref();
    opts.log().info('systemd watchdog on', { intervalMs: everyMs });
  }

  return {
    ready: (status) => notify(['READY=1', `STATUS=${status}`]),
    reloading: () => notify(['RELOADING=1', `MONOTONIC_USEC=${monotonicNs() / 1000n}`, 'STATUS=reloading the config']),
    stopping: () => notify(['STOPPING=1', 'STATUS=stopping']),
    close: () => {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}
