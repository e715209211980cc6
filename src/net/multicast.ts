// SPDX-License-Identifier: MIT
// What an address being a multicast group means to a relay or a session,
// one rule each, shared by the config validator, the relays manager and the
// session path so all of them refuse the same things with the same words:
// - a group is 224.0.0.0/4 or ff00::/8;
// - a group's Ethernet address is 01:00:5e + its low 23 bits (RFC 1112 6.4)
//   or 33:33 + its low 32 bits (RFC 2464 7): no neighbour to look up;
// - link-local control groups (224.0.0.0/24, IPv6 scope 0..2) are never
//   joined nor sent to by a relay: routers and hosts use them for their own
//   protocols (IGMP itself, OSPF, mDNS ...), and the kernel sends no report
//   for 224.0.0.x;
// - a multicast output leaves with TTL / hop limit 16 unless configured
//   (DEFAULT_MULTICAST_TTL: far enough for a contribution network, not the
//   Internet's 64);
// - source-specific joins: every source must be a single host.
import { execFile } from 'node:child_process';
import { ReflectorError } from '../errors';
import { addressBytes, type Endpoint, type Family, type Prefix } from './address';
import { linkInfo, netnsName, type NextHop } from './neighbour';

/** TTL / hop limit of a multicast output or session destination without `ttl`. */
export const DEFAULT_MULTICAST_TTL = 16;

export function isMulticast(address: string, family?: Family): boolean {
  const f = family ?? (address.includes(':') ? 6 : 4);
  const b = addressBytes(address);
  return f === 4 ? b[0] >= 224 && b[0] <= 239 : b[0] === 0xff;
}

/** The group's Ethernet address, "01:00:5e:.." or "33:33:..". */
export function groupMac(address: string, family: Family): string {
  const b = addressBytes(address);
  const bytes = family === 4 ? [0x01, 0x00, 0x5e, b[1] & 0x7f, b[2], b[3]] : [0x33, 0x33, b[12], b[13], b[14], b[15]];
  return bytes.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Why group `e` may not be a relay's listen address or output, or null. */
export function groupProblem(e: Endpoint): string | null {
  const b = addressBytes(e.address);
  if (e.family === 4 && b[0] === 224 && b[1] === 0 && b[2] === 0) {
    return `${e.address} is a link-local control group (224.0.0.0/24: IGMP, OSPF, mDNS ...); use a group outside it (e.g. 239.0.0.0/8, administratively scoped)`;
  }
  if (e.family === 6 && (b[1] & 0x0f) <= 2) {
    return `${e.address} has multicast scope ${b[1] & 0x0f} (interface- or link-local); use scope 3 or more (e.g. ff3e::/16 or ff05::/16)`;
  }
  return null;
}

/** Why prefix `p` may not be a relay's source (a group is nobody's source address), or null. */
export function sourceGroupProblem(p: Prefix): string | null {
  if (!isMulticast(p.address, p.family)) return null;
  return `${p.address}/${p.length} is a multicast group: packets come *to* a group, never from one; list the senders' unicast prefixes (the group belongs in listen)`;
}

/**
 * Source-specific or any-source join for a relay listening on `listen` with
 * `sources`: `ssm` as configured, or (undefined) derived: source-specific when
 * listen is a group and every source is a single host (/32 or /128).
 * Returns the decision or the problem (naming the key and the value).
 */
export function ssmOf(listen: Endpoint, sources: Prefix[], ssm: boolean | undefined, what: string):
  { ssm: boolean } | { problem: string } {
  const group = isMulticast(listen.address, listen.family);
  const hosts = sources.every((p) => p.length === (p.family === 4 ? 32 : 128));
  if (ssm === undefined) return { ssm: group && hosts };
  if (typeof ssm !== 'boolean') return { problem: `${what}.ssm: ${JSON.stringify(ssm)} is not true or false` };
  if (!ssm) return { ssm: false };
  if (!group) return { problem: `${what}.ssm: true, but the listen address ${listen.address} is not a multicast group (224.0.0.0/4, ff00::/8); ssm is a kind of group join` };
  const wide = sources.find((p) => p.length !== (p.family === 4 ? 32 : 128));
  if (wide) return { problem: `${what}.ssm: true, but source ${wide.address}/${wide.length} is not a single host; a source-specific join names each sender (/32 or /128)` };
  return { ssm: true };
}

interface AddrJson {
  addr_info?: Array<{ local?: string; family?: string; scope?: string }>;
}

/**
 * The first global address of `family` on device `dev` (in namespace
 * `netns`): the source of frames sent to a group, which has no route to ask
 * (`ip -j addr show`, argv, no shell).
 */
export async function interfaceAddress(dev: string, family: Family, netns?: string): Promise<string> {
  const ns = netnsName(netns);
  const argv = [...(ns ? ['-n', ns] : []), '-j', `-${family}`, 'addr', 'show', 'dev', dev, 'scope', 'global'];
  const out = await new Promise<string>((resolve, reject) => {
    execFile('ip', argv, { encoding: 'utf8', timeout: 5000 }, (err, stdout, stderr) => {
      if (err) reject(new ReflectorError('ERR_NO_NEIGHBOUR', `cannot list the addresses of ${dev}${ns ? ` in namespace ${ns}` : ''}: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
  });
  for (const l of (out.trim() ? JSON.parse(out) : []) as AddrJson[]) {
    for (const a of l.addr_info ?? []) if (a.local) return a.local;
  }
  throw new ReflectorError('ERR_NO_NEIGHBOUR', `${dev}${ns ? ` in namespace ${ns}` : ''} has no global IPv${family} address to send to a multicast group from`);
}

/**
 * Where a frame to group `dst` goes: out of `dev` (the engine's interface:
 * a group has no route of its own to follow), from the interface's address
 * and MAC, to the group's Ethernet address. No neighbour is asked.
 */
export async function multicastHop(dst: string, family: Family, dev: string, netns?: string): Promise<NextHop> {
  const link = await linkInfo(dev, { netns });
  const srcAddr = await interfaceAddress(dev, family, netns);
  return { family, dst, dev, ifindex: link.ifindex, mtu: link.mtu, gateway: null, srcAddr, mac: groupMac(dst, family), srcMac: link.mac };
}
