// SPDX-License-Identifier: MIT
// The gRPC control listener under good and bad input, through real sockets:
// every method reaches the handler and answers; the Unix socket's folder,
// mode, group and stale socket; the TCP bearer token (none, wrong, right),
// checked before the request is read; over-size, malformed and random
// messages, an unknown method; connection and stream limits; deadlines; Watch.
// After each bad call the server is shown to serve another client.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { ControlServer } from '../../src/control/server';
import { ControlClient, channelOf, type ControlTarget } from '../../src/control/client';
import { ControlError, type CaptureEnd, type CapturePacket, type CaptureRequest, type Command, type ControlHandler, type Result } from '../../src/control/types';
import { decodeReason, DETAILS_KEY } from '../../src/control/status';
import { ServerEvents } from '../../src/server/events';
import { createLogger, type LogFields } from '../../src/log';
import { ReflectorError } from '../../src/errors';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-ctl-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const logs: Array<{ msg: string } & LogFields> = [];
const log = createLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l) as { msg: string }) });

const seen: Command[] = [];
let gate: (() => void) | null = null;
const handler: ControlHandler = {
  async handle(c: Command): Promise<Result> {
    seen.push(c);
    if (c.type === 'removeRelay' && c.name === 'slow') await new Promise<void>((r) => (gate = r));
    if (c.type === 'removeRelay' && c.name === 'missing') throw new ControlError('ERR_NOT_FOUND', 'no relay named "missing"');
    if (c.type === 'stopSession') throw new Error('boom');
    if (c.type === 'startSession') throw new ReflectorError('ERR_MEDIA', `${c.file}: no MPEG-TS sync byte at offset 0`);
    if (c.type === 'list') return { type: 'list', relays: [{ name: 'cam', listen: '127.0.0.1:5000', sources: ['127.0.0.1/32'], subscribers: ['127.0.0.1:6000'], origin: 'config' }], sessions: [] };
    if (c.type === 'stats') return { type: 'stats', stats: { engineRunning: true, ready: true, configReloads: 2n, configReloadFailures: 1n, counters: [{ name: 'tx_packets', labels: { thread: 'tx' }, value: 2n ** 60n + 1n }] } };
    return { type: 'ok' };
  },
  // 'cam': `count` packets, one every 5 ms, until the count, the seconds or the abort; 'busy': ERR_CAPTURE
  async *capture(req: CaptureRequest, o: { signal: AbortSignal; onArmed: () => void }): AsyncGenerator<CapturePacket, CaptureEnd> {
    if (req.name === 'busy') throw new ReflectorError('ERR_CAPTURE', 'capture of relay "busy": a capture of relay "busy" is running');
    if (req.name !== 'cam') throw new ControlError('ERR_NOT_FOUND', `name: no relay or session named "${req.name}"`);
    captureLive++;
    try {
      o.onArmed();
      const until = Date.now() + (req.seconds || 3600) * 1000;
      let n = 0;
      while (n < (req.count || Infinity) && Date.now() < until && !o.signal.aborted) {
        yield { tsNs: 10n ** 18n + BigInt(n), direction: n % 2 ? 'output' : 'ingress', output: n % 2 ? '127.0.0.1:6000' : '', frame: new Uint8Array(64).fill(n), wireLength: 64 };
        n++;
        await new Promise((r) => setTimeout(r, 5));
      }
      return { packets: n, dropped: 2 };
    } finally {
      captureLive--;
      captureEnded++;
    }
  },
};
let captureLive = 0;
let captureEnded = 0;

const bad: string[] = [];
const events = new ServerEvents();
const socket = path.join(dir, 'sub/dir/control.sock');
const server = new ControlServer({
  socket,
  tcp: { host: '127.0.0.1', port: 0 },
  token: 'letmein',
  maxMessageBytes: 1024,
  maxStreams: 2,
  requestTimeoutMs: 300,
  handler,
  events,
  log,
  onBadRequest: (r) => bad.push(r),
});

t.before(async () => {
  // a stale socket left by a crashed server (bound, never unlinked) is replaced
  fs.mkdirSync(path.dirname(socket), { recursive: true });
  const r = spawnSync('/usr/bin/python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', socket]);
  if (r.status !== 0 || !fs.lstatSync(socket).isSocket()) throw new Error(`could not make a stale socket: ${r.stderr}`);
  await server.start();
});
t.teardown(() => server.stop());

const tcp = (token: string): ControlTarget => ({ host: '127.0.0.1', port: server.tcpAddress!.port, token });

/** A client of the raw service: bytes in, bytes out, any method name. */
function raw(target: ControlTarget): grpc.Client {
  const { address, credentials } = channelOf(target);
  return new grpc.Client(address, credentials);
}
function rawCall(c: grpc.Client, method: string, body: Buffer, md = new grpc.Metadata()): Promise<{ err: grpc.ServiceError | null; res: Buffer | null }> {
  return new Promise((resolve) => {
    c.makeUnaryRequest(`/reflector.v1.Control/${method}`, (b: Buffer) => b, (b: Buffer) => b, body, md, { deadline: Date.now() + 5000 }, (err, res) =>
      resolve({ err: err ?? null, res: res ?? null }),
    );
  });
}

/** The server still serves someone else. */
async function stillServes(t: Test): Promise<void> {
  const c = await ControlClient.connect({ socket });
  t.equal((await c.list()).relays[0]?.name, 'cam', 'the server still serves another client');
  c.close();
}

t.test('Unix socket: folder created, mode 0660, every method reaches the handler', async (t) => {
  t.equal(fs.statSync(socket).mode & 0o777, 0o660);
  t.notOk(fs.readdirSync(path.dirname(socket)).some((f) => f.endsWith('.tmp')), 'no temporary socket left');
  const c = await ControlClient.connect({ socket });
  seen.length = 0;
  t.same(await c.list(), { relays: [{ name: 'cam', listen: '127.0.0.1:5000', sources: ['127.0.0.1/32'], subscribers: ['127.0.0.1:6000'], origin: 'config' }], sessions: [] });
  t.same(await c.stats(), { engineRunning: true, ready: true, configReloads: 2n, configReloadFailures: 1n, counters: [{ name: 'tx_packets', labels: { thread: 'tx' }, value: 2n ** 60n + 1n }] }, '64-bit counters exact');
  const changes: Command[] = [
    { type: 'addRelay', name: 'r', listen: '127.0.0.1:5001', sources: ['127.0.0.1/32', '10.0.0.0/8'], subscribers: ['127.0.0.1:6001'] },
    { type: 'addRelay', name: 'tv', listen: '239.1.1.1:5000', sources: ['198.18.0.1/32'], subscribers: ['239.2.2.2:6000'], ssm: false, multicastTtl: 8 },
    { type: 'subscribe', relay: 'r', subscriber: '[::1]:6002' },
    { type: 'unsubscribe', relay: 'r', subscriber: '127.0.0.1:6001' },
    { type: 'removeRelay', name: 'r' },
  ];
  for (const ch of changes) t.same(await c.request(ch), { type: 'ok' }, ch.type);
  t.same(seen, [{ type: 'list' }, { type: 'stats' }, ...changes], 'the handler got each command as sent');
  await t.rejects(c.request({ type: 'removeRelay', name: 'missing' }), { controlCode: 'ERR_NOT_FOUND', message: 'no relay named "missing"', grpcCode: grpc.status.NOT_FOUND });
  await t.rejects(c.request({ type: 'stopSession', name: 'x' }), { controlCode: 'ERR_INTERNAL', message: 'boom', grpcCode: grpc.status.INTERNAL });
  await t.rejects(c.request({ type: 'startSession', name: 'm', file: '/x.ts', to: '127.0.0.1:1', format: 'rtp', loop: true }), {
    controlCode: 'ERR_MEDIA', message: '/x.ts: no MPEG-TS sync byte at offset 0', grpcCode: grpc.status.FAILED_PRECONDITION,
  }, 'a piece\'s typed error keeps its code');
  t.match(seen.at(-1), { type: 'startSession', format: 'rtp', loop: true });
  c.close();
});

t.test('errors carry the ERR_* code in the message and as google.rpc.ErrorInfo', async (t) => {
  const c = raw({ socket });
  // RemoveRelay { name: "missing" }
  const { err } = await rawCall(c, 'RemoveRelay', Buffer.from([0x0a, 7, ...Buffer.from('missing')]));
  t.equal(err?.code, grpc.status.NOT_FOUND);
  t.equal(err?.details, 'ERR_NOT_FOUND: no relay named "missing"');
  const details = err?.metadata.get(DETAILS_KEY)[0];
  t.ok(Buffer.isBuffer(details), 'grpc-status-details-bin trailer');
  t.equal(decodeReason(details as Buffer), 'ERR_NOT_FOUND', 'ErrorInfo.reason, domain reflector.v1');
  c.close();
});

t.test('a second server on the same live socket is refused', async (t) => {
  const other = new ControlServer({ socket, handler, log });
  await t.rejects(other.start(), { code: 'ERR_INVALID_ARG', message: /is in use by a running server/ });
});

const gid = Number(fs.readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith('daemon:'))?.split(':')[2] ?? NaN);
const groupSkip = process.getuid?.() !== 0 || Number.isNaN(gid) ? `needs root and a "daemon" group to change a socket's group (uid ${process.getuid?.()}, daemon gid ${gid})` : false;
t.test('socket mode and group are set before the socket is in place', { skip: groupSkip }, async (t) => {
  const s = path.join(dir, 'run/g.sock');
  const x = new ControlServer({ socket: s, socketMode: 0o600, socketGroup: 'daemon', handler, log });
  await x.start();
  const st = fs.statSync(s);
  t.equal(st.mode & 0o777, 0o600, 'control.socket_mode');
  t.equal(st.gid, gid, 'control.socket_group by name');
  const d = fs.statSync(path.dirname(s));
  t.same([d.mode & 0o777, d.gid], [0o750, gid], 'the folder it created: 0750, the same group (the group can reach the socket)');
  const c = await ControlClient.connect({ socket: s });
  t.equal((await c.list()).relays.length, 1);
  c.close();
  await x.stop();
  const y = new ControlServer({ socket: s, socketGroup: 'no-such-group-here', handler, log });
  await t.rejects(y.start(), { code: 'ERR_INVALID_ARG', message: 'control.socket_group: no group named "no-such-group-here" in /etc/group (give a group name or a numeric gid)' });
  t.notOk(fs.existsSync(s), 'no socket left behind');
  t.same(fs.readdirSync(path.dirname(s)).filter((f) => f.includes('g.sock')), [], 'no temporary socket left behind');
});

t.test('TCP: no token and a wrong token are UNAUTHENTICATED; the right one works', async (t) => {
  const none = raw({ host: '127.0.0.1', port: server.tcpAddress!.port, token: 'x' });
  const a = await rawCall(none, 'List', Buffer.alloc(0));
  t.equal(a.err?.code, grpc.status.UNAUTHENTICATED);
  t.match(a.err?.details, /^ERR_UNAUTHENTICATED: no authorization metadata/);
  none.close();
  const wrong = await ControlClient.connect(tcp('nope'));
  await t.rejects(wrong.list(), { controlCode: 'ERR_UNAUTHENTICATED', message: 'wrong token', grpcCode: grpc.status.UNAUTHENTICATED });
  const longer = await ControlClient.connect(tcp('letmein-and-more'));
  await t.rejects(longer.list(), { controlCode: 'ERR_UNAUTHENTICATED', message: 'wrong token' }, 'a token that starts with the right one is wrong');
  wrong.close();
  longer.close();
  const ok = await ControlClient.connect(tcp('letmein'));
  t.equal((await ok.list()).relays.length, 1);
  const w = ok.watch();
  await w.ready;
  w.cancel();
  t.equal(await w.ended, null, 'Watch with the token: in place, then cancelled');
  ok.close();
  const nw = await ControlClient.connect(tcp('nope'));
  t.match(await nw.watch().ended, { controlCode: 'ERR_UNAUTHENTICATED', message: 'wrong token' }, 'Watch without the right token: refused');
  nw.close();
  t.ok(bad.includes('unauthenticated') && bad.includes('bad_token'), 'counted by reason');
  t.ok(logs.some((l) => l.msg === 'control request refused' && l.reason === 'bad_token'), 'logged');
  await stillServes(t);
});

t.test('TCP: an unauthenticated peer\'s request is never read (not even an over-size one)', async (t) => {
  const c = raw(tcp('x'));
  const md = new grpc.Metadata();
  md.set('authorization', 'Bearer nope');
  const before = seen.length;
  const r = await rawCall(c, 'AddRelay', Buffer.alloc(1 << 20, 0x0a), md);
  t.equal(r.err?.code, grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED, not RESOURCE_EXHAUSTED: the message was not read');
  t.equal(seen.length, before, 'the handler saw nothing');
  c.close();
  await stillServes(t);
});

t.test('an over-size request is RESOURCE_EXHAUSTED; the server goes on', async (t) => {
  const c = await ControlClient.connect({ socket });
  const e = (await c.request({ type: 'addRelay', name: 'x'.repeat(2000), listen: '127.0.0.1:1', sources: ['127.0.0.1/32'], subscribers: [] }).catch((x: unknown) => x)) as ControlError & { grpcCode: number };
  t.equal(e.grpcCode, grpc.status.RESOURCE_EXHAUSTED);
  t.match(e.message, /larger than max \(\d+ vs 1024\)/);
  t.equal((await c.list()).relays.length, 1, 'the same connection still serves');
  c.close();
  await stillServes(t);
});

t.test('an unknown method is UNIMPLEMENTED; a malformed message is INVALID_ARGUMENT (ERR_BAD_MESSAGE)', async (t) => {
  const c = raw({ socket });
  const u = await rawCall(c, 'Frobnicate', Buffer.alloc(0));
  t.equal(u.err?.code, grpc.status.UNIMPLEMENTED);
  const m = await rawCall(c, 'Subscribe', Buffer.from([0xff, 0xff, 0xff]));
  t.equal(m.err?.code, grpc.status.INVALID_ARGUMENT);
  t.match(m.err?.details, /^ERR_BAD_MESSAGE: Subscribe: malformed request message/);
  t.ok(bad.includes('malformed'));
  const w = raw(tcp('x'));
  const md = new grpc.Metadata();
  md.set('authorization', 'Bearer letmein');
  const m2 = await rawCall(w, 'StartSession', Buffer.from([0x0a, 0x01, 0x61, 0x0f]), md);
  t.equal(m2.err?.code, grpc.status.INVALID_ARGUMENT, 'an invalid wire type, authenticated on TCP');
  t.match(m2.err?.details, /^ERR_BAD_MESSAGE: /);
  w.close();
  const ok = await rawCall(c, 'List', Buffer.alloc(0));
  t.equal(ok.err, null, 'the same connection still serves');
  c.close();
  await stillServes(t);
});

t.test('random messages never take the server down', async (t) => {
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
  const methods = ['List', 'AddRelay', 'RemoveRelay', 'Subscribe', 'Unsubscribe', 'StartSession', 'StopSession', 'Stats'];
  const c = raw({ socket });
  const codes = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const body = Buffer.alloc(rnd(64));
    for (let k = 0; k < body.length; k++) body[k] = rnd(256);
    const r = await rawCall(c, methods[rnd(methods.length)], body);
    codes.add(r.err?.code ?? 0);
  }
  c.close();
  t.notOk(codes.has(grpc.status.UNKNOWN), 'every answer has a status of ours');
  await stillServes(t);
});

t.test('a slow command times out on the server with ERR_TIMEOUT (DEADLINE_EXCEEDED)', async (t) => {
  const c = await ControlClient.connect({ socket });
  await t.rejects(c.request({ type: 'removeRelay', name: 'slow' }), { controlCode: 'ERR_TIMEOUT', message: /took longer than 300 ms/, grpcCode: grpc.status.DEADLINE_EXCEEDED });
  gate?.();
  c.close();
});

t.test('client: pending calls rejected with ERR_CLOSED on close; client deadline', async (t) => {
  const c = await ControlClient.connect({ socket });
  const p = c.request({ type: 'removeRelay', name: 'slow' });
  await new Promise((r) => setTimeout(r, 50));
  c.close();
  await t.rejects(p, { name: 'ReflectorError', code: 'ERR_CLOSED', message: 'control client closed' });
  await t.rejects(c.request({ type: 'list' }), { code: 'ERR_CLOSED' }, 'a closed client refuses new requests');
  gate?.();
  const d = await ControlClient.connect({ socket });
  await t.rejects(d.request({ type: 'removeRelay', name: 'slow' }, 50), { controlCode: 'ERR_TIMEOUT', message: /no reply within 50 ms/ });
  gate?.();
  d.close();
});

t.test('Watch: events as they happen, filtered by kind; bad kinds refused', async (t) => {
  const c = await ControlClient.connect({ socket });
  const all = c.watch();
  const ended = c.watch(['session_ended']);
  await Promise.all([all.ready, ended.ready]);
  const got: string[] = [];
  ended.on('event', (e) => got.push(e.type));
  events.emit({ type: 'relay_fault', relay: 'cam', code: 'ERR_NO_NEIGHBOUR', reason: 'no next hop' });
  t.match(await all.next(), { type: 'relay_fault', relay: 'cam', code: 'ERR_NO_NEIGHBOUR', reason: 'no next hop', at: Number });
  t.notOk('subscriber' in (await (async () => {
    events.emit({ type: 'worker_died', lane: 3, reason: 'exit 1', sessions: ['a'], reclaimed: null });
    return all.next();
  })()), 'an absent subscriber stays absent');
  events.emit({ type: 'session_ended', session: 'clip' });
  t.same({ ...(await ended.next()), at: 0 }, { type: 'session_ended', session: 'clip', at: 0 });
  events.emit({ type: 'lane_quarantined', lane: 2, fault: 'bad_slot', faults: 5, reason: 'slot out of range' });
  t.match(await all.next('lane_quarantined'), { lane: 2, fault: 'bad_slot', faults: 5 });
  t.same(got, ['session_ended'], 'the filtered watch saw only its kind');
  all.cancel();
  ended.cancel();
  t.equal(await all.ended, null);
  const badKind = c.watch(['nope' as 'session_ended']);
  t.match(await badKind.ended, { controlCode: 'ERR_INVALID_ARG', message: /"nope" is not an event kind/ });
  c.close();
  await new Promise((r) => setTimeout(r, 50));
  t.equal(events.listenerCount, 0, 'no listener left behind');
});

t.test('streams per connection are capped (control.max_streams)', async (t) => {
  const c = await ControlClient.connect({ socket });
  const w1 = c.watch();
  const w2 = c.watch();
  await Promise.all([w1.ready, w2.ready]);
  let done = false;
  const list = c.list().then((r) => {
    done = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 300));
  t.notOk(done, 'a third call on the connection waits while two streams are open');
  w1.cancel();
  t.equal((await list).relays.length, 1, 'and runs once one ends');
  w2.cancel();
  c.close();
});

t.test('Capture: packets then the end message; headers once armed; a cancel ends the capture on the server; typed errors', async (t) => {
  const c = await ControlClient.connect({ socket });
  t.teardown(() => c.close());
  const cap = c.capture({ name: 'cam', count: 6, seconds: 0, subscriber: '' });
  const got: CapturePacket[] = [];
  cap.on('packet', (p) => got.push(p));
  await cap.armed;
  t.same(await cap.ended, { packets: 6, dropped: 2, cancelled: false }, 'the end message: packets and dropped');
  t.same(got.map((p) => [p.tsNs, p.direction, p.output, p.frame[0], p.frame.length]), [0, 1, 2, 3, 4, 5].map((n) => [10n ** 18n + BigInt(n), n % 2 ? 'output' : 'ingress', n % 2 ? '127.0.0.1:6000' : '', n, 64]));

  const long = c.capture({ name: 'cam', count: 0, seconds: 60, subscriber: '' });
  let n = 0;
  long.on('packet', () => void n++);
  await long.armed;
  while (n < 3) await new Promise((r) => setTimeout(r, 5));
  t.equal(captureLive, 1, 'the capture runs on the server');
  const ended0 = captureEnded;
  long.cancel();
  t.match(await long.ended, { cancelled: true }, 'a cancelled capture ends for the client');
  for (let i = 0; i < 200 && captureEnded === ended0; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(captureLive, 0, 'and on the server (the engine is disarmed), without waiting for its 60 s');

  const err = (name: string) => c.capture({ name, count: 1, seconds: 0, subscriber: '' }).ended.then(() => null, (e: unknown) => e);
  t.match(await err('nope'), { controlCode: 'ERR_NOT_FOUND', grpcCode: grpc.status.NOT_FOUND });
  t.match(await err('busy'), { controlCode: 'ERR_CAPTURE', grpcCode: grpc.status.FAILED_PRECONDITION, message: /is running/ });
  // a malformed request: INVALID_ARGUMENT (ERR_BAD_MESSAGE), the server goes on
  const r = raw({ socket });
  const bad = await new Promise<grpc.ServiceError>((resolve) => {
    const s = r.makeServerStreamRequest('/reflector.v1.Control/Capture', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0xff, 0xff, 0xff]), new grpc.Metadata(), {});
    s.on('data', () => undefined);
    s.on('error', resolve);
  });
  r.close();
  t.match(bad, { code: grpc.status.INVALID_ARGUMENT, details: /^ERR_BAD_MESSAGE: Capture: malformed request message/ });
  await stillServes(t);
});

t.test('connections per listener are capped (control.max_connections)', async (t) => {
  const s = path.join(dir, 'cap.sock');
  const x = new ControlServer({ socket: s, maxConnections: 2, handler, log });
  await x.start();
  const held = await Promise.all([0, 1].map(() => new Promise<net.Socket>((resolve) => {
    const c = net.connect(s, () => resolve(c));
  })));
  const third = net.connect(s);
  const closed = await new Promise<boolean>((resolve) => {
    third.on('close', () => resolve(true));
    setTimeout(() => resolve(false), 2000);
  });
  t.ok(closed, 'a third connection is closed by the server');
  held[0].destroy();
  await new Promise((r) => setTimeout(r, 50));
  const c = await ControlClient.connect({ socket: s });
  t.equal((await c.list()).relays.length, 1, 'served again once one closed');
  c.close();
  held[1].destroy();
  await x.stop();
});

t.test('a connection with no call open is closed after idle_timeout_ms; one with a Watch is kept', async (t) => {
  const s = path.join(dir, 'idle.sock');
  const ev = new ServerEvents();
  const x = new ControlServer({ socket: s, idleMs: 300, handler, events: ev, log });
  await x.start();
  const silent = net.connect(s);
  // read what the server sends (its HTTP/2 settings), or 'close' waits for us
  silent.resume();
  const t0 = Date.now();
  const closed = await new Promise<boolean>((resolve) => {
    silent.on('close', () => resolve(true));
    silent.on('error', () => undefined);
    setTimeout(() => resolve(false), 5000);
  });
  t.ok(closed, `a silent peer is closed (after ${Date.now() - t0} ms)`);
  const idle = raw({ socket: s });
  t.equal((await rawCall(idle, 'List', Buffer.alloc(0))).err, null, 'one call');
  t.equal(idle.getChannel().getConnectivityState(false), grpc.connectivityState.READY);
  await new Promise((r) => setTimeout(r, 1000));
  t.not(idle.getChannel().getConnectivityState(false), grpc.connectivityState.READY, 'then, with no call open, the server closed the connection');
  t.equal((await rawCall(idle, 'List', Buffer.alloc(0))).err, null, 'and a new call connects again');
  idle.close();
  const c = await ControlClient.connect({ socket: s });
  const w = c.watch();
  await w.ready;
  await new Promise((r) => setTimeout(r, 900));
  ev.emit({ type: 'session_ended', session: 'late' });
  t.match(await w.next(), { type: 'session_ended', session: 'late' }, 'a connection with a Watch open is not idle');
  w.cancel();
  c.close();
  await x.stop();
});

t.test('stopping: new calls UNAVAILABLE, Watch streams stay until stop(), then end; the socket goes', async (t) => {
  const s = path.join(dir, 'b.sock');
  const ev = new ServerEvents();
  const x = new ControlServer({ socket: s, handler, events: ev, log });
  await x.start();
  const c = await ControlClient.connect({ socket: s });
  const w = c.watch();
  await w.ready;
  x.beginStop();
  await t.rejects(c.list(), { controlCode: 'ERR_UNAVAILABLE', message: 'the server is stopping' });
  ev.emit({ type: 'engine_stopped', reason: 'server stop' });
  t.match(await w.next(), { type: 'engine_stopped', reason: 'server stop' }, 'the watch sees the engine stop');
  await x.stop();
  t.equal(await w.ended, null, 'the stream ends');
  t.notOk(fs.existsSync(s));
  c.close();
});

t.test('TCP on a non-loopback address without TLS is refused', async (t) => {
  const x = new ControlServer({ socket: null, tcp: { host: '0.0.0.0', port: 0 }, token: 't', handler, log });
  await t.rejects(x.start(), { code: 'ERR_INVALID_ARG', message: /0\.0\.0\.0 is not a loopback address: set control\.tls\.cert and control\.tls\.key/ });
  const y = new ControlServer({ socket: null, tcp: { host: '127.0.0.1', port: 0 }, handler, log });
  await t.rejects(y.start(), { code: 'ERR_INVALID_ARG', message: /control\.tcp needs control\.token/ });
});

t.test('reflector ctl watch: one JSON line per event; SIGINT ends it with exit 0', async (t) => {
  const { spawn } = await import('node:child_process');
  const bin = path.resolve(__dirname, '../../../bin/reflector.js');
  const child = spawn(process.execPath, [bin, 'ctl', '--socket', socket, 'watch', '--type', 'session_failed'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 15000;
  while (server.watchCount < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  t.equal(server.watchCount, 1, 'the watch is in place');
  events.emit({ type: 'session_ended', session: 'not-this-kind' });
  events.emit({ type: 'session_failed', session: 'clip', code: 'ERR_MEDIA', reason: 'truncated' });
  while (!out.includes('\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  t.equal(code, 0, `exit 0 ${err}`);
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(lines, [{ type: 'session_failed', session: 'clip', code: 'ERR_MEDIA', reason: 'truncated', at: Number }], 'only the kind asked for');
  t.equal(lines.length, 1);
});
