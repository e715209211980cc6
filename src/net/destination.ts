// SPDX-License-Identifier: MIT
// Turn "send to ADDR:PORT" into the destination entry a lane writes
// (Lane.writeDest): addresses, ports and both MACs, resolved from the
// kernel's tables of the namespace the engine's interface lives in.
import { ReflectorError, invalidArg } from '../errors';
import type { Endpoint } from './address';
import { resolveNextHop } from './neighbour';
import { DEFAULT_MULTICAST_TTL, groupProblem, isMulticast, multicastHop } from './multicast';
import type { NextHop, NextHopOptions } from './neighbour';
import type { Destination } from '../region/lane';

// The shape Lane.writeDest takes has one owner, src/region/lane.ts.
export type { Destination };

export interface DestinationOptions extends NextHopOptions {
  /** UDP source port (default 5004). */
  srcPort?: number;
  /** IPv4 TTL / IPv6 hop limit, 1..255 (default: the engine's 64). */
  ttl?: number;
  /** DiffServ code point, 0..63. */
  dscp?: number;
  /** The interface the engine owns: the route must leave through it. */
  dev?: string;
}

export const DEFAULT_SRC_PORT = 5004;

function intIn(name: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw invalidArg(`${name}: ${String(v)} is not an integer in ${lo}..${hi}`);
  }
  return v;
}

/** Build a destination from an already resolved next hop (no I/O). */
export function destinationFromHop(to: Endpoint, hop: NextHop, opts: Omit<DestinationOptions, keyof NextHopOptions> = {}): Destination {
  const d: Destination = {
    family: to.family,
    srcAddr: hop.srcAddr,
    dstAddr: to.address,
    srcPort: intIn('srcPort', opts.srcPort ?? DEFAULT_SRC_PORT, 1, 65535),
    dstPort: intIn('port', to.port, 1, 65535),
    srcMac: hop.srcMac,
    dstMac: hop.mac,
  };
  if (opts.ttl !== undefined) d.ttl = intIn('ttl', opts.ttl, 1, 255);
  // a group reaches a whole segment (or more): not the unicast 64 by default
  else if (isMulticast(to.address, to.family)) d.ttl = DEFAULT_MULTICAST_TTL;
  if (opts.dscp !== undefined) d.dscp = intIn('dscp', opts.dscp, 0, 63);
  return d;
}

/**
 * Resolve `to` in the engine's namespace and return the Destination for
 * Lane.writeDest. Throws ERR_INVALID_ARG for bad options, ERR_NO_NEIGHBOUR
 * when the next hop cannot be resolved or the route leaves through another
 * device than `opts.dev`.
 */
export async function makeDestination(to: Endpoint, opts: DestinationOptions = {}): Promise<Destination> {
  if (!to || typeof to !== 'object' || (to.family !== 4 && to.family !== 6) || typeof to.address !== 'string') {
    throw invalidArg('to: expected an Endpoint from parseEndpoint() ({family, address, port})');
  }
  // validate the cheap options before any I/O
  const local = { srcPort: opts.srcPort, ttl: opts.ttl, dscp: opts.dscp };
  intIn('port', to.port, 1, 65535);
  if (local.srcPort !== undefined) intIn('srcPort', local.srcPort, 1, 65535);
  if (local.ttl !== undefined) intIn('ttl', local.ttl, 1, 255);
  if (local.dscp !== undefined) intIn('dscp', local.dscp, 0, 63);
  const hop = await hopOf(to, opts);
  if (opts.dev !== undefined && hop.dev !== opts.dev) {
    throw new ReflectorError(
      'ERR_NO_NEIGHBOUR',
      `route to ${to.address} leaves through ${hop.dev}, not through the engine's interface ${opts.dev}`,
    );
  }
  return destinationFromHop(to, hop, local);
}

/**
 * The next hop of `to`: a group leaves through the engine's interface
 * (opts.dev) to its Ethernet address, anything else is asked of the kernel.
 */
export async function hopOf(to: Endpoint, opts: Pick<DestinationOptions, 'netns' | 'probeTimeoutMs' | 'dev'>): Promise<NextHop> {
  if (isMulticast(to.address, to.family)) {
    const gp = groupProblem(to);
    if (gp) throw invalidArg(`to: ${gp}`);
    if (opts.dev === undefined) throw invalidArg(`to: ${to.address} is a multicast group: name the interface to send it on (dev)`);
    return multicastHop(to.address, to.family, opts.dev, opts.netns);
  }
  return resolveNextHop(to.address, { netns: opts.netns, probeTimeoutMs: opts.probeTimeoutMs });
}
