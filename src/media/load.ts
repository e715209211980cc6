// SPDX-License-Identifier: MIT
// Reading and parsing media files, once per thread: the sessions of one
// worker that play the same file share one parsed copy (the file's bytes are
// read whole; a file above MAX_MEDIA_BYTES is refused). A copy stays cached
// while a session holds it (retainMedia / releaseMedia); copies nobody holds
// are evicted by the next load, so a long-running worker keeps only what it
// plays.
//
// With `root` (media_root), the file is opened first and the path the kernel
// actually opened (/proc/self/fd/N) must be inside the root: a symbolic link
// swapped in after the control API checked the name is still refused. FIFOs
// and devices are opened non-blocking and refused as "not a regular file".
import { closeSync, constants, fstatSync, openSync, readFileSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import { open, readlink, realpath, stat } from 'node:fs/promises';
import { invalidArg, type ReflectorError } from '../errors';
import { mediaError } from './media-error';
import { TsFile, type TsOptions } from './mpegts';
import { PcapFile } from './pcap';
import { isInside } from './root';

export type MediaFormat = 'mpegts' | 'rtp' | 'pcap';
export const MEDIA_FORMATS: readonly MediaFormat[] = ['mpegts', 'rtp', 'pcap'];
export const MAX_MEDIA_BYTES = 1 << 30;

export interface LoadOptions extends TsOptions {
  /** media_root: refuse a file whose real path is not inside this folder */
  root?: string;
}

export type Media = TsFile | PcapFile;

interface Entry {
  mtimeMs: number;
  size: number;
  media: Media;
  refs: number;
}

const cache = new Map<string, Entry>();
const keys = new Map<Media, string>();
// libuv adds O_CLOEXEC itself
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

/** The parsed file (cached while its size and mtime stay the same). Throws ERR_MEDIA naming the file. */
export function loadMedia(file: string, format: MediaFormat, opts: LoadOptions = {}): Media {
  const key = cacheKey(file, format, opts);
  const st = checkStat(file, () => statSync(file));
  const hit = cache.get(key);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.media;
  let buf: Uint8Array;
  let fd = -1;
  try {
    fd = openSync(file, OPEN_FLAGS);
    const realRoot = opts.root === undefined ? undefined : realpathSync(opts.root);
    if (realRoot !== undefined) confine(file, opts.root as string, realRoot, readlinkSync(`/proc/self/fd/${fd}`));
    checkStat(file, () => fstatSync(fd));
    buf = readFileSync(fd);
  } catch (e) {
    throw asMediaError(file, e);
  } finally {
    if (fd >= 0) closeSync(fd);
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
    const h = await open(file, OPEN_FLAGS);
    try {
      if (opts.root !== undefined) confine(file, opts.root, await realpath(opts.root), await readlink(`/proc/self/fd/${h.fd}`));
      const own = await h.stat();
      checkStat(file, () => own);
      buf = await h.readFile();
    } finally {
      await h.close();
    }
  } catch (e) {
    throw asMediaError(file, e);
  }
  return parse(key, file, format, buf, st, opts);
}

/** A session plays `media`: keep it cached until releaseMedia(). */
export function retainMedia(media: Media): void {
  const key = keys.get(media);
  const e = key === undefined ? undefined : cache.get(key);
  if (e && e.media === media) e.refs++;
}

/** A session stopped playing `media`; the last one out evicts it. */
export function releaseMedia(media: Media): void {
  const key = keys.get(media);
  const e = key === undefined ? undefined : cache.get(key);
  if (!e || e.media !== media) return;
  if (--e.refs <= 0) evict(key as string);
}

/** Parsed files in the cache (tests). */
export function cachedMediaCount(): number {
  return cache.size;
}

function cacheKey(file: string, format: MediaFormat, opts: LoadOptions): string {
  if (!MEDIA_FORMATS.includes(format)) throw invalidArg(`format: "${String(format)}" is not one of mpegts, rtp, pcap`);
  return `${format === 'pcap' ? 'pcap' : 'ts'}|${opts.pace ?? 'pcr'}|${opts.bitrate ?? ''}|${opts.root ?? ''}|${file}`;
}

function confine(file: string, root: string, realRoot: string, opened: string): void {
  if (!isInside(realRoot, opened)) throw mediaError(file, 0, `outside media_root ${root} once symbolic links are resolved`);
}

function checkStat(file: string, get: () => Stats): Stats {
  let st: Stats;
  try {
    st = get();
  } catch (e) {
    throw unreadable(file, e);
  }
  if (!st.isFile()) throw mediaError(file, 0, 'not a regular file');
  if (st.size > MAX_MEDIA_BYTES) throw mediaError(file, 0, `larger than the limit of ${MAX_MEDIA_BYTES} bytes`);
  return st;
}

function asMediaError(file: string, e: unknown): ReflectorError {
  return e instanceof Error && (e as { code?: unknown }).code === 'ERR_MEDIA' ? (e as ReflectorError) : unreadable(file, e);
}

function unreadable(file: string, e: unknown): ReflectorError {
  return mediaError(file, 0, `cannot read the file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
}

function evict(key: string): void {
  const e = cache.get(key);
  if (!e) return;
  cache.delete(key);
  keys.delete(e.media);
}

function parse(key: string, file: string, format: MediaFormat, buf: Uint8Array, st: Stats, opts: LoadOptions): Media {
  const media = format === 'pcap' ? new PcapFile(file, buf) : new TsFile(file, buf, opts);
  // copies nobody plays go now: the cache holds what sessions hold, plus this one
  for (const [k, e] of cache) if (e.refs <= 0 && k !== key) evict(k);
  const old = cache.get(key);
  // a changed file: sessions still playing the old copy keep their object,
  // and their releaseMedia() no longer touches the cache
  if (old) keys.delete(old.media);
  cache.set(key, { mtimeMs: st.mtimeMs, size: st.size, media, refs: 0 });
  keys.set(media, key);
  return media;
}

/** Forget every parsed file (tests, or a worker that stops its last session). */
export function clearMediaCache(): void {
  cache.clear();
  keys.clear();
}
