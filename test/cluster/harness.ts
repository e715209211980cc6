// SPDX-License-Identifier: MIT
// Shared pieces of the cluster tests: a cluster config, waiting for a
// condition, a logger that keeps its lines.
import type { ClusterConfig } from '../../src/config/schema';
import { createLogger, type Logger } from '../../src/log';

export function clusterConfig(etcd: string, node: string, extra: Partial<ClusterConfig> = {}): ClusterConfig {
  return {
    etcd: [etcd],
    node,
    prefix: '/t/',
    leaseS: 2,
    checkpointMs: 200,
    tls: { ca: null, cert: null, key: null },
    auth: { username: null, passwordFile: null },
    ...extra,
  };
}

/** Poll `fn` until it returns a truthy value; rejects with `what` after timeoutMs. */
export async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 10000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface KeptLog {
  log: Logger;
  lines: Array<Record<string, unknown>>;
}

/** A logger whose JSON lines are kept (and printed when REFLECTOR_TEST_LOG is set). */
export function keptLog(): KeptLog {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({
    level: 'debug',
    write: (l) => {
      lines.push(JSON.parse(l) as Record<string, unknown>);
      if (process.env.REFLECTOR_TEST_LOG) process.stderr.write(l);
    },
  });
  return { log, lines };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
