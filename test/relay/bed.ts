// SPDX-License-Identifier: MIT
// Shared setup of the relay tests: one Ethernet segment (a bridge) joining
// origin, relay and two subscriber hosts; the engine owns the relay host's
// interface (AF_PACKET) and a Relays manager drives it. Fixture processes
// (origin-sender, port-receiver) print JSON lines; helpers read them.
import { join } from 'node:path';
import type { Test } from 'tap';
import { Engine, type EngineOptions, type RelayTier } from '../../src/engine/engine';
import { Relays, type RelaysOptions } from '../../src/relay/relays';
import { compileFixture } from '../helpers/cc';
import { engineUnavailable } from '../helpers/engine-available';
import { followFixture } from '../helpers/fixture-process';
import { Testbed, skipUnlessRoot } from '../helpers/testbed';
import type { PortReceiverResult } from './port-receiver';

export const RECEIVER = join(__dirname, 'port-receiver.js');
export const SENDER = join(__dirname, 'origin-sender.js');

export interface Bed {
  tb: Testbed;
  engine: Engine;
  relays: Relays;
}

/** null (and the test planned as skipped, loudly) when the host cannot run it. */
export function cannotRun(t: Test): boolean {
  if (skipUnlessRoot(t)) return true;
  const why = engineUnavailable();
  if (why) {
    process.stderr.write(`# SKIP relay test: engine not available: ${why}\n`);
    t.plan(0, `engine not available: ${why}`);
    return true;
  }
  return false;
}

/** Every relay test runs on both tiers (docs/kernel-tier.md). */
export const TIERS: readonly RelayTier[] = ['kernel', 'user'];

/**
 * subscribers: hosts s1..sN on the segment. 0: a point-to-point veth from
 * origin to relay instead of a bridge (a Linux bridge with br_netfilter
 * drops IPv4 frames with bad headers, which the bad-input test must send).
 * backend: the engine's (the relay's RX thread is on AF_PACKET with both).
 */
export async function makeBed(
  t: Test, opts: RelaysOptions = {}, subscribers = 2, engineOpts: Pick<EngineOptions, 'backend' | 'rxBlocks' | 'rxBlockSize' | 'relayTier' | 'kernelOrphanS'> = {},
): Promise<Bed> {
  const subs = Array.from({ length: subscribers }, (_, i) => `s${i + 1}`);
  const tb = subscribers === 0
    ? await Testbed.create(t, { hosts: ['origin', 'relay'], links: [['origin', 'relay']] })
    : await Testbed.create(t, { hosts: ['origin', 'relay', ...subs], segments: [['origin', 'relay', ...subs]] });
  const engine = new Engine({ interface: tb.iface('relay').name, netns: tb.ns('relay'), backend: 'afpacket', ...engineOpts });
  await engine.start();
  // the tier asked for is the one under test: a silent fallback would test the other
  const tier = engine.relayTier();
  const want = engineOpts.relayTier ?? 'kernel';
  if (tier.tier !== want) {
    await engine.stop();
    throw new Error(`the engine relays in the ${tier.tier} tier, not ${want}: ${tier.why}`);
  }
  const relays = new Relays(engine, { refreshMs: 0, ...opts });
  // teardown runs in reverse order of registration: relays, then the engine
  t.teardown(async () => {
    if (engine.running) await engine.stop();
  });
  t.teardown(() => relays.stop());
  await relays.start();
  return { tb, engine, relays };
}

export async function startPorts(
  bed: Bed, host: string, addr: string, ports: number[], count: number, timeoutMs: number, idleMs = 1500, join?: string,
): Promise<{ result: Promise<PortReceiverResult> }> {
  const child = bed.tb.spawn(host, [process.execPath, RECEIVER, '--addr', addr, '--ports', ports.join(','),
    '--count', String(count), '--timeout-ms', String(timeoutMs), '--idle-ms', String(idleMs), ...(join ? ['--join', join] : [])]);
  const f = followFixture<PortReceiverResult>(child, `port-receiver in ${host}`);
  await f.ready;
  // wrapped: an async function returning a promise would wait for it
  return { result: f.result };
}

export async function send(bed: Bed, from: string, to: string, count: number, pps: number, size: number): Promise<{ sent: number; errors: number }> {
  const child = bed.tb.spawn('origin', [process.execPath, SENDER, '--from', from, '--to', to, '--count', String(count),
    '--pps', String(pps), '--size', String(size)]);
  return followFixture<{ sent: number; errors: number }>(child, 'origin-sender').result;
}

export function endpoint(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** Wait until fn() is true or ms pass. */
export async function until(fn: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

/**
 * The C sender and receiver of test/fixtures/seq_udp.c (same payloads and
 * result lines as origin-sender and port-receiver, a fraction of their CPU),
 * or the reason they cannot be built.
 */
export function seqUdp(bed: Bed): { missing: string } | {
  startPorts(host: string, addr: string, ports: number[], count: number, timeoutMs: number, idleMs?: number): Promise<{ result: Promise<PortReceiverResult> }>;
  send(from: string, to: string, count: number, pps: number, size: number): Promise<{ sent: number; errors: number }>;
} {
  const cc = compileFixture('seq_udp');
  if ('missing' in cc) return cc;
  return {
    async startPorts(host, addr, ports, count, timeoutMs, idleMs = 1500) {
      const child = bed.tb.spawn(host, [cc.bin, 'recv', '--addr', addr, '--ports', ports.join(','), '--count', String(count),
        '--timeout-ms', String(timeoutMs), '--idle-ms', String(idleMs)]);
      const f = followFixture<PortReceiverResult>(child, `seq_udp recv in ${host}`);
      await f.ready;
      return { result: f.result };
    },
    send(from, to, count, pps, size) {
      const child = bed.tb.spawn('origin', [cc.bin, 'send', '--from', from, '--to', to, '--count', String(count),
        '--pps', String(pps), '--size', String(size)]);
      return followFixture<{ sent: number; errors: number }>(child, 'seq_udp send').result;
    },
  };
}
