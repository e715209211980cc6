// SPDX-License-Identifier: MIT
// The start check of a fresh machine: `reflector serve` on the shipped
// config/reflector.yaml with nft, clang, ffmpeg, tcpdump and promtool hidden
// from PATH (a folder of symlinks to everything else on it). A fresh machine
// has none of them; the server must become ready, relay and run its session
// without them, so the run path cannot come to need one again unnoticed.
// It runs in a test namespace with a tmpfs on /run/reflector
// (test/fixtures/fresh-start.ts): the shipped ports and socket stay free.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { Testbed } from '../helpers/testbed';
import { serverUnavailable, childEnv, metricValue } from './fixtures/harness';
import type { FreshStartResult } from '../fixtures/fresh-start';

/** What a fresh machine lacks and the run path must not need. */
export const HIDDEN = ['nft', 'clang', 'ffmpeg', 'ffprobe', 'tcpdump', 'promtool'];
const hiddenName = (n: string): boolean => HIDDEN.includes(n) || /^clang(-\d+)?$|^clang\+\+/.test(n) || /^nft(ables)?/.test(n);

/** A folder of symlinks to every program on PATH except the hidden ones (first match wins, as PATH does). */
function pathWithout(dir: string): { hidden: string[]; linked: number } {
  const hidden = new Set<string>();
  let linked = 0;
  for (const d of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) {
      if (hiddenName(n)) {
        hidden.add(`${d}/${n}`);
        continue;
      }
      const to = join(dir, n);
      if (existsSync(to)) continue;
      try {
        if (!statSync(join(d, n)).isFile()) continue;
      } catch {
        continue;
      }
      symlinkSync(join(d, n), to);
      linked++;
    }
  }
  return { hidden: [...hidden], linked };
}

const why = serverUnavailable({ netns: true });
if (why) {
  process.stderr.write(`# SKIP start check without nft/clang/ffmpeg/tcpdump/promtool: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('reflector serve on the shipped config with nft, clang, ffmpeg, tcpdump and promtool hidden from PATH', { timeout: 120000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'reflector-freshpath-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const { hidden, linked } = pathWithout(dir);
    t.comment(`PATH of ${linked} programs; hidden: ${hidden.join(' ') || '(none installed here)'}`);
    for (const n of ['nft', 'clang', 'ffmpeg', 'tcpdump', 'promtool']) t.notOk(existsSync(join(dir, n)), `${n} is not on the test PATH`);
    t.ok(existsSync(join(dir, 'ip')), 'ip (iproute2, on a fresh machine) is');

    const tb = await Testbed.create(t, { hosts: ['fresh'] });
    const { stdout } = await promisify(execFile)('ip', ['netns', 'exec', tb.ns('fresh'), process.execPath, join(__dirname, '..', 'fixtures', 'fresh-start.js'), '--path', dir], {
      env: childEnv(),
      encoding: 'utf8',
      timeout: 100000,
    });
    const r = JSON.parse(stdout.trim().split('\n').pop()!) as FreshStartResult;
    t.same(r.enoent, [], 'the server looked up no program that is missing');
    t.ok(r.ready, `the server becomes ready${r.failure ? `; it did not:\n${r.failure}` : ''}`);
    if (!r.ready) return;
    t.equal(r.readyz, 200, '/readyz 200');
    const m = r.metrics ?? '';
    t.equal(metricValue(m, 'reflector_relay_subscriber_packets_total{relay="camera1",subscriber="127.0.0.1:6000"}'), 50, 'relay camera1 sent all 50 to :6000');
    t.equal(r.received['6000'], 50, 'subscriber 127.0.0.1:6000 received all 50');
    t.equal(r.received['6001'], 50, 'subscriber 127.0.0.1:6001 received all 50');
    t.ok((metricValue(m, 'reflector_session_packets_total{session="movie1"}') ?? 0) > 0, 'session movie1 sends');
    t.ok(r.received['7000'] > 0, `the session's receiver got packets (${r.received['7000']})`);
    t.equal(r.exitCode, 0, 'SIGTERM: exit 0');
  });
}
