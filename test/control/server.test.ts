// SPDX-License-Identifier: MIT
// The control listener under good and bad input: Unix socket mode and stale
// socket, TCP bearer token, malformed / oversize / unknown frames, timeouts,
// and the client's pending requests rejected with ERR_CLOSED.
import t from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ControlServer, type ControlHandler } from '../../src/control/server';
import { ControlClient } from '../../src/control/client';
import { ControlError, frame, type Command, type Result } from '../../src/control/protocol';
import { createLogger, type LogFields } from '../../src/log';
import { ReflectorError } from '../../src/errors';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-ctl-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const logs: Array<{ msg: string } & LogFields> = [];
const log = createLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l) as { msg: string }) });

let gate: (() => void) | null = null;
const handler: ControlHandler = {
  async handle(c: Command): Promise<Result> {
    if (c.type === 'removeRelay' && c.name === 'slow') await new Promise<void>((r) => (gate = r));
    if (c.type === 'removeRelay' && c.name === 'missing') throw new ControlError('ERR_NOT_FOUND', 'no relay named "missing"');
    if (c.type === 'stopSession') throw new Error('boom');
    if (c.type === 'startSession') throw new ReflectorError('ERR_MEDIA', `${c.file}: no MPEG-TS sync byte at offset 0`);
    return c.type === 'list' ? { type: 'list', relays: [], sessions: [] } : { type: 'ok' };
  },
};

const badFrames: string[] = [];
const socket = path.join(dir, 'sub/dir/control.sock');
const server = new ControlServer({
  socket,
  tcp: { host: '127.0.0.1', port: 0 },
  token: 'letmein',
  maxFrameBytes: 1024,
  requestTimeoutMs: 300,
  authTimeoutMs: 200,
  handler,
  log,
  onBadFrame: (r) => badFrames.push(r),
});

t.before(async () => {
  // a stale socket left by a crashed server (bound, never unlinked) is replaced
  fs.mkdirSync(path.dirname(socket), { recursive: true });
  const r = spawnSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', socket]);
  if (r.status !== 0 || !fs.lstatSync(socket).isSocket()) throw new Error(`could not make a stale socket: ${r.stderr}`);
  await server.start();
});
t.teardown(() => server.stop());

t.test('Unix socket: folder created, mode 0660, requests served', async (t) => {
  t.equal(fs.statSync(socket).mode & 0o777, 0o660);
  const c = await ControlClient.connect({ socket });
  t.same(await c.list(), { relays: [], sessions: [] });
  await t.resolveMatch(c.request({ type: 'subscribe', relay: 'a', subscriber: '127.0.0.1:1' }), { type: 'ok' });
  await t.rejects(c.request({ type: 'removeRelay', name: 'missing' }), { controlCode: 'ERR_NOT_FOUND', message: 'no relay named "missing"' });
  await t.rejects(c.request({ type: 'stopSession', name: 'x' }), { controlCode: 'ERR_INTERNAL', message: 'boom' });
  await t.rejects(c.request({ type: 'startSession', name: 'm', file: '/x.ts', to: '127.0.0.1:1', format: 'mpegts', loop: false }), {
    controlCode: 'ERR_MEDIA', message: '/x.ts: no MPEG-TS sync byte at offset 0',
  }, 'a piece\'s typed error keeps its code');
  c.close();
});

t.test('a second server on the same live socket is refused', async (t) => {
  const other = new ControlServer({ socket, handler, log });
  await t.rejects(other.start(), { code: 'ERR_INVALID_ARG', message: /is in use by a running server/ });
});

t.test('TCP: right token works, wrong token gets an error and a closed connection', async (t) => {
  const port = server.tcpAddress!.port;
  const ok = await ControlClient.connect({ host: '127.0.0.1', port, token: 'letmein' });
  t.same(await ok.list(), { relays: [], sessions: [] });
  ok.close();
  await t.rejects(ControlClient.connect({ host: '127.0.0.1', port, token: 'nope' }), { controlCode: 'ERR_UNAUTHENTICATED', message: 'wrong token' });
  t.ok(badFrames.includes('bad_token'));
  t.ok(logs.some((l) => l.msg === 'control request refused' && l.reason === 'bad_token'), 'logged');
});

t.test('TCP: a command before auth is refused and the connection closed', async (t) => {
  const port = server.tcpAddress!.port;
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const { encodeRequest, decodeResponse } = await import('../../src/control/protocol');
  sock.write(frame(encodeRequest({ id: 9, command: { type: 'list' } })));
  const data = await collect(sock);
  const res = decodeResponse(data.subarray(4));
  t.same(res, { id: 9, result: { type: 'error', code: 'ERR_UNAUTHENTICATED', message: 'the first frame on TCP must be an auth request' } });
});

t.test('TCP: a connection that never authenticates is closed', async (t) => {
  const sock = net.connect(server.tcpAddress!.port, '127.0.0.1');
  const t0 = Date.now();
  await collect(sock);
  t.ok(Date.now() - t0 >= 150, 'closed after the auth timeout');
  t.ok(badFrames.includes('auth_timeout'));
});

t.test('malformed and unknown frames get error replies; the connection stays usable', async (t) => {
  const c = await ControlClient.connect({ socket });
  c.writeRaw(frame(Uint8Array.from([0xff, 0xff, 0xff])));
  c.writeRaw(frame(Uint8Array.from([0x08, 0x2a]))); // id 42, no command
  t.same(await c.list(), { relays: [], sessions: [] }, 'still served');
  t.match(c.unsolicited, [{ type: 'error', code: 'ERR_BAD_FRAME' }, { type: 'error', code: 'ERR_UNKNOWN_COMMAND' }]);
  c.close();
});

t.test('an oversize frame gets an error and the connection is closed; the server goes on', async (t) => {
  const c = await ControlClient.connect({ socket });
  const pending = c.request({ type: 'addRelay', name: 'x'.repeat(2000), listen: '127.0.0.1:1', sources: ['127.0.0.1/32'], subscribers: [] });
  await t.rejects(pending, { code: 'ERR_CLOSED' }, 'pending request rejected with ERR_CLOSED');
  t.match(c.unsolicited, [{ type: 'error', code: 'ERR_BAD_FRAME', message: /exceeds the limit of 1024 bytes/ }]);
  t.ok(badFrames.includes('oversize'));
  const again = await ControlClient.connect({ socket });
  t.same(await again.list(), { relays: [], sessions: [] }, 'server still serves');
  again.close();
});

t.test('random frames never take the server down', async (t) => {
  // deterministic xorshift so a failure can be replayed
  let x = 0x2545f491;
  const rnd = (n: number): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
  for (let round = 0; round < 20; round++) {
    const c = await ControlClient.connect({ socket });
    for (let i = 0; i < 10; i++) {
      const body = Buffer.alloc(rnd(64));
      for (let k = 0; k < body.length; k++) body[k] = rnd(256);
      c.writeRaw(frame(body));
    }
    c.close();
  }
  const c = await ControlClient.connect({ socket });
  t.same(await c.list(), { relays: [], sessions: [] }, 'still serving after 200 random frames');
  c.close();
});

t.test('a slow command times out on the server with ERR_TIMEOUT', async (t) => {
  const c = await ControlClient.connect({ socket });
  await t.rejects(c.request({ type: 'removeRelay', name: 'slow' }), { controlCode: 'ERR_TIMEOUT', message: /took longer than 300 ms/ });
  gate?.();
  c.close();
});

t.test('client: pending requests rejected with ERR_CLOSED on close; client timeout', async (t) => {
  const c = await ControlClient.connect({ socket });
  const p = c.request({ type: 'removeRelay', name: 'slow' });
  c.close();
  await t.rejects(p, { name: 'ReflectorError', code: 'ERR_CLOSED', message: 'control client closed' });
  await t.rejects(c.request({ type: 'list' }), { code: 'ERR_CLOSED' }, 'a closed client refuses new requests');
  gate?.();
  const d = await ControlClient.connect({ socket });
  await t.rejects(d.request({ type: 'removeRelay', name: 'slow' }, 50), { controlCode: 'ERR_TIMEOUT', message: /no reply within 50 ms/ });
  gate?.();
  d.close();
});

t.test('stop removes the socket', async (t) => {
  const s = path.join(dir, 'b.sock');
  const x = new ControlServer({ socket: s, handler, log });
  await x.start();
  t.ok(fs.existsSync(s));
  await x.stop();
  t.notOk(fs.existsSync(s));
});

function collect(sock: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    sock.on('data', (d: Buffer) => parts.push(d));
    sock.on('close', () => resolve(Buffer.concat(parts)));
  });
}
