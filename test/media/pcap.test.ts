// SPDX-License-Identifier: MIT
// Classic pcap reader on synthetic files: magics, byte orders, link types,
// what is skipped and counted, what is an error.
import t from 'tap';
import { PcapFile } from '../../src/media/pcap';
import { concat, ethernet, ipv4Udp, ipv6Udp, pcap, sll } from './synth';

const pay = (i: number, n = 100): Uint8Array => new Uint8Array(n).fill(i);

function payloads(f: PcapFile): number[][] {
  const out: number[][] = [];
  const dst = new Uint8Array(70000);
  for (let i = 0; i < f.packets; i++) {
    const len = f.writePacket(i, dst);
    out.push([dst[0], len]);
  }
  return out;
}

for (const le of [true, false]) {
  for (const ns of [false, true]) {
    t.test(`${le ? 'little' : 'big'}-endian, ${ns ? 'ns' : 'us'} magic, Ethernet`, async (t) => {
      const buf = pcap(
        [
          { timeNs: 5_000, frame: ethernet(ipv4Udp(pay(1))) },
          { timeNs: 2_005_000, frame: ethernet(ipv4Udp(pay(2, 50)), true) },
          { timeNs: 1e9 + 5_000, frame: ethernet(ipv6Udp(pay(3, 1316))) },
        ],
        { le, ns, epochSec: 1_700_000_000 },
      );
      const f = new PcapFile('cap.pcap', buf);
      t.equal(f.bigEndian, !le);
      t.equal(f.nanosecond, ns);
      t.same(payloads(f), [[1, 100], [2, 50], [3, 1316]]);
      t.same(Array.from(f.times), [0, 2e6, 1e9]);
      t.equal(f.durationNs, 1e9 + 0.5e9, 'one pass: last time + mean gap');
    });
  }
}

t.test('Linux SLL and raw IP link types', async (t) => {
  const a = new PcapFile('sll.pcap', pcap([{ timeNs: 0, frame: sll(ipv4Udp(pay(7))) }], { link: 113 }));
  t.same(payloads(a), [[7, 100]]);
  const b = new PcapFile('raw.pcap', pcap([{ timeNs: 0, frame: ipv4Udp(pay(8)) }, { timeNs: 1000, frame: ipv6Udp(pay(9)) }], { link: 101 }));
  t.same(payloads(b), [[8, 100], [9, 100]]);
});

t.test('not UDP, fragments and cut-short packets are skipped and counted; time going back is clamped', async (t) => {
  const cut = ethernet(ipv4Udp(pay(4)));
  const f = new PcapFile(
    'mix.pcap',
    pcap([
      { timeNs: 1000, frame: ethernet(ipv4Udp(pay(1))) },
      { timeNs: 2000, frame: ethernet(ipv4Udp(pay(2), { proto: 6 })) },
      { timeNs: 3000, frame: ethernet(ipv4Udp(pay(3), { frag: true })) },
      { timeNs: 4000, frame: cut.subarray(0, 60), orig: cut.length },
      { timeNs: 500, frame: ethernet(ipv4Udp(pay(5))) },
    ]),
  );
  t.same(f.counters, { records: 5, udp: 2, notUdp: 1, fragments: 1, truncatedPackets: 1, timeBackwards: 1, truncatedBytes: 0 });
  t.same(Array.from(f.times), [0, 0]);
});

t.test('a file that ends inside a record replays what came before', async (t) => {
  const buf = pcap([
    { timeNs: 0, frame: ethernet(ipv4Udp(pay(1))) },
    { timeNs: 1000, frame: ethernet(ipv4Udp(pay(2))) },
  ]);
  const f = new PcapFile('cut.pcap', buf.subarray(0, buf.length - 10));
  t.equal(f.packets, 1);
  t.equal(f.counters.truncatedBytes, 16 + 142 - 10);
});

t.test('errors name the file and the byte offset', async (t) => {
  t.throws(() => new PcapFile('short.pcap', new Uint8Array(10)), {
    code: 'ERR_MEDIA',
    message: 'short.pcap: byte offset 0: too short for a pcap global header',
  });
  t.throws(() => new PcapFile('bad.pcap', new Uint8Array(24).fill(0x11)), { message: 'bad.pcap: byte offset 0: not a pcap file (unknown magic number)' });
  const ng = new Uint8Array(24);
  ng.set([0x0a, 0x0d, 0x0d, 0x0a]);
  t.throws(() => new PcapFile('ng.pcap', ng), { message: /this is pcapng/ });
  t.throws(() => new PcapFile('link.pcap', pcap([], { link: 147 })), { message: /^link\.pcap: byte offset 20: the link type is not supported \(accepted: / });
  const big = pcap([{ timeNs: 0, frame: ethernet(ipv4Udp(pay(1))) }]);
  new DataView(big.buffer).setUint32(24 + 8, 0x7fffffff, true);
  t.throws(() => new PcapFile('corrupt.pcap', big), {
    message: 'corrupt.pcap: byte offset 32: record length exceeds the snaplen: corrupt record header',
  });
  const frac = pcap([{ timeNs: 0, frame: ethernet(ipv4Udp(pay(1))) }]);
  new DataView(frac.buffer).setUint32(24 + 4, 2_000_000, true);
  t.throws(() => new PcapFile('frac.pcap', frac), { message: 'frac.pcap: byte offset 28: record time fraction is not below 1000000: corrupt record header' });
  t.throws(() => new PcapFile('tcp.pcap', pcap([{ timeNs: 0, frame: ethernet(ipv4Udp(pay(1), { proto: 6 })) }])), {
    message: 'tcp.pcap: byte offset 24: no UDP packet in the capture (every record is not UDP, a fragment or cut short)',
  });
  t.ok(concat);
});
