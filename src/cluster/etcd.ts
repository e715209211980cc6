// SPDX-License-Identifier: MIT
// The etcd client of a node and of `reflector ctl --etcd`: the maintained
// `etcd3` package (over @grpc/grpc-js), set up for a data plane that must
// notice an outage quickly and come back as soon as etcd does:
//
// - every unary call has a deadline (an unreachable etcd fails a call in
//   CALL_TIMEOUT_MS instead of hanging it);
// - no per-host circuit breaker (etcd3's default keeps a host closed for 5 s
//   after three failures, longer than a short lease), the global retry over
//   the hosts stays;
// - watch streams and gRPC channels reconnect within a second (the defaults
//   back off to 30 s and 120 s: a node would stay behind long after etcd
//   returned).
import * as fs from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import type { ClusterConfig } from '../config/schema';
import { ReflectorError } from '../errors';

export const CALL_TIMEOUT_MS = 5000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 1000;

type Backoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;
type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/** Doubling from RECONNECT_MIN_MS to RECONNECT_MAX_MS (cockatiel's IBackoff shape). */
function reconnectBackoff(ms = RECONNECT_MIN_MS): Backoff {
  return { duration: ms, next: () => reconnectBackoff(Math.min(ms * 2, RECONNECT_MAX_MS)) } as Backoff;
}

/** A host policy that lets every call through (cockatiel's IPolicy shape; etcd3 calls only execute()). */
function passThrough(): HostPolicy {
  const signal = new AbortController().signal;
  return { execute: async <T>(fn: (c: { signal: AbortSignal }) => PromiseLike<T> | T) => fn({ signal }) } as unknown as HostPolicy;
}

export type EtcdTarget = Pick<ClusterConfig, 'etcd' | 'tls' | 'auth'>;

/** The etcd3 options for `t`; reads the TLS and password files (ERR_CLUSTER naming the file). */
export function etcdOptions(t: EtcdTarget): IOptions {
  const read = (what: string, f: string): Buffer => {
    try {
      return fs.readFileSync(f);
    } catch (err) {
      throw new ReflectorError('ERR_CLUSTER', `cluster.${what}: cannot read ${f}: ${(err as Error).message}`, { cause: err });
    }
  };
  const opts: IOptions = {
    hosts: t.etcd,
    dialTimeout: CALL_TIMEOUT_MS,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
    faultHandling: { host: () => passThrough(), watchBackoff: reconnectBackoff() },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': RECONNECT_MIN_MS,
      'grpc.max_reconnect_backoff_ms': RECONNECT_MAX_MS,
      // a silent etcd (stopped, not closed) is found by pings; etcd accepts one every 5 s
      'grpc.keepalive_time_ms': 5000,
      'grpc.keepalive_timeout_ms': 3000,
      'grpc.keepalive_permit_without_calls': 1,
    },
  };
  if (t.tls.ca || t.tls.cert) {
    opts.credentials = {
      // null: the system roots
      rootCertificate: (t.tls.ca ? read('tls.ca', t.tls.ca) : null) as Buffer,
      ...(t.tls.cert && t.tls.key ? { certChain: read('tls.cert', t.tls.cert), privateKey: read('tls.key', t.tls.key) } : {}),
    };
  }
  if (t.auth.username && t.auth.passwordFile) {
    const password = read('auth.password_file', t.auth.passwordFile).toString('utf8').split('\n')[0].replace(/\r$/, '');
    opts.auth = { username: t.auth.username, password };
  }
  return opts;
}

export function connectEtcd(t: EtcdTarget): Etcd3 {
  return new Etcd3(etcdOptions(t));
}

/** The first line of an etcd call's error (grpc-js ends its messages with an empty "Resolution note: "). */
export function etcdMessage(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].replace(/\s*Resolution note:\s*$/, '');
}

/** "etcd at URL, ...: message" for an error of an etcd call. */
export function etcdError(t: EtcdTarget, what: string, err: unknown): ReflectorError {
  return new ReflectorError('ERR_CLUSTER', `${what}: etcd at ${t.etcd.join(', ')}: ${etcdMessage(err)}`, { cause: err });
}
