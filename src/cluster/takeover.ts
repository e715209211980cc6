// SPDX-License-Identifier: MIT
// Taking over a relay's unicast listen address when the relay fails over to
// this node (a relay with more than one node): the address is added to the
// engine's interface and announced (gratuitous ARP for IPv4, an unsolicited
// neighbour advertisement for IPv6, sent by the addon through an AF_PACKET
// socket: engine/src/announce.c), so senders switch to this node's MAC at
// once; it is removed when the relay leaves this node.
//
// The address is added with a lifetime of about the lease's TTL and renewed
// while this node holds the relay: a node that dies without removing it (kill
// -9, a crash) stops answering ARP for it by itself about when the standby
// takes it, instead of fighting over it for ever.
//
// Limits (docs/cluster.md): the nodes must share the link (one L2 segment:
// ARP and NDP do not cross a router); switches and hosts that ignore
// gratuitous ARP keep sending to the old MAC until their entry expires;
// a node cut off from etcd but not from the link keeps the address until its
// lifetime runs out and may answer for it alongside the new owner for that
// long. Multicast listen addresses need none of this (the standby joins the
// group and relays).
import { execFile } from 'node:child_process';
import { addressBytes, formatEndpoint, type Endpoint } from '../net/address';
import { netnsName } from '../net/neighbour';
import { native } from '../native';
import { ReflectorError } from '../errors';
import type { RelayConfig } from '../config/schema';
import type { Logger } from '../log';

export function isMulticast(e: Endpoint): boolean {
  return e.family === 4 ? Number(e.address.split('.')[0]) >> 4 === 14 : e.address.toLowerCase().startsWith('ff');
}

/** A relay whose listen address moves with it: more than one node, a unicast address. */
export function movesAddress(r: RelayConfig): boolean {
  return (r.node?.length ?? 0) > 1 && !isMulticast(r.listen);
}

export interface AddressTakeoverOptions {
  /** the engine's interface and namespace */
  interface: string;
  netns: string | null;
  /** the address's lifetime in seconds (renewed every third of it) */
  lifetimeS: number;
  log: Logger;
  /** how the address is announced (default: the addon's gratuitous ARP / NA, three times) */
  announce?: (e: Endpoint) => void;
}

export class AddressTakeover {
  private readonly held = new Map<string, Endpoint>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: AddressTakeoverOptions) {}

  /** Addresses this node holds, "ADDR". */
  addresses(): string[] {
    return [...this.held.keys()];
  }

  /** Add `e.address` to the interface (or renew it) and announce it. */
  async acquire(e: Endpoint): Promise<void> {
    await this.ip(['addr', 'replace', ...this.lifetime(e)]);
    this.held.set(e.address, e);
    const announce = this.o.announce ?? ((x: Endpoint) => defaultAnnounce(this.o.interface, this.o.netns, x));
    try {
      announce(e);
    } catch (err) {
      // the address is ours anyway: neighbours learn it when their entry goes stale
      this.o.log.warn('cluster address announce failed', { address: e.address, interface: this.o.interface, err });
    }
    this.o.log.info('cluster address taken over', { address: e.address, relay: formatEndpoint(e), interface: this.o.interface, lifetime_s: this.o.lifetimeS });
    this.arm();
  }

  /** Remove an address this node added. */
  async release(e: Endpoint): Promise<void> {
    if (!this.held.delete(e.address)) return;
    await this.ip(['addr', 'del', `${e.address}/${e.family === 4 ? 32 : 128}`, 'dev', this.o.interface]).catch((err: Error) =>
      this.o.log.warn('cluster address release failed (it expires by itself)', { address: e.address, err }),
    );
    this.o.log.info('cluster address released', { address: e.address, interface: this.o.interface });
    if (this.held.size === 0) this.disarm();
  }

  /** Remove every held address (an orderly stop). */
  async releaseAll(): Promise<void> {
    for (const e of [...this.held.values()]) await this.release(e);
    this.disarm();
  }

  private lifetime(e: Endpoint): string[] {
    const l = String(this.o.lifetimeS);
    return [`${e.address}/${e.family === 4 ? 32 : 128}`, 'dev', this.o.interface, 'valid_lft', l, 'preferred_lft', l, ...(e.family === 6 ? ['nodad'] : [])];
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      for (const e of this.held.values()) {
        void this.ip(['addr', 'replace', ...this.lifetime(e)]).catch((err: Error) => this.o.log.warn('cluster address renewal failed', { address: e.address, err }));
      }
    }, (this.o.lifetimeS * 1000) / 3);
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async ip(args: string[]): Promise<void> {
    const ns = netnsName(this.o.netns ?? undefined);
    const argv = ns ? ['-n', ns, ...args] : args;
    return new Promise((resolve, reject) => {
      execFile('ip', argv, { encoding: 'utf8', timeout: 5000 }, (err, _out, stderr) => {
        if (err) reject(new ReflectorError('ERR_CLUSTER', `ip ${argv.join(' ')}: ${stderr.trim() || err.message}`, { cause: err }));
        else resolve();
      });
    });
  }
}

function defaultAnnounce(ifname: string, netns: string | null, e: Endpoint): void {
  const bytes = new Uint8Array(16);
  bytes.set(addressBytes(e.address));
  const ns = netns ? (netns.includes('/') ? netns : `/run/netns/${netns}`) : undefined;
  // three frames: one lost on a busy link is not the end of it
  native().announceAddress(ifname, ns, e.family, bytes, 3);
}
