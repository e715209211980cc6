// SPDX-License-Identifier: MIT
// Start test/fixtures/udp-receiver.js inside a testbed host and wait until it
// is bound, so a sender started afterwards cannot race the bind.
import { join } from 'node:path';
import type { ReceiverResult } from '../fixtures/udp-receiver';
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
  const child = tb.spawn(host, argv);
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  let onReady: (() => void) | undefined;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    if (onReady && out.includes('"ready":true')) onReady();
  });
  const result = new Promise<ReceiverResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      const lines = out.trim().split('\n').filter((l) => l && !l.includes('"ready":true'));
      if (code !== 0 || lines.length !== 1) {
        reject(new Error(`udp-receiver in ${host} exited ${code ?? sig}: ${err.trim()} ${out.trim()}`));
        return;
      }
      resolve(JSON.parse(lines[0]) as ReceiverResult);
    });
  });
  await new Promise<void>((resolve, reject) => {
    onReady = resolve;
    if (out.includes('"ready":true')) resolve();
    result.catch(reject);
    setTimeout(() => reject(new Error(`udp-receiver in ${host} not ready after 5 s: ${err}`)), 5000).unref();
  });
  // later rejections are reported through `result`; avoid an unhandled one here
  result.catch(() => undefined);
  return { result };
}
