// SPDX-License-Identifier: MIT
// Follow a fixture process that prints {"ready":true,...} once it listens,
// then exactly one JSON result line, and exits 0 (udp-receiver,
// port-receiver, save-receiver, origin-sender).
import type { ChildProcess } from 'node:child_process';

export interface Followed<T> {
  /** resolves at the ready line (never, for fixtures that print none) */
  ready: Promise<void>;
  /** the result line, parsed; rejects with stderr and stdout when the fixture fails */
  result: Promise<T>;
}

export function followFixture<T>(child: ChildProcess, what: string, readyMs = 5000): Followed<T> {
  let out = '';
  let err = '';
  let onReady: (() => void) | undefined;
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    if (onReady && out.includes('"ready":true')) onReady();
  });
  const result = new Promise<T>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      const lines = out.trim().split('\n').filter((l) => l && !l.includes('"ready":true'));
      if (code !== 0 || lines.length !== 1) reject(new Error(`${what} exited ${code ?? sig}: ${err.trim()} ${out.trim()}`));
      else resolve(JSON.parse(lines[0]) as T);
    });
  });
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    if (out.includes('"ready":true')) resolve();
    result.catch(reject);
    setTimeout(() => reject(new Error(`${what} not ready after ${readyMs} ms: ${err}`)), readyMs).unref();
  });
  // a caller awaits one of the two; the other must not become an unhandled rejection
  result.catch(() => undefined);
  ready.catch(() => undefined);
  return { ready, result };
}
