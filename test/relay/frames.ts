// SPDX-License-Identifier: MIT
// Hand-built Ethernet frames for the relay's bad-input test, and a way to
// put them on the wire from a testbed host (python3's AF_PACKET socket:
// Node has no raw sockets). Checksums are computed unless a case breaks them.
import type { Testbed } from '../helpers/testbed';

function sum(b: Buffer, acc = 0): number {
  for (let i = 0; i + 1 < b.length; i += 2) acc += b.readUInt16BE(i);
  if (b.length & 1) acc += b[b.length - 1] << 8;
  return acc;
}
function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}
function addr(a: string): Buffer {
  if (a.includes('.')) return Buffer.from(a.split('.').map(Number));
  const [h, t] = a.split('::');
  const hs = h ? h.split(':') : [];
  const ts = t !== undefined && t !== '' ? t.split(':') : [];
  const g = t === undefined ? hs : [...hs, ...Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  const b = Buffer.alloc(16);
  g.forEach((x, i) => b.writeUInt16BE(parseInt(x, 16), i * 2));
  return b;
}
function mac(m: string): Buffer {
  return Buffer.from(m.split(':').map((x) => parseInt(x, 16)));
}

export interface FrameSpec {
  dstMac: string;
  srcMac: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Buffer;
  /** IPv4: option bytes (multiple of 4) */
  options?: Buffer;
  /** IPv4 flags+fragment offset word (default 0x4000, DF) */
  frag?: number;
  proto?: number;
  /** IPv6: extension headers to insert, as [type, bytes] */
  ext?: Array<[number, Buffer]>;
  vlan?: number[];
  zeroUdpCsum?: boolean;
}

export function frame(f: FrameSpec): Buffer {
  const v6 = f.dst.includes(':');
  const s = addr(f.src);
  const d = addr(f.dst);
  const ulen = 8 + f.payload.length;
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(f.sport, 0);
  udp.writeUInt16BE(f.dport, 2);
  udp.writeUInt16BE(ulen, 4);
  const proto = f.proto ?? 17;
  const pseudo = sum(s) + sum(d) + 17 + ulen;
  const c = 0xffff - fold(sum(udp, sum(f.payload, pseudo)));
  udp.writeUInt16BE(f.zeroUdpCsum ? 0 : c || 0xffff, 6);
  let l3: Buffer;
  if (!v6) {
    const opt = f.options ?? Buffer.alloc(0);
    const ip = Buffer.alloc(20 + opt.length);
    ip[0] = 0x40 | ((20 + opt.length) / 4);
    ip.writeUInt16BE(ip.length + ulen, 2);
    ip.writeUInt16BE(0x77, 4);
    ip.writeUInt16BE(f.frag ?? 0x4000, 6);
    ip[8] = 64;
    ip[9] = proto;
    s.copy(ip, 12);
    d.copy(ip, 16);
    opt.copy(ip, 20);
    ip.writeUInt16BE(0xffff - fold(sum(ip)), 10);
    l3 = ip;
  } else {
    const exts = f.ext ?? [];
    const chain = Buffer.concat(exts.map(([, b]) => b));
    const ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(chain.length + ulen, 4);
    ip[6] = exts.length ? exts[0][0] : proto;
    ip[7] = 64;
    s.copy(ip, 8);
    d.copy(ip, 24);
    // each extension header's next-header byte points at the following one
    let off = 0;
    exts.forEach(([, b], i) => {
      chain[off] = i + 1 < exts.length ? exts[i + 1][0] : proto;
      off += b.length;
    });
    l3 = Buffer.concat([ip, chain]);
  }
  const tags = (f.vlan ?? []).map((id, i, all) => {
    const t = Buffer.alloc(4);
    t.writeUInt16BE(all.length === 2 && i === 0 ? 0x88a8 : 0x8100, 0);
    t.writeUInt16BE(id, 2);
    return t;
  });
  const eth = Buffer.alloc(2);
  eth.writeUInt16BE(v6 ? 0x86dd : 0x0800, 0);
  return Buffer.concat([mac(f.dstMac), mac(f.srcMac), ...tags, eth, l3, udp, f.payload]);
}

/** Send raw frames out of `host`'s interface `dev`. */
export async function inject(tb: Testbed, host: string, dev: string, frames: Buffer[]): Promise<void> {
  const py = 'import socket,sys\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind((sys.argv[1],0))\n' +
    'for l in sys.stdin.read().split():\n  s.send(bytes.fromhex(l))\n';
  await tb.exec(host, ['python3', '-c', py, dev], { input: frames.map((b) => b.toString('hex')).join('\n') + '\n' });
}
