// SPDX-License-Identifier: MIT
// Next-hop resolution for frames the engine builds itself: the engine writes
// whole Ethernet frames, so it needs the device, the source address the
// kernel would pick, and both MAC addresses. The kernel's own tables are the
// truth: `ip -j route get` for the route, `ip -j neigh` for the MAC, and an
// unknown neighbour is probed by sending it one datagram (port 9, discard)
// so the kernel runs ARP / neighbour discovery for us. `ip` runs with an
// argv (never a shell), every name in it passes src/names.ts first, and the
// probe's socket is opened by the addon inside the namespace.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { ReflectorError, invalidArg } from '../errors';
import { checkName } from '../names';
import { native } from '../native';

export interface NextHop {
  family: 4 | 6;
  dst: string; // the destination asked for
  dev: string; // outgoing interface
  ifindex: number;
  mtu: number;
  gateway: string | null; // null: the destination is on the link
  srcAddr: string; // the kernel's preferred source for dst
  mac: string; // next hop's MAC ("00:00:00:00:00:00" on lo)
  srcMac: string; // the device's MAC
}

export interface NextHopOptions {
  /** Network namespace: a name under /run/netns or /run/netns/NAME. */
  netns?: string;
  /** How long an unknown neighbour may take to answer the probe (default 1000 ms). */
  probeTimeoutMs?: number;
}

const ZERO_MAC = '00:00:00:00:00:00';
const DISCARD_PORT = 9;
const POLL_MS = 10;
// neighbour states whose lladdr can be used (STALE: still the last known MAC)
const USABLE = new Set(['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT', 'NOARP']);

interface RouteJson {
  type?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
}
interface LinkJson {
  ifname: string;
  ifindex: number;
  mtu: number;
  address?: string;
  link_type?: string;
}
interface NeighJson {
  dst: string;
  lladdr?: string;
  state?: string[];
}

/** Normalise the netns option to a name usable with `ip -n` (or null). */
export function netnsName(netns: string | undefined): string | null {
  if (netns === undefined || netns === '') return null;
  if (typeof netns !== 'string') throw invalidArg(`netns: expected a namespace name, got ${typeof netns}`);
  const name = netns.startsWith('/run/netns/') ? netns.slice('/run/netns/'.length) : netns;
  checkName('netns', name, 'netns');
  if (!existsSync(`/run/netns/${name}`)) throw invalidArg(`netns: namespace "${name}" does not exist (no /run/netns/${name})`);
  return name;
}

function where(ns: string | null): string {
  return ns ? ` in namespace ${ns}` : '';
}

function ip(ns: string | null, args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const argv = ns ? ['-n', ns, ...args] : args;
  return new Promise((resolve, reject) => {
    execFile('ip', argv, { encoding: 'utf8', timeout: 5000 }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new ReflectorError('ERR_NO_NEIGHBOUR', 'the "ip" command (iproute2) is not installed', { cause: err }));
      } else resolve({ ok: !err, stdout, stderr: stderr.trim() || (err ? err.message : '') });
    });
  });
}

async function ipJson<T>(ns: string | null, args: string[]): Promise<T[]> {
  const r = await ip(ns, ['-j', ...args]);
  if (!r.ok) throw new Error(r.stderr);
  return parseJson<T>(r.stdout, args.join(' '));
}

function parseJson<T>(text: string, what: string): T[] {
  if (!text.trim()) return [];
  try {
    return JSON.parse(text) as T[];
  } catch (e) {
    throw new ReflectorError('ERR_NO_NEIGHBOUR', `ip -j ${what}: output is not JSON`, { cause: e });
  }
}

/** The device's MAC, MTU and index. */
export async function linkInfo(dev: string, opts: { netns?: string } = {}): Promise<{ mac: string; mtu: number; ifindex: number }> {
  const ns = netnsName(opts.netns);
  checkName('interface', dev, 'device');
  let links: LinkJson[];
  try {
    links = await ipJson<LinkJson>(ns, ['link', 'show', 'dev', dev]);
  } catch (e) {
    throw new ReflectorError('ERR_NO_NEIGHBOUR', `device ${dev} does not exist${where(ns)}`, { cause: e });
  }
  const l = links[0];
  if (!l) throw new ReflectorError('ERR_NO_NEIGHBOUR', `device ${dev} does not exist${where(ns)}`);
  const mac = l.link_type === 'loopback' ? ZERO_MAC : l.address;
  if (!mac || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)) {
    throw new ReflectorError('ERR_NO_NEIGHBOUR', `device ${dev}${where(ns)} has no Ethernet address (link type ${l.link_type ?? 'unknown'})`);
  }
  return { mac, mtu: l.mtu, ifindex: l.ifindex };
}

async function neighbourMac(ns: string | null, addr: string, dev: string): Promise<{ mac: string | null; failed: boolean }> {
  const list = await ipJson<NeighJson>(ns, ['neigh', 'show', 'to', addr, 'dev', dev]);
  for (const n of list) {
    const states = n.state ?? [];
    if (n.lladdr && states.some((s) => USABLE.has(s))) return { mac: n.lladdr, failed: false };
    if (states.includes('FAILED')) return { mac: null, failed: true };
  }
  return { mac: null, failed: false };
}

/**
 * Send one datagram to addr:9 (discard) from a socket inside the namespace so
 * the kernel resolves addr. The addon opens the socket on a thread that
 * entered the namespace: no shell and no child process, so nothing a device
 * name or an address contains is ever interpreted.
 */
function probe(ns: string | null, addr: string, ifindex: number, family: 4 | 6): void {
  native().udpProbe(family, addr, DISCARD_PORT, ifindex, ns === null ? undefined : `/run/netns/${ns}`);
}

/**
 * Resolve where a frame to `dst` must go: device, source address, next-hop MAC
 * and device MAC, probing the neighbour when the kernel does not know it yet.
 * Throws ReflectorError ERR_INVALID_ARG for bad input and ERR_NO_NEIGHBOUR
 * when there is no route or the neighbour does not answer.
 */
export async function resolveNextHop(dst: string, opts: NextHopOptions = {}): Promise<NextHop> {
  const family = typeof dst === 'string' && !dst.includes('%') ? isIP(dst) : 0;
  if (family !== 4 && family !== 6) throw invalidArg(`resolveNextHop: "${String(dst)}" is not an IPv4 or IPv6 address (without a zone id)`);
  const timeoutMs = opts.probeTimeoutMs ?? 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0 || timeoutMs > 60_000) {
    throw invalidArg(`probeTimeoutMs: ${String(opts.probeTimeoutMs)} is outside 0..60000`);
  }
  const ns = netnsName(opts.netns);
  const r = await ip(ns, ['-j', `-${family}`, 'route', 'get', dst]);
  const route = r.ok ? parseJson<RouteJson>(r.stdout, 'route get')[0] : undefined;
  if (!route || !route.dev || ['unreachable', 'blackhole', 'prohibit', 'throw'].includes(route.type ?? '')) {
    throw new ReflectorError('ERR_NO_NEIGHBOUR', `no route to ${dst}${where(ns)}${r.ok ? '' : ` (${r.stderr})`}`);
  }
  const dev = route.dev;
  if (!route.prefsrc) throw new ReflectorError('ERR_NO_NEIGHBOUR', `no source address for ${dst} on ${dev}${where(ns)}`);
  const link = await linkInfo(dev, { netns: ns ?? undefined });
  const base = { family: family as 4 | 6, dst, dev, ifindex: link.ifindex, mtu: link.mtu, srcAddr: route.prefsrc, srcMac: link.mac };
  const gateway = route.gateway ?? null;
  // local and loopback destinations never leave the host: lo has no neighbours
  if (route.type === 'local' || dev === 'lo' || link.mac === ZERO_MAC) return { ...base, gateway, mac: ZERO_MAC };
  const hop = gateway ?? dst;
  if (isIP(hop) !== family) throw new ReflectorError('ERR_NO_NEIGHBOUR', `route to ${dst}${where(ns)}: gateway "${hop}" is not an IPv${family} address`);
  let n = await neighbourMac(ns, hop, dev);
  if (n.mac) return { ...base, gateway, mac: n.mac };
  probe(ns, hop, link.ifindex, family as 4 | 6);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    n = await neighbourMac(ns, hop, dev);
    if (n.mac) return { ...base, gateway, mac: n.mac };
    if (n.failed || Date.now() >= deadline) break;
    await new Promise((res) => setTimeout(res, POLL_MS));
  }
  throw new ReflectorError('ERR_NO_NEIGHBOUR', `neighbour ${hop} on ${dev}${where(ns)} did not answer within ${timeoutMs} ms`);
}

/**
 * Watches the kernel's route and neighbour tables (`ip monitor neigh route`)
 * and calls onChange, coalesced over `debounceMs`, so relays can re-resolve
 * their next hops. close() stops the monitor.
 */
export class TableWatch {
  private child: ChildProcess | null;
  private timer: NodeJS.Timeout | null = null;

  constructor(onChange: () => void, opts: { netns?: string; debounceMs?: number } = {}) {
    const ns = netnsName(opts.netns);
    const debounce = opts.debounceMs ?? 50;
    this.child = spawn('ip', [...(ns ? ['-n', ns] : []), 'monitor', 'neigh', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.child.on('error', () => undefined);
    this.child.stdout!.on('data', () => {
      if (this.timer) return;
      this.timer = setTimeout(() => {
        this.timer = null;
        onChange();
      }, debounce);
    });
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.child?.kill();
    this.child = null;
  }
}

/** How long a cached next hop is used before it is resolved again (default of NextHopCache and the session manager). */
export const NEXT_HOP_TTL_MS = 30_000;

/**
 * Next hops by destination, resolved once and reused for `ttlMs` (default
 * NEXT_HOP_TTL_MS: a neighbour that changed its MAC, or a route that moved,
 * is picked up without a refresh call); refresh() re-resolves every known
 * one (call it on a TableWatch change or a timer).
 */
export class NextHopCache {
  private readonly hops = new Map<string, { hop: NextHop; at: number }>();
  private readonly ttlMs: number;

  constructor(private readonly opts: NextHopOptions & { ttlMs?: number } = {}) {
    const ttl = opts.ttlMs ?? NEXT_HOP_TTL_MS;
    if (!Number.isFinite(ttl) || ttl < 0) throw invalidArg(`ttlMs: ${String(opts.ttlMs)} is not a number of ms >= 0`);
    this.ttlMs = ttl;
  }

  async get(dst: string): Promise<NextHop> {
    const known = this.hops.get(dst);
    if (known && Date.now() - known.at < this.ttlMs) return known.hop;
    const hop = await resolveNextHop(dst, this.opts);
    this.hops.set(dst, { hop, at: Date.now() });
    return hop;
  }

  /** Re-resolve every cached destination; returns those whose answer changed. Failed ones are forgotten. */
  async refresh(): Promise<string[]> {
    const changed: string[] = [];
    await Promise.all(
      [...this.hops.keys()].map(async (dst) => {
        const before = this.hops.get(dst)!.hop;
        try {
          const after = await resolveNextHop(dst, this.opts);
          this.hops.set(dst, { hop: after, at: Date.now() });
          if (after.mac !== before.mac || after.dev !== before.dev || after.srcAddr !== before.srcAddr || after.srcMac !== before.srcMac) changed.push(dst);
        } catch {
          this.hops.delete(dst);
          changed.push(dst);
        }
      }),
    );
    return changed;
  }

  forget(dst?: string): void {
    if (dst === undefined) this.hops.clear();
    else this.hops.delete(dst);
  }
}
