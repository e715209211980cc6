// SPDX-License-Identifier: MIT
// Reading and parsing media files, once per thread: the sessions of one
// worker that play the same file share one parsed copy (the file's bytes are
// read whole; a file above MAX_MEDIA_BYTES is refused).
import { readFileSync, statSync, type Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { invalidArg, type ReflectorError } from '../errors';
import { mediaError } from './media-error';
import { TsFile, type TsOptions } from './mpegts';
import { PcapFile } from './pcap';

export type MediaFormat = 'mpegts' | 'rtp' | 'pcap';
export const MEDIA_FORMATS: readonly MediaFormat[] = ['mpegts', 'rtp', 'pcap'];
export const MAX_MEDIA_BYTES = 1 << 30;

export interface LoadOptions extends TsOptions {}

export type Media = TsFile | PcapFile;

const cache = new Map<string, { mtimeMs: number; size: number; media: Media }>();

/** The parsed file (cached while its size and mtime stay the same). Throws ERR_MEDIA naming the file. */
export function loadMedia(file: string, format: MediaFormat, opts: LoadOptions = {}): Media {
  const key = cacheKey(file, format, opts);
  const st = checkStat(file, () => statSync(file));
  const hit = cache.get(key);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.media;
  let buf: Uint8Array;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw unreadable(file, e);
  }
  return parse(key, file, format, buf, st, opts);
}

/**
 * loadMedia() with the file read off the thread (libuv's pool): a worker
 * serving other sessions keeps its schedule while a large file is read.
 * Parsing still runs here (one pass over the cells, ~10 ms per 100 MB).
 */
export async function loadMediaAsync(file: string, format: MediaFormat, opts: LoadOptions = {}): Promise<Media> {
  const key = cacheKey(file, format, opts);
  let raw: Stats;
  try {
    raw = await stat(file);
  } catch (e) {
    throw unreadable(file, e);
  }
  const st = checkStat(file, () => raw);
  const hit = cache.get(key);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.media;
  let buf: Uint8Array;
  try {
    buf = await readFile(file);
  } catch (e) {
    throw unreadable(file, e);
  }
  return parse(key, file, format, buf, st, opts);
}

function cacheKey(file: string, format: MediaFormat, opts: LoadOptions): string {
  if (!MEDIA_FORMATS.includes(format)) throw invalidArg(`format: "${String(format)}" is not one of mpegts, rtp, pcap`);
  return `${format === 'pcap' ? 'pcap' : 'ts'}|${opts.pace ?? 'pcr'}|${opts.bitrate ?? ''}|${file}`;
}

function checkStat(file: string, get: () => Stats): Stats {
  let st: Stats;
  try {
    st = get();
  } catch (e) {
    throw unreadable(file, e);
  }
  if (!st.isFile()) throw mediaError(file, 0, 'not a regular file');
  if (st.size > MAX_MEDIA_BYTES) throw mediaError(file, 0, `${st.size} bytes exceed the limit of ${MAX_MEDIA_BYTES} bytes`);
  return st;
}

function unreadable(file: string, e: unknown): ReflectorError {
  return mediaError(file, 0, `cannot read the file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
}

function parse(key: string, file: string, format: MediaFormat, buf: Uint8Array, st: Stats, opts: LoadOptions): Media {
  const media = format === 'pcap' ? new PcapFile(file, buf) : new TsFile(file, buf, opts);
  cache.set(key, { mtimeMs: st.mtimeMs, size: st.size, media });
  return media;
}

/** Forget every parsed file (tests, or a worker that stops its last session). */
export function clearMediaCache(): void {
  cache.clear();
}
