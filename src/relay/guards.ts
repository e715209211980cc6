// SPDX-License-Identifier: MIT
// What keeps a relay from reaching further than the operator allowed, one
// rule each, shared by the config validator, the control API and the relays
// manager so all three refuse the same things with the same words:
// - any-source prefixes (0.0.0.0/0, ::/0) only with allow_any_source;
// - a listen address that is one of the engine namespace's own addresses
//   (the engine would otherwise take traffic in transit to another host);
// - rate limits within what the engine's relay_limit message carries.
import { execFile } from 'node:child_process';
import { ReflectorError, invalidArg } from '../errors';
import type { Endpoint, Prefix } from '../net/address';
import { netnsName } from '../net/neighbour';

/** Why `p` may not be a source of a relay, or null. */
export function anySourceProblem(p: Prefix, allowAnySource: boolean): string | null {
  if (p.length !== 0 || allowAnySource) return null;
  return `${p.address}/0 lets any host send through this relay (an open amplifier): list the senders' prefixes, or set allow_any_source: true on the relay to accept anyone`;
}

interface AddrJson {
  ifname?: string;
  addr_info?: Array<{ local?: string; family?: string }>;
}

/**
 * The addresses of every interface in namespace `netns` (or the server's
 * own), from `ip -j addr show` (argv, no shell).
 */
export async function localAddresses(netns?: string): Promise<Set<string>> {
  const ns = netnsName(netns);
  const argv = [...(ns ? ['-n', ns] : []), '-j', 'addr', 'show'];
  const out = await new Promise<string>((resolve, reject) => {
    execFile('ip', argv, { encoding: 'utf8', timeout: 5000 }, (err, stdout, stderr) => {
      if (err) reject(new ReflectorError('ERR_ENGINE_STATE', `cannot list the addresses${ns ? ` of namespace ${ns}` : ''}: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
  });
  const set = new Set<string>();
  for (const l of (out.trim() ? JSON.parse(out) : []) as AddrJson[]) {
    for (const a of l.addr_info ?? []) if (a.local) set.add(a.local.toLowerCase());
  }
  return set;
}

/** Throw ERR_INVALID_ARG unless `listen` is an address of the engine's namespace. */
export async function checkLocalListen(listen: Endpoint, what: string, netns?: string): Promise<void> {
  const local = await localAddresses(netns);
  if (local.has(listen.address.toLowerCase())) return;
  const where = netns ? `namespace ${netnsName(netns)}` : "the server's namespace";
  throw invalidArg(
    `${what}: ${listen.address} is not an address of ${where} (a relay takes only traffic addressed to the engine's host; ` +
      `accepted: an address \`ip${netns ? ` -n ${netnsName(netns)}` : ''} addr\` lists)`,
  );
}
