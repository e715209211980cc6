// SPDX-License-Identifier: MIT
// Network testbed for tests and benches: network namespaces joined by veth
// pairs (point-to-point links) or by a Linux bridge living in its own
// namespace (shared segments). Every name carries a per-process, per-testbed
// prefix so two test files running in parallel never collide, and every
// namespace is removed by t.teardown, by a process 'exit' handler when a test
// throws past teardown, and by sweep() for leftovers of processes that died.
//
// Addresses: link/segment i gets 198.18.i.0/24 and 2001:db8:0:i::/64 (the
// benchmarking and documentation prefixes), host k on it gets .k+1 / ::k+1.
// No default route anywhere: a packet can only go where a test sent it.
// Interfaces are veth0, veth1, ... inside each host's namespace: they are
// created straight into their namespaces, never in the root one, so short
// local names (IFNAMSIZ 15) cannot collide between tests.
import { execFile, execFileSync, spawn as spawnChild } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

const NETNS_DIR = '/run/netns';
// rft-<pid>-<n>-<host>: the pid lets sweep() tell a dead owner from a live one.
const NAME_RE = /^rft-(\d+)-(\d+)-/;

/** The parts of a tap Test the testbed needs (kept structural on purpose). */
export interface TestLike {
  teardown(fn: () => unknown): void;
  plan(n: number, comment?: string): void;
  comment(...args: unknown[]): void;
}

export interface RouteSpec {
  host: string;
  to: string; // prefix, e.g. "198.18.1.0/24"
  via: string; // gateway address
}

export interface TestbedSpec {
  hosts: string[];
  /** Point-to-point veth pairs. */
  links?: Array<[string, string]>;
  /** Hosts sharing one Ethernet segment (a bridge in its own namespace). */
  segments?: string[][];
  routes?: RouteSpec[];
  /** Hosts that forward IPv4 and IPv6 (routers). */
  forwarding?: string[];
  mtu?: number;
}

export interface TestbedIface {
  host: string;
  name: string; // inside the host's namespace
  mac: string;
  v4: string;
  v6: string;
  segment: number; // link/segment index (the third byte of v4)
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

let counter = 0;
const live = new Set<Testbed>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  // 'exit' handlers must be synchronous: delete with execFileSync.
  process.on('exit', () => {
    for (const tb of live) tb.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      for (const tb of live) tb.destroySync();
      process.removeListener(sig, onSignal);
      // keep the default meaning of the signal when nobody else handles it
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function ip(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('ip', args, { encoding: 'utf8', timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ip ${args.join(' ')} failed: ${stderr.trim() || err.message}${input ? `\nbatch:\n${input}` : ''}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Why this host cannot run namespace tests, or null when it can. */
export function netnsUnavailable(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux, this is ${process.platform}`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return `needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) to create network namespaces; uid is ${process.getuid()}`;
  }
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
  } catch (e) {
    return `"ip netns" is unavailable: ${(e as Error).message}`;
  }
  return null;
}

/**
 * Skip the test loudly when it cannot create namespaces. Returns true when
 * skipped: `if (skipUnlessRoot(t)) return;`
 */
export function skipUnlessRoot(t: TestLike): boolean {
  const why = netnsUnavailable();
  if (why === null) return false;
  process.stderr.write(`# SKIP network test: ${why}\n`);
  t.comment(`SKIP: ${why}`);
  t.plan(0, why);
  return true;
}

export class Testbed {
  /** Prefix of every namespace this testbed owns, e.g. "rft-1234-0-". */
  readonly prefix: string;
  readonly spec: TestbedSpec;
  private readonly ifaces = new Map<string, TestbedIface[]>();
  private readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;

  private constructor(spec: TestbedSpec) {
    this.spec = spec;
    this.prefix = `rft-${process.pid}-${counter++}-`;
  }

  /** Build the network of `spec`; t.teardown removes it. */
  static async create(t: TestLike | null, spec: TestbedSpec): Promise<Testbed> {
    validate(spec);
    await Testbed.sweep();
    const tb = new Testbed(spec);
    hookExit();
    live.add(tb);
    if (t) t.teardown(() => tb.destroy());
    try {
      await tb.build();
    } catch (e) {
      await tb.destroy();
      throw e;
    }
    return tb;
  }

  /** Remove namespaces left by processes that no longer exist. Returns their names. */
  static async sweep(): Promise<string[]> {
    if (!existsSync(NETNS_DIR)) return [];
    const dead = readdirSync(NETNS_DIR).filter((n) => {
      const m = NAME_RE.exec(n);
      return m !== null && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]));
    });
    if (dead.length > 0) await ip(['-force', '-batch', '-'], dead.map((n) => `netns del ${n}\n`).join(''));
    return dead;
  }

  /** Namespaces of this process (all testbeds), for leak assertions. */
  static namespacesOf(pid = process.pid): string[] {
    if (!existsSync(NETNS_DIR)) return [];
    return readdirSync(NETNS_DIR).filter((n) => NAME_RE.exec(n)?.[1] === String(pid));
  }

  /** The namespace name of a host (or of a bridge: "br0", "br1", ...). */
  ns(host: string): string {
    if (!this.spec.hosts.includes(host) && !/^br\d+$/.test(host)) {
      throw new Error(`testbed: unknown host "${host}" (hosts: ${this.spec.hosts.join(', ')})`);
    }
    return this.prefix + host;
  }

  /** /run/netns/NAME: what the engine's netns option and setns() take. */
  nsPath(host: string): string {
    return `${NETNS_DIR}/${this.ns(host)}`;
  }

  /** Every interface of a host, in creation order. */
  interfaces(host: string): TestbedIface[] {
    this.ns(host);
    return this.ifaces.get(host) ?? [];
  }

  iface(host: string, index = 0): TestbedIface {
    const list = this.interfaces(host);
    const i = list[index];
    if (!i) throw new Error(`testbed: host "${host}" has no interface #${index} (it has ${list.length})`);
    return i;
  }

  /** Address of the host's interface `index` (its first one by default). */
  addr(host: string, family: 4 | 6 = 4, index = 0): string {
    const i = this.iface(host, index);
    return family === 4 ? i.v4 : i.v6;
  }

  mac(host: string, index = 0): string {
    return this.iface(host, index).mac;
  }

  /** Run argv inside the host's namespace and wait for it; rejects on a non-zero exit. */
  async exec(host: string, argv: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
    const ns = this.ns(host);
    const timeout = opts.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const child = execFile(
        'ip',
        ['netns', 'exec', ns, ...argv],
        { encoding: 'utf8', timeout, maxBuffer: 64 << 20, env: childEnv() },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`in ${ns}: ${argv.join(' ')} failed: ${stderr.trim() || err.message}`));
          else resolve({ stdout, stderr });
        },
      );
      if (opts.input !== undefined) child.stdin?.end(opts.input);
    });
  }

  /** Start argv inside the host's namespace; destroy() kills it if still running. */
  spawn(host: string, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawnChild('ip', ['netns', 'exec', this.ns(host), ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: childEnv(),
      ...opts,
    });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** Kill spawned children and delete every namespace. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    for (const c of this.children) c.kill('SIGKILL');
    const names = this.namespaces.filter((n) => existsSync(`${NETNS_DIR}/${n}`));
    if (names.length > 0) await ip(['-force', '-batch', '-'], names.map((n) => `netns del ${n}\n`).join(''));
  }

  /** Synchronous destroy for the process 'exit' handler. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    for (const c of this.children) c.kill('SIGKILL');
    const names = this.namespaces.filter((n) => existsSync(`${NETNS_DIR}/${n}`));
    if (names.length === 0) return;
    try {
      execFileSync('ip', ['-force', '-batch', '-'], { input: names.map((n) => `netns del ${n}\n`).join(''), stdio: ['pipe', 'ignore', 'ignore'] });
    } catch {
      // nothing more can be done at exit; sweep() catches it next run
    }
  }

  private async build(): Promise<void> {
    const { hosts, links = [], segments = [], routes = [], forwarding = [] } = this.spec;
    const root: string[] = [];
    // per namespace: commands run with `ip -n NS -batch -`
    const inNs = new Map<string, string[]>();
    const add = (ns: string, line: string): void => {
      let l = inNs.get(ns);
      if (!l) inNs.set(ns, (l = []));
      l.push(line);
    };
    const newNs = (ns: string): void => {
      this.namespaces.push(ns);
      root.push(`netns add ${ns}`);
      add(ns, 'link set lo up');
    };
    for (const h of hosts) newNs(this.ns(h));
    const nextIf = new Map<string, number>();
    const hostIf = (h: string, segment: number, pos: number): TestbedIface => {
      const n = nextIf.get(h) ?? 0;
      nextIf.set(h, n + 1);
      const i: TestbedIface = { host: h, name: `veth${n}`, mac: '', v4: `198.18.${segment}.${pos + 1}`, v6: canonical6(`2001:db8:0:${segment.toString(16)}::${(pos + 1).toString(16)}`), segment };
      const list = this.ifaces.get(h) ?? [];
      list.push(i);
      this.ifaces.set(h, list);
      return i;
    };
    const mtu = this.spec.mtu ? ` mtu ${this.spec.mtu}` : '';
    const up = (h: string, i: TestbedIface): void => {
      const ns = this.ns(h);
      add(ns, `addr add ${i.v4}/24 dev ${i.name}`);
      // nodad: the address is usable at once, no 1-2 s of tentative state
      add(ns, `addr add ${i.v6}/64 dev ${i.name} nodad`);
      add(ns, `link set ${i.name}${mtu} up`);
    };
    let segment = 0;
    // Distinct ifindexes on the two ends of a veth: with equal ones (both 2 in
    // fresh namespaces) the kernel treats carrier-up as non-urgent and
    // activates the qdisc up to 1 s later, dropping what is sent meanwhile.
    let nextIndex = 10;
    for (const [a, b] of links) {
      const ia = hostIf(a, segment, 0);
      const ib = hostIf(b, segment, 1);
      // created straight into both namespaces: no name ever exists in the root namespace
      root.push(`link add ${ia.name} index ${nextIndex++} netns ${this.ns(a)} type veth peer name ${ib.name} index ${nextIndex++} netns ${this.ns(b)}`);
      up(a, ia);
      up(b, ib);
      segment++;
    }
    segments.forEach((members, s) => {
      const brNs = this.ns(`br${s}`);
      newNs(brNs);
      // STP off and no forward delay: ports forward as soon as they are up
      add(brNs, `link add br0 type bridge forward_delay 0 stp_state 0 mcast_snooping 0`);
      add(brNs, 'link set br0 up');
      members.forEach((h, pos) => {
        const i = hostIf(h, segment, pos);
        const port = `p${pos}`;
        root.push(`link add ${i.name} index ${nextIndex++} netns ${this.ns(h)} type veth peer name ${port} index ${nextIndex++} netns ${brNs}`);
        add(brNs, `link set ${port} master br0`);
        add(brNs, `link set ${port}${mtu} up`);
        up(h, i);
      });
      segment++;
    });
    for (const r of routes) {
      // the family follows from the prefix (batch lines take no -6)
      add(this.ns(r.host), `route add ${r.to} via ${r.via}`);
    }
    await ip(['-batch', '-'], root.join('\n') + '\n');
    // DAD off for every address (the link-local ones too, which neighbour
    // discovery uses as its source) before any link goes up
    await Promise.all(
      [...inNs].map(([ns, lines]) =>
        runIn(ns, ['sh', '-c', 'for f in /proc/sys/net/ipv6/conf/*/accept_dad; do echo 0 >"$f"; done; exec ip -batch -'], lines.join('\n') + '\n'),
      ),
    );
    await Promise.all(
      forwarding.map((h) =>
        this.exec(h, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']),
      ),
    );
    // learn the MACs the kernel picked, and wait until every link has carrier
    // (both ends up): a packet sent before that is silently lost
    const deadline = Date.now() + 5000;
    await Promise.all(
      hosts.map(async (h) => {
        for (;;) {
          const links = JSON.parse(await ip(['-n', this.ns(h), '-j', 'link', 'show'])) as Array<{ ifname: string; address: string; operstate: string }>;
          let up = true;
          for (const i of this.ifaces.get(h) ?? []) {
            const l = links.find((x) => x.ifname === i.name);
            if (!l) throw new Error(`testbed: ${i.name} missing in ${this.ns(h)}`);
            i.mac = l.address;
            if (l.operstate !== 'UP') up = false;
          }
          if (up) return;
          if (Date.now() > deadline) throw new Error(`testbed: links of ${this.ns(h)} have no carrier after 5 s`);
          await new Promise((r) => setTimeout(r, 5));
        }
      }),
    );
  }
}

/**
 * Environment for commands in namespaces: without the test runner's
 * NODE_OPTIONS (tap's --import hooks cost ~1 s per node child and fixtures
 * are not what a test measures coverage of).
 */
function childEnv(): NodeJS.ProcessEnv {
  return { ...process.env, NODE_OPTIONS: undefined };
}

function canonical6(a: string): string {
  return new URL(`http://[${a}]/`).hostname.slice(1, -1);
}

function runIn(ns: string, argv: string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', timeout: 10_000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`in ${ns}: ${argv.join(' ')} failed: ${stderr.trim() || err.message}\nbatch:\n${input}`));
      else resolve();
    });
    child.stdin?.end(input);
  });
}

function validate(spec: TestbedSpec): void {
  const hosts = spec.hosts ?? [];
  if (hosts.length === 0) throw new Error('testbed: spec.hosts is empty');
  for (const h of hosts) {
    if (!/^[a-z][a-z0-9]{0,7}$/.test(h) || /^br\d+$/.test(h)) {
      throw new Error(`testbed: host name "${h}" must be 1-8 lower-case letters/digits, start with a letter, not br<N>`);
    }
  }
  if (new Set(hosts).size !== hosts.length) throw new Error(`testbed: duplicate host in ${hosts.join(', ')}`);
  const known = (h: string): void => {
    if (!hosts.includes(h)) throw new Error(`testbed: "${h}" is not in hosts (${hosts.join(', ')})`);
  };
  for (const [a, b] of spec.links ?? []) {
    known(a);
    known(b);
    if (a === b) throw new Error(`testbed: link from "${a}" to itself`);
  }
  for (const s of spec.segments ?? []) s.forEach(known);
  for (const r of spec.routes ?? []) known(r.host);
  for (const h of spec.forwarding ?? []) known(h);
  if ((spec.links?.length ?? 0) + (spec.segments?.length ?? 0) > 255) throw new Error('testbed: at most 255 links and segments');
}
