// SPDX-License-Identifier: MIT
// A cluster on a namespace testbed, for the cluster tests and
// bench/cluster.ts: one Ethernet segment joining an etcd host, Reflector
// nodes (the real `reflector serve`, each inside its own namespace, dialling
// etcd over the segment) and a host for subscribers and origins. `ctl` runs
// `reflector ctl --etcd URL ...` inside a namespace too.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ClusterKeys } from '../../src/cluster/keys';
import { EtcdServer } from '../helpers/etcd';
import { Testbed, type TestLike } from '../helpers/testbed';
import { ethernet, ipv4Udp, pcap } from '../media/synth';
import { BIN, Peer, ServerProcess } from '../server/fixtures/harness';

export const PREFIX = '/t/';
export const keys = new ClusterKeys(PREFIX);

export interface BedOptions {
  nodes: string[];
  /** hosts besides etcd and the nodes (default: ["sub"]) */
  others?: string[];
  leaseS?: number;
  checkpointMs?: number;
}

export class ClusterBed {
  readonly servers = new Map<string, ServerProcess>();
  private readonly peers: Peer[] = [];

  private constructor(
    readonly tb: Testbed,
    readonly etcd: EtcdServer,
    readonly dir: string,
    readonly o: Required<BedOptions>,
  ) {}

  static async create(t: TestLike | null, o: BedOptions): Promise<ClusterBed> {
    const full: Required<BedOptions> = { others: ['sub'], leaseS: 3, checkpointMs: 200, ...o };
    const hosts = ['etcd', ...full.nodes, ...full.others];
    const tb = await Testbed.create(t, { hosts, segments: [hosts] });
    const etcd = await EtcdServer.start(tb, 'etcd', t ?? undefined);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-cluster-'));
    const bed = new ClusterBed(tb, etcd, dir, full);
    t?.teardown(() => bed.destroy());
    return bed;
  }

  addr(host: string): string {
    return this.tb.addr(host);
  }

  /** The node's config file: its own settings only, relays and sessions come from etcd. */
  configFile(node: string, extra = '', base = node): string {
    const file = path.join(this.dir, `${base}.yaml`);
    fs.writeFileSync(
      file,
      `engine:
  interface: veth0
  workers: 1
  drain_ms: 0
metrics:
  listen: 127.0.0.1:9464
control:
  socket: ${node}.sock
cluster:
  etcd: [${this.etcd.url}]
  node: ${node}
  prefix: ${PREFIX}
  lease_s: ${this.o.leaseS}
  checkpoint_ms: ${this.o.checkpointMs}
${extra}`,
    );
    return file;
  }

  /** Start `reflector serve` for `node` inside its namespace; resolves when it logged "server ready". */
  async start(node: string, opts: { wait?: boolean; name?: string } = {}): Promise<ServerProcess> {
    const file = opts.name ? this.configFile(opts.name, '', `${node}-as-${opts.name}`) : this.configFile(node);
    const s = new ServerProcess([], { command: ['ip', 'netns', 'exec', this.tb.ns(node), process.execPath, BIN, 'serve', '--config', file], cwd: this.dir });
    this.servers.set(node, s);
    if (opts.wait ?? true) await s.ready(30000);
    return s;
  }

  /** `reflector ctl --etcd URL ARGS` from the etcd host's namespace (over the segment). */
  async ctl(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const argv = ['ip', 'netns', 'exec', this.tb.ns('etcd'), process.execPath, BIN, 'ctl', '--etcd', this.etcd.url, '--prefix', PREFIX, ...args];
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 30000, env: { ...process.env, NODE_OPTIONS: undefined } });
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
  }

  /** Write a desired-state file and `ctl apply` it; throws with ctl's output when it fails. */
  async apply(yaml: string): Promise<string> {
    const file = path.join(this.dir, `desired-${Date.now()}.yaml`);
    fs.writeFileSync(file, yaml);
    const r = await this.ctl('apply', file);
    if (r.code !== 0) throw new Error(`ctl apply exited ${r.code}: ${r.err}${r.out}`);
    return r.out;
  }

  /** A JSON-lines fixture inside `host` (seq-sink, udp-peer). */
  async peer(host: string, fixture: string): Promise<Peer> {
    const p = new Peer(this.tb.spawn(host, [process.execPath, fixture, this.addr(host)], { stdio: ['pipe', 'pipe', 'pipe'] }));
    this.peers.push(p);
    await p.ready;
    return p;
  }

  /** GET path of a node's metrics listener, from inside its namespace. */
  async http(node: string, p: string): Promise<{ status: number; body: string }> {
    const script = `fetch('http://127.0.0.1:9464${p}').then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })), (e) => { process.stderr.write(String(e)); process.exit(1); })`;
    const r = await this.tb.exec(node, [process.execPath, '-e', script]);
    return JSON.parse(r.stdout) as { status: number; body: string };
  }

  /** A pcap of `count` UDP datagrams, one every `everyMs`, whose payloads start with their index (big-endian). */
  seqPcap(name: string, count: number, everyMs: number, size = 200): string {
    const recs = [];
    for (let i = 0; i < count; i++) {
      const payload = new Uint8Array(size);
      new DataView(payload.buffer).setUint32(0, i);
      recs.push({ timeNs: i * everyMs * 1e6, frame: ethernet(ipv4Udp(payload)) });
    }
    const file = path.join(this.dir, name);
    fs.writeFileSync(file, pcap(recs));
    return file;
  }

  async destroy(): Promise<void> {
    for (const p of this.peers) p.close();
    await Promise.all([...this.servers.values()].map((s) => s.kill('SIGKILL').catch(() => undefined)));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Log lines of a server matching msg, from index `from`. */
export function logs(s: ServerProcess, msg: string, from = 0): Array<Record<string, unknown>> {
  return s.logs.slice(from).filter((l) => l.msg === msg);
}

/** [seq, ms] lists per port from a seq-sink report. */
export async function report(p: Peer): Promise<Record<string, Array<[number, number]>>> {
  return (await p.call('report')).ports as Record<string, Array<[number, number]>>;
}

/** The longest silence in a [seq, ms] list, and where. */
export function longestGap(list: Array<[number, number]>): { ms: number; before: number; after: number; at: number } {
  let best = { ms: 0, before: -1, after: -1, at: 0 };
  for (let i = 1; i < list.length; i++) {
    const g = list[i][1] - list[i - 1][1];
    if (g > best.ms) best = { ms: g, before: list[i - 1][0], after: list[i][0], at: list[i - 1][1] };
  }
  return best;
}
