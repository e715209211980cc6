// SPDX-License-Identifier: MIT
// MPEG-TS reader and packetizer: finds the 188-byte cells, times each cell
// from the stream's PCR (or a configured bitrate), and cuts datagrams of
// 7 cells (the last one carries what is left). Cells leave unchanged; none
// is added or dropped, so a receiver can save the stream byte for byte.
//
// Recoveries (documented in docs/aggregates.md, counted in TsCounters):
// - lost sync: a byte that should be 0x47 is not. The reader skips to the
//   next offset where 0x47 repeats every 188 bytes (two more cells, or the
//   end of the file) and goes on; `lostSync` and `bytesSkipped` count it.
// - truncated file: a last cell shorter than 188 bytes is not sent
//   (`truncatedBytes`).
// - PCR wraparound at 2^33 * 300: unwrapped (`pcrWraps`), timing goes on.
// - PCR discontinuity (the discontinuity_indicator, a backwards jump, or a
//   forward jump of more than 1 s between two PCRs): that segment is timed at
//   the stream's average rate instead (`pcrDiscontinuities`), so the stream
//   neither stalls nor bursts.
// Errors (ReflectorError ERR_MEDIA naming the file and the byte offset):
// empty file, no sync at all, more than half of the file unsynchronised,
// no usable PCR and no bitrate.
import { ReflectorError } from '../errors';
import { mediaError } from './media-error';

export const TS_CELL = 188;
export const TS_SYNC = 0x47;
export const CELLS_PER_DATAGRAM = 7;
/** PCR clock: 27 MHz, wraps at 2^33 * 300. */
export const PCR_HZ = 27_000_000;
export const PCR_MODULUS = 2 ** 33 * 300;
/** A forward jump between two PCRs larger than this is a discontinuity. */
export const PCR_MAX_GAP = PCR_HZ; // 1 s
const MAX_PROBLEMS = 20;

export interface TsCounters {
  cells: number;
  datagrams: number;
  lostSync: number;
  bytesSkipped: number;
  truncatedBytes: number;
  pcrs: number;
  pcrWraps: number;
  pcrDiscontinuities: number;
}

export interface TsOptions {
  /** bits per second, used where the stream has no usable PCR (or always, with pace 'bitrate'). */
  bitrate?: number;
  /** 'pcr' (default: PCR, falling back to bitrate) or 'bitrate'. */
  pace?: 'pcr' | 'bitrate';
}

export class TsFile {
  readonly file: string;
  readonly buf: Uint8Array;
  /** Byte offset of each valid cell in buf. */
  readonly cellOffsets: Uint32Array;
  /** Time of each cell in ns from the first cell. */
  readonly cellTimes: Float64Array;
  /** One pass: the last cell's time plus one cell interval. */
  readonly durationNs: number;
  readonly counters: TsCounters;
  /** The first few recoveries, with byte offsets ("byte offset 1880: lost sync, skipped 5 bytes"). */
  readonly problems: string[];
  readonly pcrPid: number;
  readonly pacedBy: 'pcr' | 'bitrate';

  constructor(file: string, buf: Uint8Array, opts: TsOptions = {}) {
    this.file = file;
    this.buf = buf;
    const counters: TsCounters = {
      cells: 0,
      datagrams: 0,
      lostSync: 0,
      bytesSkipped: 0,
      truncatedBytes: 0,
      pcrs: 0,
      pcrWraps: 0,
      pcrDiscontinuities: 0,
    };
    this.counters = counters;
    this.problems = [];
    if (buf.length === 0) throw mediaError(file, 0, 'the file is empty');
    this.cellOffsets = this.findCells();
    const n = this.cellOffsets.length;
    counters.cells = n;
    counters.datagrams = Math.ceil(n / CELLS_PER_DATAGRAM);
    if (counters.bytesSkipped * 2 > buf.length) {
      throw mediaError(file, 0, 'more than half of the file is not in sync: not an MPEG-TS file');
    }
    const timing = this.timeCells(opts);
    this.cellTimes = timing.times;
    this.durationNs = timing.duration;
    this.pcrPid = timing.pcrPid;
    this.pacedBy = timing.pacedBy;
  }

  /** Datagrams in one pass. */
  get datagrams(): number {
    return this.counters.datagrams;
  }

  /** Time of datagram i (its first cell) in ns from the start of the pass. */
  datagramTime(i: number): number {
    return this.cellTimes[i * CELLS_PER_DATAGRAM];
  }

  /** Copy datagram i's cells into dst at `at`; returns the bytes written. */
  writeDatagram(i: number, dst: Uint8Array, at = 0): number {
    const first = i * CELLS_PER_DATAGRAM;
    const last = Math.min(first + CELLS_PER_DATAGRAM, this.cellOffsets.length);
    const offs = this.cellOffsets;
    let w = at;
    let c = first;
    while (c < last) {
      // copy runs of contiguous cells in one set() (all of them unless a resync fell in between)
      let e = c + 1;
      while (e < last && offs[e] === offs[e - 1] + TS_CELL) e++;
      const start = offs[c];
      dst.set(this.buf.subarray(start, start + (e - c) * TS_CELL), w);
      w += (e - c) * TS_CELL;
      c = e;
    }
    return w - at;
  }

  private problem(text: string): void {
    if (this.problems.length < MAX_PROBLEMS) this.problems.push(text);
  }

  private findCells(): Uint32Array {
    const buf = this.buf;
    const len = buf.length;
    const out = new Uint32Array(Math.floor(len / TS_CELL) + 1);
    let n = 0;
    let pos = 0;
    while (pos + TS_CELL <= len) {
      if (buf[pos] === TS_SYNC) {
        out[n++] = pos;
        pos += TS_CELL;
        continue;
      }
      const next = this.resync(pos + 1);
      this.counters.lostSync++;
      if (next < 0) {
        this.problem(`byte offset ${pos}: lost sync, no sync found up to the end (${len - pos} bytes skipped)`);
        this.counters.bytesSkipped += len - pos;
        pos = len;
        break;
      }
      this.problem(`byte offset ${pos}: lost sync, skipped ${next - pos} bytes to byte offset ${next}`);
      this.counters.bytesSkipped += next - pos;
      pos = next;
    }
    if (pos < len) {
      this.counters.truncatedBytes = len - pos;
      this.problem(`byte offset ${pos}: the last cell is truncated (${len - pos} of ${TS_CELL} bytes), not sent`);
    }
    if (n === 0) {
      throw mediaError(this.file, 0, `no MPEG-TS sync byte (0x47 every ${TS_CELL} bytes) found`);
    }
    return out.slice(0, n);
  }

  /** The next offset >= from where 0x47 repeats every 188 bytes (up to two more cells or the end), or -1. */
  private resync(from: number): number {
    const buf = this.buf;
    const len = buf.length;
    for (let q = from; q + TS_CELL <= len; q++) {
      if (buf[q] !== TS_SYNC) continue;
      let ok = true;
      for (let k = 1; k <= 2 && ok; k++) {
        const p = q + k * TS_CELL;
        if (p + TS_CELL > len) break; // the end of the file confirms as well
        ok = buf[p] === TS_SYNC;
      }
      if (ok) return q;
    }
    return -1;
  }

  private timeCells(opts: TsOptions): { times: Float64Array; duration: number; pcrPid: number; pacedBy: 'pcr' | 'bitrate' } {
    const n = this.cellOffsets.length;
    const times = new Float64Array(n);
    const bitrate = opts.bitrate;
    if (bitrate !== undefined && !(typeof bitrate === 'number' && bitrate > 0 && Number.isFinite(bitrate))) {
      throw new ReflectorError('ERR_INVALID_ARG', `bitrate: ${String(bitrate)} is not a number of bits per second > 0`);
    }
    const bitrateCell = bitrate !== undefined ? (TS_CELL * 8 * 1e9) / bitrate : undefined;
    const byBitrate = (): { times: Float64Array; duration: number; pcrPid: number; pacedBy: 'bitrate' } => {
      if (bitrateCell === undefined) {
        throw mediaError(this.file, 0, 'the stream has fewer than 2 usable PCRs: give the session a bitrate');
      }
      for (let i = 0; i < n; i++) times[i] = i * bitrateCell;
      return { times, duration: n * bitrateCell, pcrPid: -1, pacedBy: 'bitrate' };
    };
    if (opts.pace === 'bitrate') return byBitrate();

    // PCRs of the first PID that carries one
    const pcrCells: number[] = [];
    const pcrValues: number[] = [];
    const pcrDisc: boolean[] = [];
    let pcrPid = -1;
    for (let i = 0; i < n; i++) {
      const p = this.cellOffsets[i];
      const b = this.buf;
      const afc = (b[p + 3] >> 4) & 0x3;
      if ((afc & 0x2) === 0 || b[p + 4] < 7) continue;
      const flags = b[p + 5];
      if ((flags & 0x10) === 0) continue;
      const pid = ((b[p + 1] & 0x1f) << 8) | b[p + 2];
      if (pcrPid < 0) pcrPid = pid;
      if (pid !== pcrPid) continue;
      const base = b[p + 6] * 2 ** 25 + b[p + 7] * 2 ** 17 + b[p + 8] * 2 ** 9 + b[p + 9] * 2 + (b[p + 10] >> 7);
      const ext = ((b[p + 10] & 1) << 8) | b[p + 11];
      pcrCells.push(i);
      pcrValues.push(base * 300 + ext);
      pcrDisc.push((flags & 0x80) !== 0);
    }
    this.counters.pcrs = pcrCells.length;
    if (pcrCells.length < 2) return byBitrate();

    // unwrap into a timeline (ns); mark segments that cross a discontinuity
    const m = pcrCells.length;
    const anchorNs = new Float64Array(m);
    const good = new Uint8Array(m); // good[k]: segment k-1..k is timed by its PCRs
    let goodNs = 0;
    let goodCells = 0;
    for (let k = 1; k < m; k++) {
      let d = pcrValues[k] - pcrValues[k - 1];
      const wrapped = d < 0;
      if (wrapped) d += PCR_MODULUS;
      const cells = pcrCells[k] - pcrCells[k - 1];
      if (pcrDisc[k] || d > PCR_MAX_GAP) continue; // timed below at the average rate
      if (wrapped) {
        this.counters.pcrWraps++;
        this.problem(`byte offset ${this.cellOffsets[pcrCells[k]]}: PCR wrapped around 2^33*300`);
      }
      good[k] = 1;
      anchorNs[k] = (d / PCR_HZ) * 1e9; // segment length for now
      goodNs += anchorNs[k];
      goodCells += cells;
    }
    let avgCell: number;
    if (goodCells > 0 && goodNs > 0) avgCell = goodNs / goodCells;
    else if (bitrateCell !== undefined) avgCell = bitrateCell;
    else throw mediaError(this.file, this.cellOffsets[pcrCells[0]], 'no two consecutive PCRs are usable: give the session a bitrate');

    let t = 0;
    for (let k = 1; k < m; k++) {
      const cells = pcrCells[k] - pcrCells[k - 1];
      if (good[k]) t += anchorNs[k];
      else {
        this.counters.pcrDiscontinuities++;
        this.problem(`byte offset ${this.cellOffsets[pcrCells[k]]}: PCR discontinuity, segment timed at the average rate`);
        t += cells * avgCell;
      }
      anchorNs[k] = t;
    }
    anchorNs[0] = 0;
    // interpolate between anchors, extrapolate at the ends with the nearest segment's rate
    const rate = (k: number): number => {
      const cells = pcrCells[k] - pcrCells[k - 1];
      return cells > 0 ? (anchorNs[k] - anchorNs[k - 1]) / cells : avgCell;
    };
    const firstRate = rate(1);
    const lastRate = rate(m - 1);
    for (let i = 0; i < pcrCells[0]; i++) times[i] = -(pcrCells[0] - i) * firstRate;
    for (let k = 1; k < m; k++) {
      const a = pcrCells[k - 1];
      const b = pcrCells[k];
      const r = rate(k);
      for (let i = a; i < b; i++) times[i] = anchorNs[k - 1] + (i - a) * r;
    }
    for (let i = pcrCells[m - 1]; i < n; i++) times[i] = anchorNs[m - 1] + (i - pcrCells[m - 1]) * lastRate;
    const shift = times[0];
    if (shift !== 0) for (let i = 0; i < n; i++) times[i] -= shift;
    const tail = lastRate > 0 ? lastRate : avgCell;
    return { times, duration: times[n - 1] + tail, pcrPid, pacedBy: 'pcr' };
  }
}
