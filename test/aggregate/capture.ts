// SPDX-License-Identifier: MIT
// Test helpers for timed-transmit tests: the engine (or a loud skip), and a
// tcpdump capture in a testbed host, read back with Reflector's own pcap
// reader. The capture's kernel timestamps and order are the wire's, which a
// JS receiver per port could not give (its callbacks run late and apart).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engineUnavailable } from '../helpers/engine-available';
import type { Testbed } from '../helpers/testbed';
import { Engine, type EngineOptions } from '../../src/engine/engine';

export interface Captured {
  /** capture time, ns from the first captured packet */
  timeNs: number;
  dstPort: number;
  srcPort: number;
  payload: Buffer;
}

export interface Capture {
  /** stop (if still running) and read what was captured */
  stop(): Promise<Captured[]>;
  /** resolves when `count` packets were captured or the timeout passed */
  done: Promise<Captured[]>;
}

/** An Engine, or null after a loud skip naming the reason. */
export function engineOrSkip(t: { plan(n: number, why?: string): void; teardown(fn: () => unknown): void }, opts: EngineOptions): Engine | null {
  const why = engineUnavailable();
  if (why) {
    process.stderr.write(`# SKIP engine test: ${why}\n`);
    t.plan(0, `engine not available: ${why}`);
    return null;
  }
  const e = new Engine(opts);
  t.teardown(() => (e.running ? e.stop() : undefined));
  return e;
}

/** Why captures cannot run here, or null. */
export function tcpdumpMissing(): string | null {
  try {
    execFileSync('tcpdump', ['--version'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'tcpdump is not installed (Debian package tcpdump): the wire order and timing are read from a capture';
  }
}

/** Start tcpdump on `iface` in `host` for UDP packets matching `filter`; waits until it listens. */
export async function startCapture(tb: Testbed, host: string, iface: string, filter: string, count: number, timeoutMs: number): Promise<Capture> {
  const dir = mkdtempSync(join(tmpdir(), 'rf-cap-'));
  const file = join(dir, 'cap.pcap');
  // -U: write each packet at once; -B: a big buffer so a burst is not lost; nanosecond stamps
  const child = tb.spawn(host, ['tcpdump', '-i', iface, '-n', '-U', '-B', '8192', '--time-stamp-precision=nano', '-w', file, '-c', String(count), filter]);
  let err = '';
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump in ${host} did not start: ${err}`)), 5000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`tcpdump in ${host} exited ${code}: ${err}`)));
  });
  const read = (): Captured[] => {
    let buf: Buffer;
    try {
      buf = readFileSync(file);
    } catch {
      return [];
    }
    rmSync(dir, { recursive: true, force: true });
    return parseCapture(buf);
  };
  const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs);
  const done = exited.then(() => {
    clearTimeout(timer);
    return read();
  });
  return {
    done,
    stop: async () => {
      child.kill('SIGINT');
      return done;
    },
  };
}

/** Packets of a pcap file (Ethernet, IPv4/IPv6, UDP) with ports and ns times. */
export function parseCapture(buf: Buffer): Captured[] {
  if (buf.length < 24) return [];
  const le = buf.readUInt32LE(0) === 0xa1b23c4d || buf.readUInt32LE(0) === 0xa1b2c3d4;
  const ns = (le ? buf.readUInt32LE(0) : buf.readUInt32BE(0)) === 0xa1b23c4d;
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const out: Captured[] = [];
  let first = -1;
  let pos = 24;
  while (pos + 16 <= buf.length) {
    const sec = u32(pos);
    const sub = u32(pos + 4);
    const incl = u32(pos + 8);
    const frame = buf.subarray(pos + 16, pos + 16 + incl);
    pos += 16 + incl;
    if (first < 0) first = sec;
    const t = (sec - first) * 1e9 + sub * (ns ? 1 : 1000);
    const type = frame.readUInt16BE(12);
    const udp = type === 0x0800 ? 14 + (frame[14] & 0x0f) * 4 : type === 0x86dd ? 14 + 40 : -1;
    if (udp < 0) continue;
    const len = frame.readUInt16BE(udp + 4);
    out.push({ timeNs: t, srcPort: frame.readUInt16BE(udp), dstPort: frame.readUInt16BE(udp + 2), payload: frame.subarray(udp + 8, udp + len) });
  }
  if (out.length > 0) {
    const t0 = out[0].timeNs;
    for (const p of out) p.timeNs -= t0;
  }
  return out;
}
