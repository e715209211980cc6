// SPDX-License-Identifier: MIT
// Helpers of the multicast relay tests: a route for the IPv4 groups in a
// sender's namespace (the testbed has no default route; IPv6 has ff00::/8 on
// every interface already), `ip maddr` of a host, and tcpdump of IGMP / MLD
// reports on a host's segment.
import type { ChildProcess } from 'node:child_process';
import type { Testbed } from '../helpers/testbed';

/** Let `host` send to 224.0.0.0/4 through its first interface. */
export async function groupRoute(tb: Testbed, host: string): Promise<void> {
  await tb.exec(host, ['ip', 'route', 'replace', '224.0.0.0/4', 'dev', tb.iface(host).name]);
}

/** The groups `ip maddr` lists on `host`'s first interface. */
export async function maddr(tb: Testbed, host: string): Promise<string> {
  return (await tb.exec(host, ['ip', 'maddr', 'show', 'dev', tb.iface(host).name])).stdout;
}

export interface Tcpdump {
  /** Everything tcpdump printed, once it exits (count reached or killed at the deadline). */
  lines: Promise<string>;
  stop(): void;
}

/**
 * tcpdump -v on `host`'s first interface for `filter`, until a printed line
 * matches `want` or `ms` passed (then `lines` has what was seen). Resolves
 * once tcpdump is listening.
 */
export async function tcpdump(tb: Testbed, host: string, filter: string, want: RegExp, ms: number, extra: string[] = []): Promise<Tcpdump> {
  const child: ChildProcess = tb.spawn(host, ['tcpdump', '-i', tb.iface(host).name, '-n', '-v', '-l', ...extra, filter]);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    if (want.test(out)) child.kill('SIGINT');
  });
  const listening = new Promise<void>((resolve) => {
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (/listening on/.test(err)) resolve();
    });
    setTimeout(resolve, 3000).unref();
  });
  const timer = setTimeout(() => child.kill('SIGINT'), ms);
  const lines = new Promise<string>((resolve) => child.on('exit', () => {
    clearTimeout(timer);
    resolve(out);
  }));
  await listening;
  return { lines, stop: () => child.kill('SIGINT') };
}

/** tcpdump filters of IGMP and of MLDv2 reports (ICMPv6 type 143 behind the hop-by-hop header). */
export const IGMP = 'igmp';
export const MLD2 = 'ip6[6] == 0 and ip6[48] == 143';

export function hasTcpdump(): boolean {
  try {
    require('node:child_process').execFileSync('tcpdump', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
