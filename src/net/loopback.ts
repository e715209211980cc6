// SPDX-License-Identifier: MIT
// Delivery to local sockets when the engine owns `lo`.
//
// A frame an AF_PACKET socket sends on `lo` comes back into the stack as if
// it had been received, with no route attached, so IPv4 routes it afresh: a
// 127.0.0.0/8 destination is a martian unless lo has route_localnet, and a
// local source is one unless lo has accept_local (see in_martian_dst and
// in_martian_src in /proc/net/stat/rt_cache). Both settings are per
// interface and per namespace; they change nothing for traffic on any other
// interface. IPv6 (::1) needs neither.
import { execFile, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ReflectorError } from '../errors';

const run = promisify(execFile);

export const LOOPBACK_SYSCTLS = ['net.ipv4.conf.lo.route_localnet', 'net.ipv4.conf.lo.accept_local'] as const;

/**
 * Turn on the two lo settings (in namespace `netns` when given) and return
 * the ones that were off, so a caller can log what it changed.
 */
export async function enableLoopbackDelivery(netns?: string): Promise<string[]> {
  const changed: string[] = [];
  for (const key of LOOPBACK_SYSCTLS) {
    try {
      if ((await readSysctl(key, netns)) !== '1') {
        await writeSysctl(key, '1', netns);
        changed.push(key);
      }
    } catch (err) {
      const where = netns ? ` in namespace ${netns}` : '';
      throw new ReflectorError(
        'ERR_ENGINE_START',
        `loopback: cannot set ${key}=1${where} (needed for local sockets to receive what the engine sends on lo): ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  return changed;
}

function procPath(key: string): string {
  return `/proc/sys/${key.replace(/\./g, '/')}`;
}

// In a namespace: /proc/sys/net shows the namespace of the process reading it,
// so `cat` and `tee` run there (coreutils, on every machine; no procps `sysctl`)
async function readSysctl(key: string, netns?: string): Promise<string> {
  if (!netns) return (await readFile(procPath(key), 'utf8')).trim();
  const { stdout } = await run('ip', ['netns', 'exec', netns, 'cat', procPath(key)], { timeout: 5000 });
  return stdout.trim();
}

async function writeSysctl(key: string, value: string, netns?: string): Promise<void> {
  if (!netns) return writeFile(procPath(key), value);
  await new Promise<void>((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', netns, 'tee', procPath(key)], { stdio: ['pipe', 'ignore', 'pipe'], timeout: 5000 });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ip netns exec ${netns} tee ${procPath(key)}: exit ${code}: ${stderr.trim()}`))));
    child.stdin.end(value);
  });
}
