// SPDX-License-Identifier: MIT
// Start test/fixtures/udp-receiver.js inside a testbed host and wait until it
// is bound, so a sender started afterwards cannot race the bind.
import { join } from 'node:path';
import type { ReceiverResult } from '../fixtures/udp-receiver';
import { followFixture } from './fixture-process';
import type { Testbed } from './testbed';

export type { ReceiverResult };

export interface ReceiverOptions {
  bind: string; // "ADDR:PORT" or "[ADDR]:PORT"
  count: number;
  timeoutMs: number;
  idleMs?: number;
  timestamps?: boolean;
  list?: boolean;
}

export interface RunningReceiver {
  /** Resolves with the receiver's result line once it exits. */
  result: Promise<ReceiverResult>;
}

export const RECEIVER_JS = join(__dirname, '..', 'fixtures', 'udp-receiver.js');

export async function startReceiver(tb: Testbed, host: string, o: ReceiverOptions): Promise<RunningReceiver> {
  const argv = [process.execPath, RECEIVER_JS, '--bind', o.bind, '--count', String(o.count), '--timeout-ms', String(o.timeoutMs)];
  if (o.idleMs) argv.push('--idle-ms', String(o.idleMs));
  if (o.timestamps) argv.push('--timestamps');
  if (o.list === false) argv.push('--no-list');
  const f = followFixture<ReceiverResult>(tb.spawn(host, argv), `udp-receiver in ${host}`);
  await f.ready;
  return { result: f.result };
}
