// SPDX-License-Identifier: MIT
// Writes a nanosecond pcap file (magic 0xa1b23c4d, version 2.4, Ethernet),
// the format tcpdump -r and Wireshark open. Little-endian, as the magic
// written in host order tells readers.
import * as fs from 'node:fs/promises';
import * as fsSync from 'node:fs';
import { ReflectorError } from '../errors';

export const PCAP_MAGIC_NS = 0xa1b23c4d;
export const LINKTYPE_ETHERNET = 1;
export const PCAP_SNAPLEN = 65535;

export function pcapHeader(): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(PCAP_MAGIC_NS, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeInt32LE(0, 8); // thiszone
  b.writeUInt32LE(0, 12); // sigfigs
  b.writeUInt32LE(PCAP_SNAPLEN, 16);
  b.writeUInt32LE(LINKTYPE_ETHERNET, 20);
  return b;
}

/** Write one record (header + data) into `b` at `pos`; returns the position after it. */
export function putRecord(b: Buffer, pos: number, tsNs: bigint, data: Uint8Array, wireLen: number): number {
  b.writeUInt32LE(Number(tsNs / 1_000_000_000n), pos);
  b.writeUInt32LE(Number(tsNs % 1_000_000_000n), pos + 4);
  b.writeUInt32LE(data.length, pos + 8);
  b.writeUInt32LE(Math.max(wireLen, data.length), pos + 12);
  b.set(data, pos + 16);
  return pos + 16 + data.length;
}

export function pcapRecord(tsNs: bigint, data: Uint8Array, wireLen: number): Buffer {
  const b = Buffer.alloc(16 + data.length);
  b.writeUInt32LE(Number(tsNs / 1_000_000_000n), 0);
  b.writeUInt32LE(Number(tsNs % 1_000_000_000n), 4);
  b.writeUInt32LE(data.length, 8);
  b.writeUInt32LE(Math.max(wireLen, data.length), 12);
  b.set(data, 16);
  return b;
}

/** A pcap file being written; open() fails with ERR_CAPTURE naming the file when it cannot be created. */
export class PcapWriter {
  private constructor(private readonly fh: fs.FileHandle, readonly file: string) {}

  static async open(file: string, what = 'out'): Promise<PcapWriter> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(file, 'w', 0o640);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new ReflectorError('ERR_CAPTURE', `${what}: cannot write the capture file ${file}: ${err.message}`, { cause: e });
    }
    const w = new PcapWriter(fh, file);
    await w.write([pcapHeader()]);
    return w;
  }

  async write(bufs: Buffer[]): Promise<void> {
    if (bufs.length) await this.fh.writev(bufs);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/**
 * A pcap file written synchronously in 1 MiB chunks (the CLI's writer of a
 * Capture stream: it blocks only its own process). open() fails with
 * ERR_CAPTURE naming the file when it cannot be created.
 */
export class PcapFileSync {
  private chunk = Buffer.allocUnsafe(1 << 20);
  private pos = 0;
  packets = 0;

  private constructor(private readonly fd: number, readonly file: string) {}

  static open(file: string, what = 'out'): PcapFileSync {
    let fd: number;
    try {
      fd = fsSync.openSync(file, 'w', 0o640);
    } catch (e) {
      throw new ReflectorError('ERR_CAPTURE', `${what}: cannot write the capture file ${file}: ${(e as Error).message}`, { cause: e });
    }
    const f = new PcapFileSync(fd, file);
    f.chunk.set(pcapHeader(), 0);
    f.pos = 24;
    return f;
  }

  add(tsNs: bigint, data: Uint8Array, wireLen: number): void {
    if (this.pos + 16 + data.length > this.chunk.length) {
      this.flush();
      if (16 + data.length > this.chunk.length) this.chunk = Buffer.allocUnsafe(16 + data.length);
    }
    this.pos = putRecord(this.chunk, this.pos, tsNs, data, wireLen);
    this.packets++;
  }

  flush(): void {
    let off = 0;
    while (off < this.pos) off += fsSync.writeSync(this.fd, this.chunk, off, this.pos - off);
    this.pos = 0;
  }

  close(): void {
    try {
      this.flush();
    } finally {
      fsSync.closeSync(this.fd);
    }
  }
}
