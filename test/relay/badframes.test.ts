// SPDX-License-Identifier: MIT
// Bad input to a relay (issue #4), put on the wire as raw frames from the
// origin: truncated, bad IHL, bad UDP length, bad header checksum, IPv6
// without a UDP checksum or with a payload length past the frame (dropped:
// drop_malformed); IPv4 and IPv6 fragments (drop_fragment); VLAN-tagged
// frames (not the relay's network: left to the kernel); TCP to P (never
// copied up: the socket filter refuses it). IPv4 options and IPv6
// destination options are handled: relayed without them. The engine keeps
// relaying afterwards. (Oversize frames cannot be sent over veth; the MTU
// check is covered by engine/test/relay_table.c.)
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { TIERS, cannotRun, endpoint, makeBed, send, startPorts, until } from './bed';
import { frame, inject, type FrameSpec } from './frames';
import { makePayload } from './payload';

const pythonMissing = spawnSync('python3', ['-c', 'import socket; socket.AF_PACKET'], { encoding: 'utf8' }).status !== 0;

if (!cannotRun(t)) {
  for (const tier of TIERS) t.test(`bad frames are dropped and counted by reason, handled ones relayed, the engine keeps running (${tier} tier)`, { skip: pythonMissing ? 'python3 with AF_PACKET is needed to inject raw frames' : false }, async (t) => {
    // point to point: the origin is also the subscriber
    const bed = await makeBed(t, {}, 0, { relayTier: tier });
    const { tb, relays, engine } = bed;
    const dev = tb.iface('origin').name;
    const c = (n: string): bigint => engine.region.counter(1, n);
    for (const fam of [4, 6] as const) {
      await relays.addRelay({ name: `b${fam}`, listen: endpoint(tb.addr('relay', fam), 5000), sources: [fam === 4 ? '198.18.0.0/16' : '2001:db8::/32'],
        subscribers: [endpoint(tb.addr('origin', fam), 6000)] });
    }
    const rx4 = await startPorts(bed, 'origin', tb.addr('origin', 4), [6000], 101, 10000, 5000);
    const rx6 = await startPorts(bed, 'origin', tb.addr('origin', 6), [6000], 101, 10000, 5000);
    const base = (fam: 4 | 6, seq: number): FrameSpec => ({
      dstMac: tb.mac('relay'), srcMac: tb.mac('origin'), src: tb.addr('origin', fam), dst: tb.addr('relay', fam),
      sport: 4444, dport: 5000, payload: makePayload(seq, 200),
    });
    const cut = (b: Buffer, n: number): Buffer => b.subarray(0, b.length - n);
    const patch = (b: Buffer, fn: (x: Buffer) => void): Buffer => {
      const x = Buffer.from(b);
      fn(x);
      return x;
    };
    const ipsum = (x: Buffer): void => {
      x.writeUInt16BE(0, 24);
      let s = 0;
      const ihl = (x[14] & 15) * 4;
      for (let i = 14; i < 14 + ihl; i += 2) s += x.readUInt16BE(i);
      while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
      x.writeUInt16BE(0xffff - s, 24);
    };
    const v4 = frame(base(4, 999));
    const v6 = frame(base(6, 999));
    const malformed = [
      cut(v4, 20), // total length past the frame
      patch(v4, (x) => { x[14] = 0x44; ipsum(x); }), // IHL 4
      patch(v4, (x) => x.writeUInt16BE(200 + 8 + 50, 38)), // UDP length past the IP packet
      patch(v4, (x) => (x[24] ^= 0x55)), // header checksum
      frame({ ...base(6, 999), zeroUdpCsum: true }), // IPv6 UDP without checksum
      patch(v6, (x) => x.writeUInt16BE(2000, 18)), // IPv6 payload length past the frame
    ];
    const fragments = [
      frame({ ...base(4, 999), frag: 0x2000 }), // MF
      frame({ ...base(4, 999), frag: 0x0010 }), // offset 128
      frame({ ...base(6, 999), ext: [[44, Buffer.from([0, 0, 0, 1, 0, 0, 0, 7])]] }),
    ];
    const notOurs = [
      frame({ ...base(4, 999), vlan: [7] }),
      frame({ ...base(4, 999), vlan: [7, 8] }),
      frame({ ...base(4, 999), proto: 6 }),
    ];
    const handled = [
      frame({ ...base(4, 1000), options: Buffer.from([1, 1, 1, 1, 1, 1, 1, 0]) }), // NOPs + end of options
      frame({ ...base(6, 1000), ext: [[60, Buffer.from([0, 0, 1, 4, 0, 0, 0, 0])]] }), // destination options (PadN)
    ];
    const before = { malformed: c('drop_malformed'), fragment: c('drop_fragment'), in: c('relay_in'), unmatched: c('rx_unmatched') };
    await inject(tb, 'origin', dev, [...malformed, ...fragments, ...notOurs, ...handled]);
    await until(() => c('drop_malformed') - before.malformed >= BigInt(malformed.length) && c('relay_in') - before.in >= 2n);
    await until(() => false, 200);
    t.equal(c('drop_malformed') - before.malformed, BigInt(malformed.length), `drop_malformed counts the ${malformed.length} malformed frames`);
    t.equal(c('drop_fragment') - before.fragment, BigInt(fragments.length), `drop_fragment counts the ${fragments.length} fragments`);
    t.equal(c('relay_in') - before.in, 2n, 'only the frames with IPv4 options / IPv6 destination options matched the relays');
    t.ok(c('rx_unmatched') - before.unmatched >= 1n, 'the VLAN-tagged frame the kernel untagged was left to the kernel (rx_unmatched)');

    // still relaying
    await send(bed, endpoint(tb.addr('origin', 4), 4444), endpoint(tb.addr('relay', 4), 5000), 100, 1000, 200);
    await send(bed, endpoint(tb.addr('origin', 6), 4444), endpoint(tb.addr('relay', 6), 5000), 100, 1000, 200);
    const [r4, r6] = [(await rx4.result).ports['6000'], (await rx6.result).ports['6000']];
    t.equal(r4.received, 101, 'IPv4 subscriber: the datagram with options (relayed without them) and 100 after the bad ones');
    t.equal(r4.bad + r4.dups, 0, 'IPv4: all byte-identical, no duplicate');
    t.equal(r6.received, 101, 'IPv6 subscriber: the datagram with destination options and 100 after the bad ones');
    t.equal(r6.bad + r6.dups, 0, 'IPv6: all byte-identical, no duplicate');
    t.ok(engine.running, 'engine still running');
  });
}
