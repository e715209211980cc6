// SPDX-License-Identifier: MIT
// `reflector ctl --etcd URL apply FILE` and `reflector ctl --etcd URL status`:
// manage a cluster's desired state in etcd directly (docs/cluster.md). They
// need no running node. Exit codes as for ctl: 0 ok, 1 refused (an invalid
// file, a concurrent change), 2 usage, 3 etcd unreachable.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { formatProblem, loadConfig, etcdUrlProblem } from '../config/validate';
import type { ClusterConfig } from '../config/schema';
import { ReflectorError } from '../errors';
import { applyEntries } from '../cluster/apply';
import { parseDesiredFile } from '../cluster/desired';
import { CALL_TIMEOUT_MS, connectEtcd, etcdMessage, type EtcdTarget } from '../cluster/etcd';
import { ClusterKeys } from '../cluster/keys';
import { clusterStatus, formatStatus } from '../cluster/status';
import type { Io } from './main';

const OPTIONS = {
  etcd: { type: 'string', multiple: true },
  config: { type: 'string' },
  prefix: { type: 'string' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  user: { type: 'string' },
  'password-file': { type: 'string' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const CLUSTER_CTL_HELP = `Usage: reflector ctl --etcd URL[,URL...] [options] <command>

Manage a cluster's desired state in etcd (docs/cluster.md).

Commands:
  apply FILE    make the relays and sessions in etcd what FILE says: add, change
                and remove what differs, in one checked transaction where it fits
                (like kubectl apply). FILE: relays and sessions, each with node
                (relays: one name or an ordered list; sessions: optional)
  status        nodes and their leases, where each relay and session runs, its
                checkpoint, and problems (nodes that do not exist, invalid values)

Options:
  --etcd URL        etcd client URL(s): http://HOST:PORT, https://HOST:PORT, unix://PATH (repeat or comma-separate)
  --config FILE     take prefix, TLS and auth from the cluster section of a node's config
  --prefix P        key prefix (default: cluster.prefix of --config, else /reflector/)
  --ca FILE         PEM CA of the etcd servers
  --cert FILE       PEM client certificate (with --key)
  --key FILE        PEM key of the client certificate
  --user NAME       etcd user (with --password-file)
  --password-file F file holding the user's password
  --dry-run         apply: print what would change, write nothing
  --json            print results as JSON
  -h, --help        show this help

Exit codes: 0 ok, 1 refused (invalid FILE, a concurrent change), 2 usage error,
3 etcd could not be reached.
`;

class Usage extends Error {}

/** Run `ctl --etcd ...`; resolves with the exit code. */
export async function clusterCtl(argv: string[], io: Io): Promise<number> {
  let a: ReturnType<typeof parse>;
  try {
    a = parse(argv);
  } catch (err) {
    io.err(`reflector ctl: ${(err as Error).message}\n`);
    return 2;
  }
  if (a.values.help) {
    io.out(CLUSTER_CTL_HELP);
    return 0;
  }
  let target: EtcdTarget & { prefix: string };
  try {
    target = targetOf(a.values);
  } catch (err) {
    if (err instanceof Usage) {
      io.err(`reflector ctl: ${err.message}\n`);
      return 2;
    }
    io.err(`reflector ctl: ${(err as Error).message}\n`);
    return 1;
  }
  const [cmd, ...args] = a.positionals;
  const keys = new ClusterKeys(target.prefix);
  if (cmd === 'apply') {
    if (args.length !== 1) return usage(io, `apply: expected exactly one FILE, got ${args.length}`);
    return apply(io, target, keys, args[0], !!a.values['dry-run'], !!a.values.json);
  }
  if (cmd === 'status') {
    if (args.length) return usage(io, `status: unexpected argument "${args[0]}"`);
    return status(io, target, keys, !!a.values.json);
  }
  return usage(io, cmd === undefined ? 'a command is required (apply FILE, status)' : `unknown command "${cmd}" with --etcd (commands: apply FILE, status)`);
}

function parse(argv: string[]) {
  return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
}

function usage(io: Io, message: string): number {
  io.err(`reflector ctl: ${message}\n`);
  return 2;
}

type Values = ReturnType<typeof parse>['values'];

function targetOf(v: Values): EtcdTarget & { prefix: string } {
  let base: Pick<ClusterConfig, 'etcd' | 'prefix' | 'tls' | 'auth'> = { etcd: [], prefix: '/reflector/', tls: { ca: null, cert: null, key: null }, auth: { username: null, passwordFile: null } };
  if (v.config) base = loadConfig(v.config, { checkFiles: false }).cluster;
  // --etcd '' takes the URLs of --config's cluster.etcd
  const given = (v.etcd ?? []).flatMap((u) => u.split(',')).filter((u) => u !== '');
  const etcd = given.length ? given : base.etcd;
  if (etcd.length === 0) throw new Usage(`--etcd URL is required${v.config ? ` (${v.config} has no cluster.etcd)` : ''}`);
  for (const u of etcd) {
    const why = etcdUrlProblem(u);
    if (why) throw new Usage(`--etcd: ${why}`);
  }
  const prefix = v.prefix ?? base.prefix;
  if (!prefix.endsWith('/')) throw new Usage(`--prefix: "${prefix}" must end with "/"`);
  if (!!v.cert !== !!v.key) throw new Usage('--cert and --key go together');
  if (!!v.user !== !!v['password-file']) throw new Usage('--user and --password-file go together');
  const abs = (f: string | undefined, d: string | null): string | null => (f ? path.resolve(f) : d);
  return {
    etcd,
    prefix,
    tls: { ca: abs(v.ca, base.tls.ca), cert: abs(v.cert, base.tls.cert), key: abs(v.key, base.tls.key) },
    auth: { username: v.user ?? base.auth.username, passwordFile: abs(v['password-file'], base.auth.passwordFile) },
  };
}

async function apply(io: Io, target: EtcdTarget, keys: ClusterKeys, file: string, dryRun: boolean, json: boolean): Promise<number> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    io.err(`reflector ctl: apply: cannot read ${file}: ${(err as Error).message}\n`);
    return 1;
  }
  const { desired, problems } = parseDesiredFile(text, path.resolve(file));
  if (!desired) {
    for (const p of problems) io.err(`${formatProblem(p)}\n`);
    io.err(`reflector ctl: apply: ${problems.length} problem(s) in ${file}; nothing was written\n`);
    return 1;
  }
  return withEtcd(io, target, async (client) => {
    const r = await applyEntries(client, keys, desired.entries, { dryRun });
    if (json) io.out(JSON.stringify({ ...r, dryRun }) + '\n');
    else {
      for (const c of r.changes) io.out(`${c.kind} ${c.name}: ${dryRun ? `would be ${c.op === 'add' ? 'added' : c.op === 'change' ? 'changed' : 'removed'}` : c.op === 'add' ? 'added' : c.op === 'change' ? 'changed' : 'removed'}\n`);
      const how = r.transactions === 0 ? '' : r.transactions === 1 ? ', one transaction' : `, ${r.transactions} transactions (not atomic: etcd takes 128 operations per transaction)`;
      io.out(`${r.changes.length} change(s), ${r.unchanged} unchanged (revision ${r.revision}${how})${dryRun ? ': dry run, nothing written' : ''}\n`);
    }
    return 0;
  });
}

async function status(io: Io, target: EtcdTarget, keys: ClusterKeys, json: boolean): Promise<number> {
  return withEtcd(io, target, async (client) => {
    const s = await clusterStatus(client, keys);
    io.out(json ? JSON.stringify(s) + '\n' : formatStatus(s));
    return 0;
  });
}

async function withEtcd(io: Io, target: EtcdTarget, fn: (c: ReturnType<typeof connectEtcd>) => Promise<number>): Promise<number> {
  let client: ReturnType<typeof connectEtcd>;
  try {
    client = connectEtcd(target);
  } catch (err) {
    io.err(`reflector ctl: ${(err as Error).message}\n`);
    return 1;
  }
  try {
    return await fn(client);
  } catch (err) {
    if (err instanceof ReflectorError && err.code === 'ERR_CLUSTER') {
      io.err(`reflector ctl: ${err.message}\n`);
      return 1;
    }
    io.err(`reflector ctl: etcd at ${target.etcd.join(', ')} could not be reached (calls time out after ${CALL_TIMEOUT_MS / 1000} s): ${etcdMessage(err)}\n`);
    return 3;
  } finally {
    client.close();
  }
}
