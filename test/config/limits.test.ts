// SPDX-License-Identifier: MIT
// check-config refuses everything `serve` would, with the same message: the
// one name validator (src/names.ts), the engine's table and region limits,
// any-source prefixes, zone ids, media files outside media_root (also
// through a symbolic link). Each case also goes to the piece that would
// refuse it at run time, so the validator cannot drift from it.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkConfig } from '../../src/cli/check-config';
import { ConfigError, formatProblem, loadConfig } from '../../src/config/validate';
import { Engine } from '../../src/engine/engine';
import { checkName } from '../../src/names';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-limits-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const media = path.join(dir, 'media');
fs.mkdirSync(media);
fs.writeFileSync(path.join(media, 'clip.ts'), 'x');
const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-outside-'));
t.teardown(() => fs.rmSync(outside, { recursive: true, force: true }));
fs.writeFileSync(path.join(outside, 'secret.ts'), 'y');
fs.symlinkSync(path.join(outside, 'secret.ts'), path.join(media, 'link.ts'));

const relay = (over: Record<string, string> = {}): string => {
  const f = { name: 'cam', listen: '127.0.0.1:5000', sources: '[127.0.0.1/32]', subscribers: '[127.0.0.1:6000]', ...over };
  return `relays:\n  - name: ${f.name}\n    listen: "${f.listen}"\n    sources: ${f.sources}\n    subscribers: ${f.subscribers}\n${over.extra ?? ''}`;
};
const list = (n: number, f: (i: number) => string): string => `[${Array.from({ length: n }, (_, i) => f(i)).join(', ')}]`;
const manyRelays = (n: number): string =>
  `relays:\n${Array.from({ length: n }, (_, i) => `  - name: r${i}\n    listen: 127.0.0.1:${5000 + i}\n    sources: [127.0.0.1/32]\n`).join('')}`;

interface Case {
  name: string;
  yaml: string;
  path: string;
  message: RegExp;
  /** the piece that refuses the same value at run time */
  runtime?: () => void;
}

const cases: Case[] = [
  {
    name: 'interface name over 15 characters', yaml: `engine:\n  interface: ${'e'.repeat(16)}\n`, path: 'engine.interface', message: /is 16 characters, longer than 15/,
    runtime: () => new Engine({ interface: 'e'.repeat(16) }),
  },
  {
    name: 'interface name with a shell character', yaml: 'engine:\n  interface: "v$(:>x)"\n', path: 'engine.interface', message: /"v\$\(:>x\)" is not a valid interface name/,
    runtime: () => new Engine({ interface: 'v$(:>x)' }),
  },
  {
    name: 'namespace name that walks out of /run/netns', yaml: 'engine:\n  netns: ../etc\n', path: 'engine.netns', message: /"\.\.\/etc" is not a valid netns name/,
    runtime: () => new Engine({ interface: 'lo', netns: '../etc' }),
  },
  {
    name: 'relay name over 32 bytes', yaml: relay({ name: 'r'.repeat(33) }), path: 'relays[0].name', message: /is 33 characters, longer than 32/,
    runtime: () => checkName('relay', 'r'.repeat(33), 'relay.name'),
  },
  { name: 'relay name with a space', yaml: relay({ name: '"a b"' }), path: 'relays[0].name', message: /"a b" is not a valid relay name/ },
  { name: 'session name over 128', yaml: `sessions:\n  - name: ${'s'.repeat(129)}\n    file: media/clip.ts\n    to: 127.0.0.1:7000\n`, path: 'sessions[0].name', message: /is 129 characters, longer than 128/ },
  { name: 'more than 64 relays', yaml: manyRelays(65), path: 'relays', message: /lists 65 items, at most 64 are accepted/ },
  { name: 'more than 16 source prefixes', yaml: relay({ sources: list(17, (i) => `127.0.${i}.0/24`) }), path: 'relays[0].sources', message: /lists 17 items, at most 16 are accepted/ },
  {
    name: 'more outputs than the engine holds',
    yaml: `engine:\n  region:\n    max_outputs: 4096\n${relay({ subscribers: list(1025, (i) => `127.0.${i >> 8}.${i & 255}:6000`) })}`,
    path: 'relays', message: /1025 subscribers in all, the engine holds at most 1024 outputs/,
  },
  { name: 'more relays and outputs than max_outputs', yaml: `engine:\n  region:\n    max_outputs: 2\n${relay({ subscribers: '[127.0.0.1:6000, 127.0.0.1:6001]' })}`, path: 'engine.region.max_outputs', message: /1 relays and 2 subscribers need 3 output counters, max_outputs is 2/ },
  { name: 'slots_per_lane above the engine\'s range', yaml: 'engine:\n  region:\n    slots_per_lane: 131072\n', path: 'engine.region.slots_per_lane', message: /131072 is outside 16\.\.65536/ },
  { name: 'policy_entries above the engine\'s range', yaml: 'engine:\n  region:\n    policy_entries: 8192\n', path: 'engine.region.policy_entries', message: /8192 is outside 16\.\.4096/ },
  { name: 'a region larger than 2 GiB', yaml: 'engine:\n  workers: 63\n  region:\n    slots_per_lane: 65536\n    slot_size: 16384\n', path: 'engine.region', message: /the region needs \d+ bytes, more than the 2147483648-byte limit/ },
  { name: 'any-source without allow_any_source', yaml: relay({ sources: '[0.0.0.0/0]' }), path: 'relays[0].sources[0]', message: /0\.0\.0\.0\/0 lets any host send through this relay.*allow_any_source: true/ },
  { name: 'IPv6 any-source', yaml: relay({ listen: '[::1]:5000', sources: '["::/0"]', subscribers: '["[::1]:6000"]' }), path: 'relays[0].sources[0]', message: /::\/0 lets any host send/ },
  { name: 'a zone id', yaml: relay({ listen: '[fe80::1%eth0]:5000' }), path: 'relays[0].listen', message: /has a zone id \("%eth0"\)/ },
  { name: 'max_pps out of range', yaml: relay({ extra: '    max_pps: 4294967296\n' }), path: 'relays[0].max_pps', message: /4294967296 is outside 0\.\.4294967295/ },
  { name: 'negative max_bps', yaml: relay({ extra: '    max_bps: -8\n' }), path: 'relays[0].max_bps', message: /-8 is outside 0\.\./ },
  { name: 'media file outside media_root', yaml: `media_root: media\nsessions:\n  - name: m\n    file: ${path.join(outside, 'secret.ts')}\n    to: 127.0.0.1:7000\n`, path: 'sessions[0].file', message: /is outside media_root .*media$/ },
  { name: 'media file out of media_root through ../', yaml: `media_root: media\nsessions:\n  - name: m\n    file: media/../../${path.basename(outside)}/secret.ts\n    to: 127.0.0.1:7000\n`, path: 'sessions[0].file', message: /is outside media_root/ },
  { name: 'media file out of media_root through a symbolic link', yaml: 'media_root: media\nsessions:\n  - name: m\n    file: media/link.ts\n    to: 127.0.0.1:7000\n', path: 'sessions[0].file', message: /is outside media_root .* once symbolic links are resolved/ },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const file = path.join(dir, `${c.name.replace(/\W+/g, '_')}.yaml`);
    fs.writeFileSync(file, c.yaml);
    let err = '';
    const code = checkConfig(file, { out: () => undefined, err: (s) => (err += s) }, true);
    t.equal(code, 1, 'check-config exits 1');
    const line = err.split('\n').find((l) => l.includes(`: ${c.path}: `));
    t.match(line, c.message, `check-config names ${c.path}`);
    // what `serve` reads the file with
    try {
      loadConfig(file);
      t.fail('serve loads it');
    } catch (e) {
      t.ok(e instanceof ConfigError, 'serve refuses it as a config error');
      const serveLine = (e as ConfigError).problems.map(formatProblem).find((l) => l.includes(`: ${c.path}: `));
      t.equal(serveLine?.slice(serveLine.indexOf(`: ${c.path}: `)), line?.slice(line.indexOf(`: ${c.path}: `)), 'with the same message');
    }
    if (c.runtime) t.throws(c.runtime, { code: 'ERR_INVALID_ARG', message: c.message }, 'the engine refuses the same value with the same words');
  });
}

t.test('a media file inside media_root is accepted, relative or absolute', async (t) => {
  const file = path.join(dir, 'ok.yaml');
  fs.writeFileSync(file, `media_root: media\nsessions:\n  - name: a\n    file: media/clip.ts\n    to: 127.0.0.1:7000\n  - name: b\n    file: ${path.join(media, 'clip.ts')}\n    to: 127.0.0.1:7001\n`);
  const c = loadConfig(file);
  t.equal(c.mediaRoot, media);
  t.equal(c.sessions.length, 2);
  fs.writeFileSync(file, 'sessions:\n  - name: a\n    file: media/clip.ts\n    to: 127.0.0.1:7000\n');
  t.equal(loadConfig(file).mediaRoot, dir, 'default: the config file\'s folder');
});
