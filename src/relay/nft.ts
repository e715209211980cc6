// SPDX-License-Identifier: MIT
// Keeps traffic the engine consumes away from the kernel stack. AF_PACKET
// hands every received frame to the kernel as well, so without this a
// relayed datagram would also reach the host's UDP layer: an ICMP port
// unreachable back to the origin (nobody listens on P) or a second delivery
// (somebody does). One nftables table of our own per interface,
// `table netdev reflector_<ifname>`, with an ingress chain on the engine's
// interface (in its namespace) and one rule per relay dropping UDP to P.
// The netdev ingress hook runs after the packet taps, so the engine's
// AF_PACKET socket has already seen the frame when the rule drops it.
// Frames with a VLAN tag left inline are not matched (they are not the
// relay's, see engine/src/relay_parse.c).
import { execFile } from 'node:child_process';
import { ReflectorError, invalidArg } from '../errors';
import type { Endpoint } from '../net/address';

export interface NftOptions {
  interface: string;
  /** namespace name under /run/netns */
  netns?: string;
}

function run(argv: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 5000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 127) : 0;
      resolve({ code, stdout, stderr: stderr || (err && code === 127 ? String(err.message) : '') });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

export class NftGuard {
  readonly table: string;
  private readonly ifname: string;
  private readonly netns: string | undefined;
  private readonly handles = new Map<string, number>();
  private started = false;

  constructor(opts: NftOptions) {
    if (typeof opts.interface !== 'string' || !/^[A-Za-z0-9_.:@-]{1,15}$/.test(opts.interface)) {
      throw invalidArg(`nft.interface: ${JSON.stringify(opts.interface)} is not an interface name`);
    }
    this.ifname = opts.interface;
    this.netns = opts.netns;
    this.table = `reflector_${opts.interface.replace(/[^A-Za-z0-9_]/g, '_')}`;
  }

  private nft(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    const argv = this.netns ? ['ip', 'netns', 'exec', this.netns, 'nft', ...args] : ['nft', ...args];
    return run(argv, input);
  }

  private where(): string {
    return `${this.ifname}${this.netns ? ` in namespace ${this.netns}` : ''}`;
  }

  /** Create our table and ingress chain (replacing a stale one from a crashed run). */
  async start(): Promise<void> {
    if (this.started) return;
    await this.nft(['delete', 'table', 'netdev', this.table]); // absent: fine
    const script =
      `add table netdev ${this.table}\n` +
      `add chain netdev ${this.table} ingress { type filter hook ingress device "${this.ifname}" priority 0; policy accept; }\n`;
    const r = await this.nft(['-f', '-'], script);
    if (r.code !== 0) {
      throw new ReflectorError(
        'ERR_ENGINE_START',
        `nftables: cannot create table netdev ${this.table} on ${this.where()}: ${r.stderr.trim() || `exit ${r.code}`} ` +
          '(relayed traffic would also reach the kernel: ICMP port unreachable, double delivery)',
      );
    }
    this.started = true;
  }

  /** Drop UDP to `listen` after the engine saw it. `key` names the rule (the relay's name). */
  async add(key: string, listen: Endpoint): Promise<void> {
    if (!this.started) throw new ReflectorError('ERR_CLOSED', `nftables: add "${key}" before start()`);
    const l3 = listen.family === 4 ? 'ip' : 'ip6';
    const r = await this.nft([
      '-e', '-a', 'add', 'rule', 'netdev', this.table, 'ingress',
      'ether', 'type', l3, l3, 'daddr', listen.address, 'udp', 'dport', String(listen.port), 'counter', 'drop',
    ]);
    const m = /# handle (\d+)/.exec(r.stdout);
    if (r.code !== 0 || !m) {
      throw new ReflectorError('ERR_ENGINE_START', `nftables: cannot add the rule for relay "${key}" on ${this.where()}: ${r.stderr.trim() || r.stdout.trim()}`);
    }
    this.handles.set(key, Number(m[1]));
  }

  async remove(key: string): Promise<void> {
    const h = this.handles.get(key);
    if (h === undefined) return;
    this.handles.delete(key);
    const r = await this.nft(['delete', 'rule', 'netdev', this.table, 'ingress', 'handle', String(h)]);
    if (r.code !== 0) {
      throw new ReflectorError('ERR_ENGINE_START', `nftables: cannot remove the rule for relay "${key}" on ${this.where()}: ${r.stderr.trim()}`);
    }
  }

  /** Packets each rule dropped (the kernel's view), by key. */
  async counters(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const r = await this.nft(['-a', 'list', 'chain', 'netdev', this.table, 'ingress']);
    for (const [key, h] of this.handles) {
      const m = new RegExp(`counter packets (\\d+) bytes \\d+ drop # handle ${h}\\b`).exec(r.stdout);
      if (m) out.set(key, Number(m[1]));
    }
    return out;
  }

  /** Remove our table (and every rule in it). */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.handles.clear();
    await this.nft(['delete', 'table', 'netdev', this.table]);
  }
}
