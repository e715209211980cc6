// SPDX-License-Identifier: MIT
// The sessions of one worker and their pacing: every tick gathers the
// packets of ALL the worker's sessions that are due before now + lead into
// ONE aggregate and submits it through the worker's lane. Payloads are
// written straight into pool slots (lane.bytes at payloadOffset): no copy
// through another thread, no packet object, no socket.
//
// Timing: a session's packet i leaves at startAt + its media time (PCR,
// bitrate or capture time; loops continue from the pass's duration). The
// engine holds each packet until its time; the worker only has to stay one
// window ahead. When the worker falls behind by more than the lateness limit
// (a long pause), the session's schedule moves later by the gap (counted in
// `rebases`) instead of sending a burst the engine would drop as late.
import { Aggregate, returnSlot, takeSlot, type AggregateLane } from '../aggregate/aggregate';
import { ReflectorError, invalidArg } from '../errors';
import { checkName } from '../names';
import { loadMedia, MEDIA_FORMATS, releaseMedia, retainMedia, type Media } from '../media/load';
import { TsFile } from '../media/mpegts';
import { rtpState } from '../media/rtp';
import { SessionMedia } from '../media/session-media';
import type { Destination } from '../region/lane';
import { TX_HORIZON_MS } from '../region/layout';
import type { SessionCounters, SessionInfo, StartRequest } from './protocol';

/** What the pump needs of a lane (src/region/lane.ts Lane has it). */
export interface PumpLane extends AggregateLane {
  readonly index: number;
  readonly destFirst: number;
  readonly destCount: number;
  readonly payloadSize: number;
  readonly bytes: Uint8Array;
  payloadOffset(slot: number): number;
  freeSlots(): number;
  writeDest(index: number, d: Destination): void;
}

export interface PumpOptions {
  /** how far ahead of now packets are handed to the engine (default 40 ms = two 20 ms windows) */
  leadMs?: number;
  /** first packet of a session without startAt: now + this (default 50 ms) */
  startDelayMs?: number;
  /** a worker later than this moves the session's schedule (default 20 ms) */
  lateLimitMs?: number;
  /** a freed destination entry is reused only after this long: descriptors naming it may be in flight (default 2 s) */
  destQuarantineMs?: number;
  /** media_root: files are opened only when their real path is inside it */
  mediaRoot?: string;
  now?: () => number;
}

interface Session {
  info: SessionInfo;
  media: SessionMedia;
  startAt: number;
  counters: SessionCounters;
  file: Media;
}

export interface TickResult {
  submitted: number;
  ended: Array<{ name: string; counters: SessionCounters }>;
  failed: Array<{ name: string; error: ReflectorError; counters: SessionCounters }>;
  /** the lane refused the aggregate (part of it): those packets were not sent */
  error?: ReflectorError;
}


export class SessionPump {
  readonly lane: PumpLane;
  private readonly sessions = new Map<string, Session>();
  private order: Session[] = [];
  private rr = 0;
  private readonly leadNs: number;
  private readonly startDelayNs: number;
  private readonly lateLimitNs: number;
  private readonly quarantineNs: number;
  private readonly now: () => number;
  private readonly freeDests: number[] = [];
  private readonly quarantined: Array<{ dest: number; until: number }> = [];
  private readonly mediaRoot: string | undefined;

  constructor(lane: PumpLane, opts: PumpOptions = {}) {
    this.mediaRoot = opts.mediaRoot;
    this.lane = lane;
    this.leadNs = (opts.leadMs ?? 40) * 1e6;
    this.startDelayNs = (opts.startDelayMs ?? 50) * 1e6;
    this.lateLimitNs = (opts.lateLimitMs ?? 20) * 1e6;
    this.quarantineNs = (opts.destQuarantineMs ?? 2000) * 1e6;
    this.now = opts.now ?? ((): number => Number(process.hrtime.bigint()));
    for (let i = lane.destCount - 1; i >= 0; i--) this.freeDests.push(lane.destFirst + i);
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Destination entries free now or after their quarantine. */
  get capacity(): number {
    return this.freeDests.length + this.quarantined.length;
  }

  /** Open the file, take a destination entry, schedule the first packet. Throws ERR_MEDIA / ERR_INVALID_ARG. */
  start(req: StartRequest): SessionInfo {
    checkName('session', req.name, 'session name');
    if (this.sessions.has(req.name)) throw invalidArg(`session "${req.name}" is already running`);
    if (!MEDIA_FORMATS.includes(req.format)) throw invalidArg(`session "${req.name}": format "${String(req.format)}" is not one of mpegts, rtp, pcap`);
    if (req.format === 'pcap' && req.pace !== undefined) throw invalidArg(`session "${req.name}": pace applies to mpegts and rtp, not pcap`);
    const file = loadMedia(req.file, req.format, { bitrate: req.bitrate, pace: req.pace, root: this.mediaRoot });
    const media = new SessionMedia(file, req.format, req.loop, req.format === 'rtp' ? rtpState(req.ssrc) : undefined);
    const resumed = req.resume !== undefined && media.seek(req.resume);
    this.releaseQuarantine(this.now());
    const dest = this.freeDests.pop();
    if (dest === undefined) {
      throw new ReflectorError('ERR_INVALID_ARG', `lane ${this.lane.index}: all ${this.lane.destCount} destination entries are in use (region destsPerLane)`);
    }
    try {
      this.lane.writeDest(dest, req.dest);
    } catch (e) {
      this.freeDests.push(dest);
      throw e;
    }
    // a resumed session's next packet, not its first, leaves at the start time
    const startAt = (req.startAt ?? this.now() + this.startDelayNs) - (resumed ? media.nextTime() : 0);
    const isTs = file instanceof TsFile;
    const info: SessionInfo = {
      name: req.name,
      stream: req.stream,
      dest,
      lane: this.lane.index,
      file: req.file,
      format: req.format,
      loop: req.loop,
      startAt,
      durationNs: file.durationNs,
      packetsPerPass: isTs ? file.datagrams : file.packets,
      pacedBy: isTs ? file.pacedBy : 'capture',
      problems: isTs ? [...file.problems] : [],
    };
    if (req.resume !== undefined && !resumed) info.problems.push(`resume at packet ${req.resume.packet} of pass ${req.resume.pass} is outside the file: started from the beginning`);
    const s: Session = {
      info,
      media,
      startAt,
      file,
      counters: { packets: 0, bytes: 0, passes: 0, rebases: 0, slotWaits: 0, oversize: 0, media: { ...file.counters }, position: media.position },
    };
    this.sessions.set(req.name, s);
    this.order.push(s);
    retainMedia(file);
    return info;
  }

  /** Stop a session; packets already handed over (up to leadMs ahead) still leave. */
  stop(name: string): SessionCounters {
    const s = this.sessions.get(name);
    if (!s) throw invalidArg(`session "${name}" is not running in lane ${this.lane.index}`);
    this.remove(s);
    return this.snapshot(s);
  }

  stats(): Record<string, SessionCounters> {
    const out: Record<string, SessionCounters> = {};
    for (const [name, s] of this.sessions) out[name] = this.snapshot(s);
    return out;
  }

  info(name: string): SessionInfo | undefined {
    return this.sessions.get(name)?.info;
  }

  /** Gather the packets due before now + lead of every session into ONE aggregate and submit it. */
  tick(): TickResult {
    const result: TickResult = { submitted: 0, ended: [], failed: [] };
    const n = this.order.length;
    if (n === 0) return result;
    const now = this.now();
    this.releaseQuarantine(now);
    const horizon = now + this.leadNs;
    const lane = this.lane;
    const agg = new Aggregate(lane, { lateLimitMs: 1e3, horizonMs: TX_HORIZON_MS, now: () => BigInt(Math.round(now)) });
    let free = lane.freeSlots();
    const bytes = lane.bytes;
    const cap = lane.payloadSize;
    // start with a different session each tick so a slot shortage is shared fairly
    const first = this.rr++ % n;
    const order = this.order; // remove() replaces this.order; this walk keeps the tick's list
    let pending = -1; // a slot taken and not yet in the aggregate
    // reported after the submission, with the counts of what it accepted
    const ended: Session[] = [];
    const failed: Array<[Session, ReflectorError]> = [];
    for (let k = 0; k < n; k++) {
      const s = order[(first + k) % n];
      try {
        let t = s.startAt + s.media.nextTime();
        if (t < now - this.lateLimitNs) {
          s.startAt += now - t;
          s.counters.rebases++;
          t = now;
        }
        while (t < horizon) {
          const len = s.media.nextLength();
          if (len > cap) {
            s.media.skip();
            s.counters.oversize++;
          } else {
            if (free === 0) {
              s.counters.slotWaits++;
              break;
            }
            const slot = (pending = takeSlot(lane, 0));
            free--;
            const w = s.media.writeNext(bytes, lane.payloadOffset(slot));
            agg.addAt(slot, w, s.info.dest, s.info.stream, t);
            pending = -1;
            s.counters.packets++;
            s.counters.bytes += w;
          }
          t = s.startAt + s.media.nextTime();
        }
        if (s.media.done) {
          this.remove(s);
          ended.push(s);
        }
      } catch (e) {
        if (pending >= 0) returnSlot(lane, pending);
        pending = -1;
        this.remove(s);
        const err = e instanceof ReflectorError ? e : new ReflectorError('ERR_MEDIA', `session "${s.info.name}": ${(e as Error).message}`);
        failed.push([s, err]);
      }
    }
    try {
      result.submitted = agg.submit();
    } catch (e) {
      // the ring refused the rest (engine stopped or far behind): those
      // packets were never handed over, so they are not counted as such,
      // and their slots go back to the lane
      const byStream = new Map(order.map((x) => [x.info.stream, x]));
      agg.forEachPending((stream, len) => {
        const x = byStream.get(stream);
        if (x) {
          x.counters.packets--;
          x.counters.bytes -= len;
        }
      });
      agg.abort();
      // the sessions that ended or failed in this tick are still reported
      result.error = e instanceof ReflectorError ? e : new ReflectorError('ERR_RING_TIMEOUT', (e as Error).message);
    }
    for (const x of ended) result.ended.push({ name: x.info.name, counters: this.snapshot(x) });
    for (const [x, error] of failed) result.failed.push({ name: x.info.name, error, counters: this.snapshot(x) });
    return result;
  }

  private remove(s: Session): void {
    releaseMedia(s.file);
    this.sessions.delete(s.info.name);
    this.order = this.order.filter((x) => x !== s);
    this.quarantined.push({ dest: s.info.dest, until: this.now() + this.quarantineNs });
  }

  private releaseQuarantine(now: number): void {
    while (this.quarantined.length > 0 && this.quarantined[0].until <= now) {
      this.freeDests.push((this.quarantined.shift() as { dest: number }).dest);
    }
  }

  private snapshot(s: Session): SessionCounters {
    return { ...s.counters, passes: s.media.passes, media: { ...s.counters.media }, position: s.media.position };
  }
}
