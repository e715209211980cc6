// SPDX-License-Identifier: MIT
// Synthetic MPEG-TS cells and pcap files for the parser tests.
import { PCR_MODULUS } from '../../src/media/mpegts';

export interface CellSpec {
  pid?: number;
  cc?: number;
  /** 27 MHz PCR value (adaptation field with PCR) */
  pcr?: number;
  discontinuity?: boolean;
  fill?: number;
}

export function cell(s: CellSpec = {}): Uint8Array {
  const c = new Uint8Array(188).fill(s.fill ?? 0xff);
  const pid = s.pid ?? 0x100;
  c[0] = 0x47;
  c[1] = (pid >> 8) & 0x1f;
  c[2] = pid & 0xff;
  if (s.pcr === undefined) {
    c[3] = 0x10 | ((s.cc ?? 0) & 0xf);
    return c;
  }
  c[3] = 0x30 | ((s.cc ?? 0) & 0xf);
  c[4] = 7;
  c[5] = 0x10 | (s.discontinuity ? 0x80 : 0);
  const pcr = ((s.pcr % PCR_MODULUS) + PCR_MODULUS) % PCR_MODULUS;
  const base = Math.floor(pcr / 300);
  const ext = pcr % 300;
  c[6] = Math.floor(base / 2 ** 25) & 0xff;
  c[7] = Math.floor(base / 2 ** 17) & 0xff;
  c[8] = Math.floor(base / 2 ** 9) & 0xff;
  c[9] = Math.floor(base / 2) & 0xff;
  c[10] = ((base % 2) << 7) | 0x7e | ((ext >> 8) & 1);
  c[11] = ext & 0xff;
  return c;
}

/** n cells; a PCR on every `every`-th cell (from cell 0), advancing `stepNs` per cell. */
export function stream(n: number, every: number, stepNs: number, startPcr = 0, tag = true): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % every === 0 ? cell({ pcr: startPcr + Math.round((i * stepNs * 27) / 1000), cc: i }) : cell({ cc: i });
    // a tag in the payload so each cell is recognisable (bytes 184..187)
    if (tag) new DataView(c.buffer).setUint32(184, i);
    out.push(c);
  }
  return out;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const len = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export interface PcapRec {
  timeNs: number;
  frame: Uint8Array;
  orig?: number;
}

export function pcap(recs: PcapRec[], opts: { le?: boolean; ns?: boolean; link?: number; snaplen?: number; epochSec?: number } = {}): Uint8Array {
  const le = opts.le ?? true;
  const ns = opts.ns ?? false;
  const parts: Uint8Array[] = [];
  const g = new DataView(new ArrayBuffer(24));
  g.setUint32(0, ns ? 0xa1b23c4d : 0xa1b2c3d4, le);
  g.setUint16(4, 2, le);
  g.setUint16(6, 4, le);
  g.setUint32(16, opts.snaplen ?? 65535, le);
  g.setUint32(20, opts.link ?? 1, le);
  parts.push(new Uint8Array(g.buffer));
  for (const r of recs) {
    const h = new DataView(new ArrayBuffer(16));
    const sec = Math.floor(r.timeNs / 1e9);
    const sub = r.timeNs - sec * 1e9;
    h.setUint32(0, sec + (opts.epochSec ?? 0), le);
    h.setUint32(4, ns ? sub : Math.floor(sub / 1000), le);
    h.setUint32(8, r.frame.length, le);
    h.setUint32(12, r.orig ?? r.frame.length, le);
    parts.push(new Uint8Array(h.buffer), r.frame);
  }
  return concat(parts);
}

/** An IPv4/UDP packet (no link header) carrying payload. */
export function ipv4Udp(payload: Uint8Array, opts: { proto?: number; frag?: boolean } = {}): Uint8Array {
  const p = new Uint8Array(28 + payload.length);
  p[0] = 0x45;
  p[2] = (p.length >> 8) & 0xff;
  p[3] = p.length & 0xff;
  if (opts.frag) p[6] = 0x20; // MF
  p[8] = 64;
  p[9] = opts.proto ?? 17;
  p.set([198, 18, 0, 1], 12);
  p.set([198, 18, 0, 2], 16);
  p[20] = 0x13;
  p[21] = 0x8c; // src port 5004
  p[22] = 0x13;
  p[23] = 0x8d;
  const ul = 8 + payload.length;
  p[24] = (ul >> 8) & 0xff;
  p[25] = ul & 0xff;
  p.set(payload, 28);
  return p;
}

export function ipv6Udp(payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(48 + payload.length);
  p[0] = 0x60;
  const pl = 8 + payload.length;
  p[4] = (pl >> 8) & 0xff;
  p[5] = pl & 0xff;
  p[6] = 17;
  p[7] = 64;
  p[40] = 0x13;
  p[42] = 0x13;
  p[44] = (pl >> 8) & 0xff;
  p[45] = pl & 0xff;
  p.set(payload, 48);
  return p;
}

export function ethernet(ip: Uint8Array, vlan = false): Uint8Array {
  const type = ip[0] >> 4 === 6 ? 0x86dd : 0x0800;
  const hdr = vlan ? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x81, 0x00, 0, 5, type >> 8, type & 0xff] : [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, type >> 8, type & 0xff];
  return concat([Uint8Array.from(hdr), ip]);
}

export function sll(ip: Uint8Array): Uint8Array {
  const type = ip[0] >> 4 === 6 ? 0x86dd : 0x0800;
  const h = new Uint8Array(16);
  h[14] = type >> 8;
  h[15] = type & 0xff;
  return concat([h, ip]);
}
