// SPDX-License-Identifier: MIT
// Test media made with ffmpeg in a temp dir, and the saving media client
// (test/fixtures/media/save-receiver) started in a testbed host.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { followFixture } from '../helpers/fixture-process';
import type { Testbed } from '../helpers/testbed';
import type { SaveResult } from '../fixtures/media/save-receiver';

export type { SaveResult };

const SAVE_JS = join(__dirname, '..', 'fixtures', 'media', 'save-receiver.js');

/** Why ffmpeg-based tests cannot run, or null. */
export function ffmpegMissing(): string | null {
  for (const tool of ['ffmpeg', 'ffprobe']) {
    try {
      execFileSync(tool, ['-version'], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (Debian package ffmpeg)`;
    }
  }
  return null;
}

/** A small MPEG-2 video in MPEG-TS (PCR-paced), `seconds` long, 300 kbit/s. */
export function makeTs(dir: string, name: string, seconds: number): string {
  const out = join(dir, name);
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc=size=160x120:rate=25`, '-t', String(seconds), '-c:v', 'mpeg2video', '-b:v', '300k', '-f', 'mpegts', out], {
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 30_000,
  });
  return out;
}

export interface Saving {
  result: Promise<SaveResult>;
}

export async function startSaver(tb: Testbed, host: string, bind: string, out: string, opts: { rtp?: boolean; timeoutMs: number; idleMs: number }): Promise<Saving> {
  const argv = [process.execPath, SAVE_JS, '--bind', bind, '--out', out, '--timeout-ms', String(opts.timeoutMs), '--idle-ms', String(opts.idleMs)];
  if (opts.rtp) argv.push('--rtp');
  const f = followFixture<SaveResult>(tb.spawn(host, argv), `save-receiver in ${host}`);
  await f.ready;
  return { result: f.result };
}
