// SPDX-License-Identifier: MIT
// One session's walk through a parsed media file: the next packet's time
// (ns from the session's start, across loops) and its bytes, written straight
// into a caller's buffer (a pool slot). State per session: position, pass,
// RTP sequence; the parsed file is shared.
import { CELLS_PER_DATAGRAM, TS_CELL, TsFile } from './mpegts';
import { PcapFile } from './pcap';
import { RTP_HEADER, writeRtpHeader, type RtpState } from './rtp';
import type { Media, MediaFormat } from './load';

export class SessionMedia {
  readonly media: Media;
  readonly format: MediaFormat;
  readonly loop: boolean;
  private readonly rtp: RtpState | undefined;
  private index = 0;
  private passStart = 0;
  /** Completed passes through the file. */
  passes = 0;

  constructor(media: Media, format: MediaFormat, loop: boolean, rtp?: RtpState) {
    this.media = media;
    this.format = format;
    this.loop = loop;
    this.rtp = format === 'rtp' ? rtp : undefined;
    if (format === 'rtp' && rtp === undefined) throw new TypeError('rtp format needs an RtpState');
  }

  /** The largest packet this session writes. */
  get maxPacket(): number {
    if (this.media instanceof PcapFile) return this.media.lengths.reduce((a, b) => (b > a ? b : a), 0);
    return CELLS_PER_DATAGRAM * TS_CELL + (this.rtp ? RTP_HEADER : 0);
  }

  private get count(): number {
    return this.media instanceof TsFile ? this.media.datagrams : this.media.packets;
  }

  /** Whether every packet was produced (never, with loop). */
  get done(): boolean {
    return this.index >= this.count;
  }

  /** Time of the next packet in ns from the session's start; Infinity when done. */
  nextTime(): number {
    if (this.index >= this.count) return Infinity;
    const m = this.media;
    return this.passStart + (m instanceof TsFile ? m.datagramTime(this.index) : m.times[this.index]);
  }

  /** Length of the next packet (0 when done). */
  nextLength(): number {
    if (this.index >= this.count) return 0;
    const m = this.media;
    if (m instanceof PcapFile) return m.lengths[this.index];
    const cells = Math.min(CELLS_PER_DATAGRAM, m.counters.cells - this.index * CELLS_PER_DATAGRAM);
    return cells * TS_CELL + (this.rtp ? RTP_HEADER : 0);
  }

  /** Where the session is: its next packet and the pass through the file (a checkpoint to resume from). */
  get position(): { packet: number; pass: number } {
    return { packet: this.index, pass: this.passes };
  }

  /**
   * Continue from `p` (a checkpoint written by this session on another
   * node): the next packet is p.packet of pass p.pass. A position outside
   * the file (it changed since) is refused: returns false and stays at the
   * beginning.
   */
  seek(p: { packet: number; pass: number }): boolean {
    const passOk = Number.isInteger(p.pass) && p.pass >= 0 && (this.loop || p.pass === 0);
    if (!Number.isInteger(p.packet) || p.packet < 0 || p.packet >= this.count || !passOk) return false;
    this.index = p.packet;
    this.passes = p.pass;
    this.passStart = p.pass * this.media.durationNs;
    return true;
  }

  /** Pass over the next packet without writing it (one too large for a slot). */
  skip(): void {
    this.advance();
  }

  /** Write the next packet into dst at `at` and advance; returns its length. */
  writeNext(dst: Uint8Array, at = 0): number {
    const m = this.media;
    let len: number;
    if (m instanceof TsFile) {
      if (this.rtp) {
        writeRtpHeader(dst, at, this.rtp, this.nextTime());
        len = RTP_HEADER + m.writeDatagram(this.index, dst, at + RTP_HEADER);
      } else len = m.writeDatagram(this.index, dst, at);
    } else len = m.writePacket(this.index, dst, at);
    this.advance();
    return len;
  }

  private advance(): void {
    const m = this.media;
    this.index++;
    if (this.index >= this.count && this.loop) {
      this.index = 0;
      this.passStart += m.durationNs;
      this.passes++;
    } else if (this.index >= this.count) this.passes++;
  }
}
