// SPDX-License-Identifier: MIT
// The multicast groups the engine's interface has joined for relays that
// listen on a group (engine/include/reflector/mcast.h): one kernel UDP socket
// per relay, opened by the addon inside the engine's namespace, holds the
// membership (IGMPv3 / MLDv2 reports are the kernel's); closing it leaves.
// A relay that owns the group alone is the only one joined to it: two relays
// on one group (different ports) each hold a socket, and the kernel keeps
// the group while either does.
import { ReflectorError } from '../errors';
import { addressBytes, formatEndpoint, type Endpoint, type Prefix } from '../net/address';
import { native } from '../native';

export interface Join {
  /** The relay's name, for errors. */
  relay: string;
  listen: Endpoint;
  /** Source-specific: the single hosts to join with; empty: any-source. */
  sources: Prefix[];
}

function bytes16(address: string): Uint8Array {
  const b = addressBytes(address);
  const out = new Uint8Array(16);
  out.set(b);
  return out;
}

export class Memberships {
  private readonly fds = new Map<string, number>();

  constructor(private readonly ifname: string, private readonly netnsPath: string | undefined) {}

  /** Join for relay `j.relay`; throws ERR_MULTICAST_JOIN naming the relay, the key and the value when the kernel refuses. */
  join(j: Join): void {
    if (this.fds.has(j.relay)) return;
    const ssm = j.sources.length > 0;
    let fd: number;
    try {
      fd = native().mcastJoin(this.ifname, this.netnsPath, j.listen.family, bytes16(j.listen.address), j.sources.map((p) => bytes16(p.address)));
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      const kind = ssm ? `a source-specific join (sources ${j.sources.map((p) => p.address).join(', ')})` : 'an any-source join';
      throw new ReflectorError('ERR_MULTICAST_JOIN', `relay "${j.relay}".listen: ${formatEndpoint(j.listen)}: ${kind} of ${j.listen.address} failed: ${why}`, { cause: e });
    }
    this.fds.set(j.relay, fd);
  }

  /** Leave relay `relay`'s group (nothing when it joined none). */
  leave(relay: string): void {
    const fd = this.fds.get(relay);
    if (fd === undefined) return;
    this.fds.delete(relay);
    native().mcastLeave(fd);
  }

  leaveAll(): void {
    for (const r of [...this.fds.keys()]) this.leave(r);
  }

  joined(relay: string): boolean {
    return this.fds.has(relay);
  }
}
