// SPDX-License-Identifier: MIT
// Parsers against corrupted input: any bytes give a parsed file or a
// ReflectorError ERR_MEDIA, never another exception (a seeded random walk
// of mutations over valid files, reproducible).
import t from 'tap';
import { ReflectorError } from '../../src/errors';
import { TsFile } from '../../src/media/mpegts';
import { PcapFile } from '../../src/media/pcap';
import { concat, ethernet, ipv4Udp, ipv6Udp, pcap, sll, stream } from './synth';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function mutate(src: Uint8Array, r: () => number): Uint8Array {
  let b: Uint8Array = Uint8Array.from(src);
  const n = 1 + Math.floor(r() * 8);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(r() * b.length);
    switch (Math.floor(r() * 4)) {
      case 0:
        b[at] = Math.floor(r() * 256);
        break;
      case 1:
        b = b.subarray(0, at); // truncate
        break;
      case 2:
        b = concat([b.subarray(0, at), Uint8Array.from({ length: 1 + Math.floor(r() * 300) }, () => Math.floor(r() * 256)), b.subarray(at)]);
        break;
      default:
        b = concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + Math.floor(r() * 200)))]); // delete
    }
    if (b.length === 0) break;
  }
  return b;
}

function survives(t: Tap, what: string, parse: () => { durationNs: number }): void {
  try {
    const f = parse();
    if (!(f.durationNs >= 0) || !Number.isFinite(f.durationNs)) t.fail(`${what}: duration ${f.durationNs}`);
  } catch (e) {
    if (!(e instanceof ReflectorError) || e.code !== 'ERR_MEDIA') t.fail(`${what}: ${(e as Error).stack}`);
  }
}

type Tap = { fail(m: string): void };

t.test('MPEG-TS: 500 mutated files', async (t) => {
  const r = rng(1);
  const base = concat(stream(60, 7, 1e6));
  for (let i = 0; i < 500; i++) survives(t, `ts #${i}`, () => new TsFile('m.ts', mutate(base, r), r() < 0.3 ? { bitrate: 1e6 } : {}));
  t.pass('no crash');
});

t.test('pcap: 500 mutated files over every link type', async (t) => {
  const r = rng(2);
  const pay = new Uint8Array(100).fill(9);
  const bases = [
    pcap([{ timeNs: 0, frame: ethernet(ipv4Udp(pay)) }, { timeNs: 1e6, frame: ethernet(ipv6Udp(pay), true) }]),
    pcap([{ timeNs: 0, frame: sll(ipv4Udp(pay)) }, { timeNs: 1e6, frame: sll(ipv6Udp(pay)) }], { link: 113, le: false }),
    pcap([{ timeNs: 0, frame: ipv4Udp(pay) }, { timeNs: 5, frame: ipv6Udp(pay) }], { link: 101, ns: true }),
  ];
  for (let i = 0; i < 500; i++) survives(t, `pcap #${i}`, () => new PcapFile('m.pcap', mutate(bases[i % 3], r)));
  t.pass('no crash');
});
