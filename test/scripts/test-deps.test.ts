// SPDX-License-Identifier: MIT
// scripts/test-deps.sh against a fake dpkg-query and apt-get on PATH (the
// real ones untouched): as root it installs exactly what is missing and says
// so; not root it names the missing packages and exits 1; nothing missing, 0.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..', '..');
const SCRIPT = join(ROOT, 'scripts', 'test-deps.sh');
const isRoot = process.getuid?.() === 0;
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/** A folder with dpkg-query (reports `missing` as not installed), apt-get and systemctl that log their arguments. */
function shims(t: { teardown(fn: () => void): void }, missing: string[]): { dir: string; log: string } {
  const dir = mkdtempSync(join(tmpdir(), 'reflector-deps-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'calls.log');
  const sh = (name: string, body: string): void => {
    writeFileSync(join(dir, name), `#!/bin/bash\n${body}\n`);
    chmodSync(join(dir, name), 0o755);
  };
  sh('dpkg-query', `pkg="\${@: -1}"; case " ${missing.join(' ')} " in *" $pkg "*) exit 1;; esac; printf 'install ok installed'`);
  sh('apt-get', `echo "apt-get $*" >> ${log}`);
  sh('systemctl', 'exit 3');
  writeFileSync(log, '');
  chmodSync(dir, 0o755);
  chmodSync(log, 0o666);
  return { dir, log };
}

function run(dir: string, asNobody: boolean, extra: NodeJS.ProcessEnv = {}): { status: number | null; out: string; err: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dir}:/usr/sbin:/usr/bin:/sbin:/bin` };
  delete env.REFLECTOR_TEST_DEPS;
  Object.assign(env, extra);
  const argv = asNobody ? [setpriv as string, ['--reuid=65534', '--regid=65534', '--clear-groups', '/bin/bash', SCRIPT]] as const : ['/bin/bash', [SCRIPT]] as const;
  const r = spawnSync(argv[0], [...argv[1]], { env, encoding: 'utf8' });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

t.test('nothing missing: exit 0, nothing installed', async (t) => {
  const { dir, log } = shims(t, []);
  const r = run(dir, false);
  t.equal(r.status, 0, r.err);
  t.match(r.out, /all \d+ test packages are installed/);
  t.equal(readFileSync(log, 'utf8'), '', 'apt-get not called');
});

t.test('root: installs exactly the missing packages, printing each and why', { skip: isRoot ? false : 'needs root (the script installs only as root)' }, async (t) => {
  const { dir, log } = shims(t, ['ffmpeg', 'prometheus']);
  const r = run(dir, false);
  t.equal(r.status, 0, r.err);
  t.match(r.out, /installing 2 Debian package/);
  t.match(r.out, /^ {2}ffmpeg: .+/m);
  t.match(r.out, /^ {2}prometheus: .*promtool/m);
  const calls = readFileSync(log, 'utf8').trim().split('\n');
  t.same(calls, ['apt-get update -qq', 'apt-get install -y -qq --no-install-recommends ffmpeg prometheus']);
});

t.test('not root: names the missing packages, exits 1, installs nothing', { skip: !isRoot ? 'needs root to become user nobody' : !setpriv ? 'setpriv is not installed (util-linux)' : false }, async (t) => {
  const { dir, log } = shims(t, ['tcpdump', 'etcd-server']);
  const r = run(dir, true);
  t.equal(r.status, 1);
  t.match(r.err, /2 Debian package\(s\) the tests need are missing/);
  t.match(r.err, /^ {2}tcpdump: /m);
  t.match(r.err, /^ {2}etcd-server: /m);
  t.match(r.err, /apt-get install --no-install-recommends tcpdump etcd-server/);
  t.equal(readFileSync(log, 'utf8'), '', 'apt-get not called');
});

t.test('REFLECTOR_TEST_DEPS=skip: says so, checks nothing, exit 0', async (t) => {
  const { dir, log } = shims(t, ['ffmpeg']);
  const r = run(dir, false, { REFLECTOR_TEST_DEPS: 'skip' });
  t.equal(r.status, 0);
  t.match(r.out, /REFLECTOR_TEST_DEPS=skip, not checking/);
  t.equal(readFileSync(log, 'utf8'), '');
});

t.test('the script is what npm test and .ci/run call', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.equal(pkg.scripts.pretest, 'bash scripts/test-deps.sh');
  t.match(readFileSync(join(ROOT, '.ci', 'run'), 'utf8'), /^bash scripts\/test-deps\.sh$/m);
});
