// SPDX-License-Identifier: MIT
// The control API on TCP with TLS, set up through the config file
// (control.tls.cert, key, client_ca) of a real Server: certificates made
// with openssl at test time. A client that trusts the CA and presents a
// certificate it signed is served (ControlClient and `reflector ctl`); one
// without a client certificate, one that trusts another CA, and a plain-text
// client are not, and the server goes on serving.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Server } from '../../src/server/server';
import { ControlClient, type ClientTls } from '../../src/control/client';
import { createLogger } from '../../src/log';
import { main } from '../../src/cli/main';
import { FakeDeps } from '../server/fixtures/fake-deps';

const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' });
const why = openssl.status === 0 ? null : `openssl is not available to make test certificates (${openssl.error?.message ?? openssl.stderr})`;
if (why) {
  process.stderr.write(`# SKIP control TLS tests: ${why}\n`);
  t.plan(0, why);
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-tls-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ssl = (...args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  const ca = (name: string): void => ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '1', '-subj', `/CN=${name}`);
  const leaf = (name: string, signer: string, san: string): void => {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.pem`, '-CAkey', `${signer}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
  };
  ca('ca');
  ca('other-ca');
  leaf('server', 'ca', 'IP:127.0.0.1,DNS:reflector.test');
  leaf('client', 'ca', 'DNS:operator');
  leaf('stranger', 'other-ca', 'DNS:stranger');
  const pem = (f: string): Buffer => fs.readFileSync(path.join(dir, f));

  const file = path.join(dir, 'reflector.yaml');
  fs.writeFileSync(file, `metrics:\n  listen: null\ncontrol:\n  socket: null\n  tcp: 127.0.0.1:0\n  token: tls-s3cret\n  tls:\n    cert: server.pem\n    key: server.key\n    client_ca: ca.pem\nengine:\n  drain_ms: 0\nrelays:\n  - name: cam\n    listen: 127.0.0.1:5000\n    sources: [127.0.0.1/32]\n    subscribers: [127.0.0.1:6000]\n`);
  const server = new Server({ configFile: file, deps: async () => new FakeDeps(), log: createLogger({ write: () => undefined }), watch: false, processMetrics: false });

  t.test('TLS with client certificates', { timeout: 60000 }, async (t) => {
    await server.start();
    t.teardown(() => server.stop());
    const port = server.controlTcpAddress!.port;
    const target = (tls: ClientTls | null, token = 'tls-s3cret'): { host: string; port: number; token: string; tls: ClientTls | null } => ({ host: '127.0.0.1', port, token, tls });

    const ok = await ControlClient.connect(target({ ca: pem('ca.pem'), cert: pem('client.pem'), key: pem('client.key') }));
    t.equal((await ok.list()).relays[0]?.name, 'cam', 'trusted CA + client certificate: served');
    ok.close();
    const byName = await ControlClient.connect(target({ ca: pem('ca.pem'), cert: pem('client.pem'), key: pem('client.key'), servername: 'reflector.test' }));
    t.equal((await byName.list()).relays.length, 1, 'the certificate\'s DNS name also checks out');
    const wrongToken = await ControlClient.connect(target({ ca: pem('ca.pem'), cert: pem('client.pem'), key: pem('client.key') }, 'nope'));
    await t.rejects(wrongToken.list(), { controlCode: 'ERR_UNAUTHENTICATED', message: 'wrong token' }, 'TLS does not replace the token');
    wrongToken.close();

    await t.rejects(ControlClient.connect(target({ ca: pem('ca.pem') }), { timeoutMs: 2000 }), { code: 'ERR_CONTROL', message: /cannot connect to 127\.0\.0\.1:\d+/ }, 'no client certificate: refused');
    await t.rejects(ControlClient.connect(target({ ca: pem('other-ca.pem'), cert: pem('client.pem'), key: pem('client.key') }), { timeoutMs: 2000 }), { code: 'ERR_CONTROL' }, 'a client that does not trust the server\'s CA gives up');
    await t.rejects(ControlClient.connect(target({ ca: pem('ca.pem'), cert: pem('stranger.pem'), key: pem('stranger.key') }), { timeoutMs: 2000 }), { code: 'ERR_CONTROL' }, 'a client certificate of another CA: refused');
    await t.rejects(ControlClient.connect(target(null), { timeoutMs: 2000 }), { code: 'ERR_CONTROL' }, 'plain text on the TLS port: refused');

    t.equal((await byName.list()).relays.length, 1, 'the server still serves');
    byName.close();

    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['ctl', '--tcp', `127.0.0.1:${port}`, '--token', 'tls-s3cret', '--tls-ca', path.join(dir, 'ca.pem'), '--tls-cert', path.join(dir, 'client.pem'), '--tls-key', path.join(dir, 'client.key'), '--json', 'list'], { out: (s) => void out.push(s), err: (s) => void err.push(s) });
    t.equal(code, 0, `reflector ctl over TLS: ${err.join('')}`);
    t.match(JSON.parse(out.join('')), { relays: [{ name: 'cam' }] });
  });

  t.test('config: TLS keys are checked and named', async (t) => {
    const bad = path.join(dir, 'bad.yaml');
    const check = async (text: string): Promise<string> => {
      fs.writeFileSync(bad, text);
      const err: string[] = [];
      t.equal(await main(['check-config', bad], { out: () => undefined, err: (s) => void err.push(s) }), 1, 'invalid');
      return err.join('');
    };
    t.match(await check('control:\n  tcp: 198.18.0.1:7400\n  token: x\n'), /control\.tcp: 198\.18\.0\.1 is not a loopback address: set control\.tls\.cert and control\.tls\.key/);
    t.match(await check('control:\n  tls:\n    cert: server.pem\n'), /control\.tls\.cert: control\.tls\.cert and control\.tls\.key go together/);
    t.match(await check('control:\n  tls:\n    cert: server.pem\n    key: missing.key\n'), /control\.tls\.key: .*missing\.key does not exist/);
    t.match(await check('control:\n  tls:\n    client_ca: ca.pem\n'), /control\.tls\.client_ca: needs control\.tls\.cert and control\.tls\.key/);
    t.match(await check('control:\n  socket_mode: "0999"\n'), /control\.socket_mode: "0999" is not an octal mode such as "0660" or "0600"/);
    t.match(await check('control:\n  socket_mode: 660\n'), /control\.socket_mode: expected a string/);
  });
}
