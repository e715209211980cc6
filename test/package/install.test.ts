// SPDX-License-Identifier: MIT
// `npm install reflector-<version>.tgz` into another project works: the
// project is packed (npm pack), installed into an empty temp project (the
// addon is built there by the package's `install` script; nothing needs a
// devDependency), its types check the README's library example, and the
// example itself runs from that project (import from 'reflector') on a
// namespace testbed: an aggregate's packets arrive in time order.
import t from 'tap';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { startReceiver } from '../helpers/receiver';
import { Testbed, skipUnlessRoot } from '../helpers/testbed';
import { engineUnavailable } from '../helpers/engine-available';
import { ServerProcess } from '../server/fixtures/harness';

const ROOT = path.join(__dirname, '..', '..', '..');
const run = promisify(execFile);
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The README's library example, the one ```ts block under "## Using Reflector as a library". */
function readmeExample(): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf('## Using Reflector as a library');
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  if (at < 0 || !m) throw new Error('README.md: no ```ts block under "## Using Reflector as a library"');
  return m[1];
}

/** Each substitution must match the README as written (a README change that breaks one fails here, by name). */
function substitute(src: string, subs: Array<[string, string]>): { text: string; missing: string[] } {
  const missing: string[] = [];
  let text = src;
  for (const [from, to] of subs) {
    if (!text.includes(from)) missing.push(from);
    text = text.replaceAll(from, to);
  }
  return { text, missing };
}

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string; version: string; scripts: Record<string, string>; files: string[]; exports: Record<string, unknown>; dependencies: Record<string, string>;
};

t.test('package.json: no install step that needs a devDependency; files, exports, types set', async (t) => {
  t.notOk(pkg.scripts.postinstall, 'no postinstall (it ran tsc, a devDependency, in the installing project)');
  t.equal(pkg.scripts.install, 'node-gyp rebuild', 'install builds the addon (npm ships node-gyp)');
  t.match(pkg.scripts.prepare, /tsc/, 'prepare compiles dist/ before npm pack and in the repository');
  t.ok(pkg.files.includes('dist/src/') && pkg.files.includes('dist/workers/'), 'compiled code shipped');
  t.match(pkg.exports['.'], { types: './dist/src/index.d.ts', default: './dist/src/index.js' });
  t.notOk('typescript' in pkg.dependencies, 'typescript is not a run-time dependency');
});

const why = engineUnavailable();
if (skipUnlessRoot(t)) {
  // skipUnlessRoot planned the skip and said why
} else if (why) {
  process.stderr.write(`# SKIP package install: engine not available: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('npm pack, npm install the tarball into an empty project, run the README example from there', { timeout: 420000 }, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-pkg-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    // dist/ is built (npm test built it); --ignore-scripts: no rebuild under the other tests' feet
    const packed = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', timeout: 120000 });
    const tgz = path.join(dir, `${pkg.name}-${pkg.version}.tgz`);
    t.ok(fs.existsSync(tgz), `npm pack wrote ${path.basename(tgz)} (${packed.stdout.trim()})`);

    const app = path.join(dir, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    const env = { ...process.env, NODE_OPTIONS: undefined, npm_config_audit: 'false', npm_config_fund: 'false' };
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tgz], { cwd: app, env, encoding: 'utf8', timeout: 360000, maxBuffer: 16 << 20 });
    const installed = path.join(app, 'node_modules', 'reflector');
    t.ok(fs.existsSync(path.join(installed, 'build', 'Release', 'reflector.node')), 'the addon was built in the installing project');
    t.ok(fs.existsSync(path.join(installed, 'dist', 'src', 'index.d.ts')), 'types shipped');
    t.notOk(fs.existsSync(path.join(installed, 'dist', 'test')), 'tests not shipped');
    t.ok(fs.existsSync(path.join(installed, 'src', 'control', 'control.proto')) || fs.existsSync(path.join(installed, 'proto')), 'the .proto shipped');
    t.notOk(fs.existsSync(path.join(app, 'node_modules', 'typescript')), 'no devDependency installed');
    const paths = await run(process.execPath, ['--input-type=commonjs', '-e', "const p=require('reflector/dist/src/paths.js'); process.stdout.write(p.PACKAGE_ROOT)"], { cwd: app, env, encoding: 'utf8' }).catch((e: Error) => ({ stdout: `ERR ${e.message}` }));
    t.match(paths.stdout, /^ERR [\s\S]*ERR_PACKAGE_PATH_NOT_EXPORTED/, 'deep imports are closed by exports');
    const root = await run(process.execPath, ['--input-type=module', '-e', "import { PACKAGE_ROOT, packagePath } from 'reflector'; process.stdout.write(JSON.stringify([PACKAGE_ROOT, packagePath('deploy', 'systemd', 'reflector.service')]))"], { cwd: app, env, encoding: 'utf8' });
    const [pr, unit] = JSON.parse(root.stdout) as [string, string];
    t.equal(fs.realpathSync(pr), fs.realpathSync(installed), 'PACKAGE_ROOT is the installed package');
    t.ok(fs.existsSync(unit), 'packagePath() finds a shipped file');
    const v = await run(path.join(app, 'node_modules', '.bin', 'reflector'), ['--version'], { cwd: app, env, encoding: 'utf8' });
    t.equal(v.stdout.trim(), pkg.version, 'the bin runs from the installed package');

    const tb = await Testbed.create(t, { hosts: ['relay', 'sub'], links: [['relay', 'sub']] });
    const relay = tb.addr('relay', 4);
    const sub = tb.addr('sub', 4);
    const { text, missing } = substitute(readmeExample(), [
      ["'veth0'", `'${tb.iface('relay').name}'`],
      ["netns: 'media'", `netns: '${tb.ns('relay')}'`],
      ["'198.18.0.1:5000'", `'${relay}:5000'`],
      ["'198.18.0.0/24'", "'198.18.0.0/15'"],
      ["'198.18.1.2:6000'", `'${sub}:6000'`],
      ["'198.18.1.3:6000'", `'${sub}:6001'`],
      ["'198.18.1.4:6000'", `'${sub}:6002'`],
      ["'198.18.1.2:7000'", `'${sub}:7000'`],
      // the packets are due 33 and 34 ms on: let them leave, and say what the table holds, before closing
      ['await engine.close();', "await new Promise((r) => setTimeout(r, 300));\nprocess.stdout.write(JSON.stringify(relays.list().map((r) => ({ name: r.name, subscribers: r.subscribers.map(String) }))) + '\\n');\nawait engine.close();"],
    ]);
    t.same(missing, [], 'every substitution matched the README as written');

    // the example type-checks against the installed package's own types
    fs.writeFileSync(path.join(app, 'example.mts'), text);
    fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'node16', moduleResolution: 'node16', strict: true, noEmit: true, types: ['node'], typeRoots: [path.join(ROOT, 'node_modules', '@types')], skipLibCheck: true },
      files: ['example.mts'],
    }));
    const tsc = await run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], { cwd: app, encoding: 'utf8' }).then(() => '', (e: { stdout?: string }) => e.stdout ?? 'tsc failed');
    t.equal(tsc, '', 'tsc: the README example type-checks against the installed package');

    fs.writeFileSync(path.join(app, 'example.mjs'), text);
    const receiver = await startReceiver(tb, 'sub', { bind: `${sub}:7000`, count: 2, timeoutMs: 8000, list: true });
    const r = await run(process.execPath, ['example.mjs'], { cwd: app, env, encoding: 'utf8', timeout: 60000 }).catch((e: { code?: number; stderr?: string; stdout?: string }) => ({ stdout: e.stdout ?? '', stderr: `exit ${e.code}: ${e.stderr}` }));
    t.equal(r.stderr, '', 'the example ran without an error');
    const table = JSON.parse(r.stdout.trim().split('\n').pop() ?? 'null') as Array<{ name: string; subscribers: string[] }> | null;
    t.same(table?.map((x) => ({ ...x, subscribers: x.subscribers.sort() })), [{ name: 'camera1', subscribers: [`${sub}:6001`, `${sub}:6002`] }], 'the relay table holds what the calls left');
    const got = await receiver.result;
    t.same(got.hashes, [sha('F'), sha('A')], 'the aggregate: F (13 ms) then A (14 ms) arrived at the subscriber');

    // the server from the installed package: its session workers (dist/workers), the control
    // API's schema (the .proto, loaded from the package) answering `reflector ctl` of the package
    const cfg = path.join(app, 'reflector.yaml');
    fs.copyFileSync(path.join(ROOT, 'media', 'sample.ts'), path.join(app, 'sample.ts'));
    fs.writeFileSync(cfg, `engine:\n  interface: ${tb.iface('relay').name}\n  netns: ${tb.ns('relay')}\n  workers: 1\nmetrics:\n  listen: 127.0.0.1:0\ncontrol:\n  socket: ctl.sock\n` +
      `relays:\n  - name: cam\n    listen: ${relay}:5000\n    sources: [${sub}/32]\n    subscribers: [${sub}:6000]\n` +
      `sessions:\n  - name: movie\n    file: sample.ts\n    to: ${sub}:7001\n    loop: true\n`);
    const bin = path.join(app, 'node_modules', '.bin', 'reflector');
    const server = new ServerProcess([], { cwd: app, command: [bin, 'serve', '--config', cfg] });
    t.teardown(() => server.kill('SIGKILL'));
    await server.ready(60000);
    const list = await run(bin, ['ctl', '--socket', path.join(app, 'ctl.sock'), 'list', '--json'], { cwd: app, env, encoding: 'utf8', timeout: 20000 });
    const l = JSON.parse(list.stdout) as { relays: Array<{ name: string }>; sessions: Array<{ name: string }> };
    t.same([l.relays.map((x) => x.name), l.sessions.map((x) => x.name)], [['cam'], ['movie']], 'reflector ctl list from the package answers with the relay and the session');
    const stop = await server.kill('SIGTERM');
    t.equal(stop.code, 0, 'SIGTERM: exit 0');
  });
}
