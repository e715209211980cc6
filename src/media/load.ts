// SPDX-License-Identifier: MIT
// Reading and parsing media files, once per thread: the sessions of one
// worker that play the same file share one parsed copy (the file's bytes are
// read whole; a file above MAX_MEDIA_BYTES is refused).
import { readFileSync, statSync } from 'node:fs';
import { invalidArg } from '../errors';
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
  if (!MEDIA_FORMATS.includes(format)) throw invalidArg(`format: "${String(format)}" is not one of mpegts, rtp, pcap`);
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    throw mediaError(file, 0, `cannot read the file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (!st.isFile()) throw mediaError(file, 0, 'not a regular file');
  if (st.size > MAX_MEDIA_BYTES) throw mediaError(file, 0, `${st.size} bytes exceed the limit of ${MAX_MEDIA_BYTES} bytes`);
  const kind = format === 'pcap' ? 'pcap' : 'ts';
  const key = `${kind}|${opts.pace ?? 'pcr'}|${opts.bitrate ?? ''}|${file}`;
  const hit = cache.get(key);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.media;
  let buf: Uint8Array;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw mediaError(file, 0, `cannot read the file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const media = kind === 'pcap' ? new PcapFile(file, buf) : new TsFile(file, buf, opts);
  cache.set(key, { mtimeMs: st.mtimeMs, size: st.size, media });
  return media;
}

/** Forget every parsed file (tests, or a worker that stops its last session). */
export function clearMediaCache(): void {
  cache.clear();
}
