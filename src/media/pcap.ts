// SPDX-License-Identifier: MIT
// Classic libpcap reader: both byte orders, microsecond and nanosecond
// magics; Ethernet (with VLAN tags), Linux cooked (SLL, SLL2), raw IP and
// BSD loopback link types. It keeps the UDP payloads (IPv4 and IPv6) with
// their capture times, for replay with the original inter-packet timing
// (the destination is the session's, not the captured one).
//
// Recoveries (counted in PcapCounters): records that are not UDP, IP
// fragments and packets captured shorter than their UDP length are skipped;
// a timestamp earlier than the one before is replayed right after it
// (`timeBackwards`); a file that ends inside a record replays everything up
// to that record (`truncatedBytes`).
// Errors (ERR_MEDIA with the file and the byte offset): a short or unknown
// global header (pcapng is not read), an unsupported link type, a record
// header that cannot be right (length beyond the snaplen or 256 KiB,
// fraction of a second out of range), no UDP packet at all.
import { mediaError } from './media-error';

export interface PcapCounters {
  records: number;
  udp: number;
  notUdp: number;
  fragments: number;
  truncatedPackets: number;
  timeBackwards: number;
  truncatedBytes: number;
}

const MAX_RECORD = 262_144;
const LINK_ETHERNET = 1;
const LINK_RAW = 101;
const LINK_SLL = 113;
const LINK_IPV4 = 228;
const LINK_IPV6 = 229;
const LINK_SLL2 = 276;
const LINK_NULL = 0;
const LINK_LOOP = 108;
const SUPPORTED = [LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_LOOP, LINK_SLL, LINK_IPV4, LINK_IPV6, LINK_SLL2];

export class PcapFile {
  readonly file: string;
  readonly buf: Uint8Array;
  readonly linkType: number;
  readonly nanosecond: boolean;
  readonly bigEndian: boolean;
  /** Byte offset and length of each UDP payload in buf. */
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  /** Capture time of each packet in ns from the first record. */
  readonly times: Float64Array;
  /** One pass: the last packet's time plus the mean gap (1 ms for a single packet). */
  readonly durationNs: number;
  readonly counters: PcapCounters;

  constructor(file: string, buf: Uint8Array) {
    this.file = file;
    this.buf = buf;
    const c: PcapCounters = { records: 0, udp: 0, notUdp: 0, fragments: 0, truncatedPackets: 0, timeBackwards: 0, truncatedBytes: 0 };
    this.counters = c;
    if (buf.length < 24) throw mediaError(file, 0, 'too short for a pcap global header');
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const magic = dv.getUint32(0, true);
    let le: boolean;
    let ns: boolean;
    if (magic === 0xa1b2c3d4) [le, ns] = [true, false];
    else if (magic === 0xd4c3b2a1) [le, ns] = [false, false];
    else if (magic === 0xa1b23c4d) [le, ns] = [true, true];
    else if (magic === 0x4d3cb2a1) [le, ns] = [false, true];
    else if (magic === 0x0a0d0d0a) throw mediaError(file, 0, 'this is pcapng; only classic pcap is read (convert with `editcap -F pcap`)');
    else throw mediaError(file, 0, 'not a pcap file (unknown magic number)');
    this.bigEndian = !le;
    this.nanosecond = ns;
    const snaplen = dv.getUint32(16, le);
    this.linkType = dv.getUint32(20, le) & 0x0fffffff; // upper bits: FCS length flags
    if (!SUPPORTED.includes(this.linkType)) {
      throw mediaError(file, 20, 'the link type is not supported (accepted: Ethernet 1, raw IP 101/228/229, Linux SLL 113/276, loopback 0/108)');
    }
    const limit = Math.max(snaplen > 0 && snaplen < MAX_RECORD ? snaplen : MAX_RECORD, 65_535);
    const offsets: number[] = [];
    const lengths: number[] = [];
    const times: number[] = [];
    const frac = ns ? 1e9 : 1e6;
    let first = -1;
    let firstSub = 0;
    let prev = 0;
    let pos = 24;
    while (pos < buf.length) {
      if (pos + 16 > buf.length) {
        c.truncatedBytes = buf.length - pos;
        break;
      }
      const sec = dv.getUint32(pos, le);
      const sub = dv.getUint32(pos + 4, le);
      const incl = dv.getUint32(pos + 8, le);
      const orig = dv.getUint32(pos + 12, le);
      if (incl > limit) throw mediaError(file, pos + 8, 'record length exceeds the snaplen: corrupt record header');
      if (sub >= frac) throw mediaError(file, pos + 4, `record time fraction is not below ${frac}: corrupt record header`);
      if (orig < incl) throw mediaError(file, pos + 12, 'record original length is below its captured length: corrupt record header');
      if (pos + 16 + incl > buf.length) {
        c.truncatedBytes = buf.length - pos;
        break;
      }
      c.records++;
      const payload = this.udpPayload(pos + 16, incl, orig);
      pos += 16 + incl;
      if (payload === null) continue;
      // relative to the first packet's second: epoch ns do not fit a double exactly
      if (first < 0) first = sec;
      let rel = (sec - first) * 1e9 + sub * (ns ? 1 : 1e3);
      if (rel < prev) {
        c.timeBackwards++;
        rel = prev;
      }
      prev = rel;
      if (times.length === 0) firstSub = rel;
      offsets.push(payload[0]);
      lengths.push(payload[1]);
      times.push(rel);
      c.udp++;
    }
    if (offsets.length === 0) {
      throw mediaError(file, 24, 'no UDP packet in the capture (every record is not UDP, a fragment or cut short)');
    }
    this.offsets = Uint32Array.from(offsets);
    this.lengths = Uint32Array.from(lengths);
    this.times = Float64Array.from(times, (x) => x - firstSub);
    const n = times.length;
    const last = this.times[n - 1];
    this.durationNs = n > 1 && last > 0 ? last + last / (n - 1) : 1e6;
  }

  get packets(): number {
    return this.offsets.length;
  }

  /** Copy packet i's UDP payload into dst at `at`; returns its length. */
  writePacket(i: number, dst: Uint8Array, at = 0): number {
    const o = this.offsets[i];
    const l = this.lengths[i];
    dst.set(this.buf.subarray(o, o + l), at);
    return l;
  }

  /** [offset, length] of the UDP payload in the record at `at`, or null (counted) when there is none. */
  private udpPayload(at: number, incl: number, orig: number): [number, number] | null {
    const b = this.buf;
    const end = at + incl;
    let ip = at;
    let proto = -1; // ethertype, or 4/6 for raw
    switch (this.linkType) {
      case LINK_ETHERNET: {
        if (incl < 14) return this.skip('notUdp');
        proto = (b[at + 12] << 8) | b[at + 13];
        ip = at + 14;
        while ((proto === 0x8100 || proto === 0x88a8) && ip + 4 <= end) {
          proto = (b[ip + 2] << 8) | b[ip + 3];
          ip += 4;
        }
        break;
      }
      case LINK_SLL:
        if (incl < 16) return this.skip('notUdp');
        proto = (b[at + 14] << 8) | b[at + 15];
        ip = at + 16;
        break;
      case LINK_SLL2:
        if (incl < 20) return this.skip('notUdp');
        proto = (b[at] << 8) | b[at + 1];
        ip = at + 20;
        break;
      case LINK_NULL:
      case LINK_LOOP: {
        if (incl < 4) return this.skip('notUdp');
        ip = at + 4;
        proto = incl > 4 ? (b[ip] >> 4 === 6 ? 0x86dd : 0x0800) : -1;
        break;
      }
      default: // raw IP
        proto = incl > 0 ? (b[at] >> 4 === 6 ? 0x86dd : 0x0800) : -1;
    }
    let udp: number;
    if (proto === 0x0800) {
      if (ip + 20 > end || b[ip] >> 4 !== 4) return this.skip('notUdp');
      const ihl = (b[ip] & 0x0f) * 4;
      if (b[ip + 9] !== 17) return this.skip('notUdp');
      const fragField = ((b[ip + 6] << 8) | b[ip + 7]) & 0x3fff; // MF flag + offset
      if (fragField !== 0) return this.skip('fragments');
      udp = ip + ihl;
    } else if (proto === 0x86dd) {
      if (ip + 40 > end) return this.skip('notUdp');
      let next = b[ip + 6];
      udp = ip + 40;
      // hop-by-hop, routing and destination options may come before UDP
      while ((next === 0 || next === 43 || next === 60) && udp + 8 <= end) {
        next = b[udp];
        udp += (b[udp + 1] + 1) * 8;
      }
      if (next === 44) return this.skip('fragments');
      if (next !== 17) return this.skip('notUdp');
    } else return this.skip('notUdp');
    if (udp + 8 > end) return this.skip(orig > incl ? 'truncatedPackets' : 'notUdp');
    const udpLen = (b[udp + 4] << 8) | b[udp + 5];
    if (udpLen < 8) return this.skip('notUdp');
    if (udp + udpLen > end) return this.skip('truncatedPackets');
    return [udp + 8, udpLen - 8];
  }

  private skip(counter: 'notUdp' | 'fragments' | 'truncatedPackets'): null {
    this.counters[counter]++;
    return null;
  }
}
