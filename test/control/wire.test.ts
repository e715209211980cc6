// SPDX-License-Identifier: MIT
// Every control message round-trips through the .proto encoding as the
// service and the client use it (proto-loader's serialize/deserialize), every
// Event kind too, and an error's ERR_* code survives as google.rpc.ErrorInfo.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { serviceDefinition, methodNames, protoPath } from '../../src/control/proto';
import { captureEndMessage, captureRequestOf, capturedOf, capturedPacketMessage, commandOf, EVENT_TYPES, eventMessage, eventOf, METHOD_OF, requestOf, responseOf, resultOf } from '../../src/control/wire';
import { decodeReason, DETAILS_KEY, errorOf, errorStatus, STATUS_OF } from '../../src/control/status';
import type { CapturePacket, Command, Result } from '../../src/control/types';
import type { StampedEvent } from '../../src/server/events';

const def = serviceDefinition();
const method = (name: string): grpc.MethodDefinition<unknown, unknown> => Object.values(def).find((m) => m.path === `/reflector.v1.Control/${name}`)!;

t.test('the service has the methods of the issue, Watch server-streaming', async (t) => {
  t.same(methodNames().sort(), ['AddRelay', 'Capture', 'List', 'RemoveRelay', 'StartSession', 'Stats', 'StopSession', 'Subscribe', 'Unsubscribe', 'Watch'].sort());
  t.equal(method('Watch').responseStream, true);
  t.equal(method('Watch').requestStream, false);
  t.equal(method('Capture').responseStream, true, 'Capture server-streaming');
  t.equal(method('Capture').requestStream, false);
  t.match(protoPath(), /proto\/reflector\/v1\/control\.proto$/);
});

const commands: Command[] = [
  { type: 'list' },
  { type: 'subscribe', relay: 'cam', subscriber: '127.0.0.1:6000' },
  { type: 'unsubscribe', relay: 'cam', subscriber: '[::1]:6000' },
  { type: 'addRelay', name: 'cam', listen: '127.0.0.1:5000', sources: ['127.0.0.1/32', '10.0.0.0/8'], subscribers: ['127.0.0.1:6000'] },
  { type: 'addRelay', name: 'tv', listen: '239.1.1.1:5000', sources: ['198.18.0.1/32'], subscribers: ['239.2.2.2:6000'], ssm: false, multicastTtl: 4 },
  { type: 'addRelay', name: 'tv6', listen: '[ff3e::1]:5000', sources: ['2001:db8::1/128'], subscribers: [], ssm: true },
  { type: 'removeRelay', name: 'cam' },
  { type: 'startSession', name: 'm', file: '/media/a.ts', to: '127.0.0.1:7000', format: 'rtp', loop: true },
  { type: 'stopSession', name: 'm' },
  { type: 'stats' },
];

t.test('every request round-trips', async (t) => {
  t.equal(new Set(commands.map((c) => c.type)).size, Object.keys(METHOD_OF).length, 'every unary method');
  for (const c of commands) {
    const { method: name, request } = requestOf(c);
    const m = method(name);
    t.same(commandOf(name, m.requestDeserialize(m.requestSerialize(request)) as Record<string, unknown>), c, c.type);
  }
});

const results: Array<[string, Result]> = [
  ['AddRelay', { type: 'ok' }],
  ['Subscribe', { type: 'ok', cluster: true }],
  ['List', {
    type: 'list',
    relays: [{ name: 'cam', listen: '127.0.0.1:5000', sources: ['127.0.0.1/32'], subscribers: ['127.0.0.1:6000'], origin: 'config' }],
    sessions: [{ name: 'm', file: '/a.ts', to: '127.0.0.1:7000', format: 'mpegts', loop: false, origin: 'runtime' }],
  }],
  ['Stats', { type: 'stats', stats: { engineRunning: true, ready: false, configReloads: 3n, configReloadFailures: 1n, counters: [{ name: 'tx_packets', labels: { thread: 'tx' }, value: 2n ** 60n + 1n }] } }],
];

t.test('every response round-trips (64-bit counters exact)', async (t) => {
  for (const [name, r] of results) {
    const m = method(name);
    t.same(resultOf(name, m.responseDeserialize(m.responseSerialize(responseOf(name, r))) as Record<string, unknown>), r, name);
  }
});

t.test('every event kind round-trips', async (t) => {
  const evs: StampedEvent[] = [
    { type: 'session_ended', session: 's', at: 1 },
    { type: 'session_failed', session: 's', code: 'ERR_MEDIA', reason: 'bad', at: 2 },
    { type: 'relay_fault', relay: 'r', subscriber: '127.0.0.1:1', code: 'ERR_NO_NEIGHBOUR', reason: 'gone', at: 3 },
    { type: 'relay_fault', relay: 'r', code: 'ERR_POLICY', reason: 'full', at: 3 },
    { type: 'reload_applied', reason: 'SIGHUP', errors: ['x: y'], at: 4 },
    { type: 'reload_refused', reason: 'file changed', problems: ['f:1:1: a: b'], at: 5 },
    { type: 'engine_stopped', reason: 'server stop', at: 6 },
    { type: 'worker_died', lane: 2, reason: 'exit', sessions: ['a', 'b'], reclaimed: 7, at: 7 },
    { type: 'worker_died', lane: 2, reason: 'exit', sessions: [], reclaimed: null, at: 7 },
    { type: 'session_restarted', session: 'a', reason: 'worker died', at: 8 },
    { type: 'engine_error', thread: 'rx', code: 'ERR_X', reason: 'y', at: 9 },
    { type: 'lane_quarantined', lane: 1, fault: 'bad_slot', faults: 3, reason: 'z', at: 1733000000000 },
  ];
  t.same(new Set(evs.map((e) => e.type)), new Set(EVENT_TYPES), 'every kind is covered');
  const m = method('Watch');
  for (const ev of evs) t.same(eventOf(m.responseDeserialize(m.responseSerialize(eventMessage(ev))) as Record<string, unknown>), ev, ev.type);
});

t.test('errors: status by code, ERR_* code back from the details', async (t) => {
  const st = errorStatus('ERR_EXISTS', 'relay "cam" already exists');
  t.equal(st.code, grpc.status.ALREADY_EXISTS);
  t.equal(st.details, 'ERR_EXISTS: relay "cam" already exists');
  t.equal(decodeReason(st.metadata!.get(DETAILS_KEY)[0] as Buffer), 'ERR_EXISTS');
  const err = Object.assign(new Error('x'), { code: st.code, details: st.details, metadata: st.metadata! }) as grpc.ServiceError;
  t.same(errorOf(err), { code: 'ERR_EXISTS', message: 'relay "cam" already exists' });
  const transport = Object.assign(new Error('x'), { code: grpc.status.UNIMPLEMENTED, details: 'The server does not implement the method /x', metadata: new grpc.Metadata() }) as grpc.ServiceError;
  t.same(errorOf(transport), { code: 'UNIMPLEMENTED', message: 'The server does not implement the method /x' });
  t.equal(errorStatus('ERR_SOMETHING_NEW', 'x').code, grpc.status.UNKNOWN, 'a code without a mapping is UNKNOWN');
  t.equal(decodeReason(Buffer.from([0xff, 0xff])), null, 'a trailer that cannot be read carries no code');
  for (const code of ['ERR_INVALID_ARG', 'ERR_NOT_FOUND', 'ERR_UNAUTHENTICATED', 'ERR_TIMEOUT', 'ERR_UNAVAILABLE', 'ERR_MEDIA', 'ERR_POLICY', 'ERR_NO_NEIGHBOUR', 'ERR_CLUSTER', 'ERR_CONFLICT', 'ERR_CAPTURE', 'ERR_MULTICAST_JOIN']) {
    t.ok(STATUS_OF[code] !== undefined && STATUS_OF[code] !== grpc.status.UNKNOWN, `${code} has a status`);
  }
});

t.test('Capture: request, packets and the end message round-trip (ns timestamps exact, bytes intact)', async (t) => {
  const m = method('Capture');
  const req = { name: 'cam', count: 1000, seconds: 2.5, subscriber: '[2001:db8::2]:6000' };
  t.same(captureRequestOf(m.requestDeserialize(m.requestSerialize({ ...req })) as Record<string, unknown>), req, 'request');
  t.same(captureRequestOf(m.requestDeserialize(m.requestSerialize({ name: 'x' })) as Record<string, unknown>), { name: 'x', count: 0, seconds: 0, subscriber: '' }, 'absent bounds are 0');
  const frame = Uint8Array.from({ length: 1514 }, (_v, i) => i & 0xff);
  const packets: CapturePacket[] = [
    { tsNs: 1_764_000_000_123_456_789n, direction: 'ingress', output: '', frame, wireLength: 1514 },
    { tsNs: 2n ** 63n + 7n, direction: 'output', output: '198.18.0.2:6000', frame: frame.subarray(0, 60), wireLength: 9000 },
  ];
  for (const p of packets) {
    const back = capturedOf(m.responseDeserialize(m.responseSerialize(capturedPacketMessage(p))) as Record<string, unknown>);
    t.ok('packet' in back, `${p.direction}: a packet`);
    if ('packet' in back) t.same({ ...back.packet, frame: Buffer.from(back.packet.frame) }, { ...p, frame: Buffer.from(p.frame) }, p.direction);
  }
  const end = capturedOf(m.responseDeserialize(m.responseSerialize(captureEndMessage({ packets: 3000, dropped: 17 }))) as Record<string, unknown>);
  t.same(end, { end: { packets: 3000, dropped: 17 } }, 'the end message');
});

t.test('docs/api.md names every rpc, message, enum value and Event kind of the .proto', async (t) => {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const proto = fs.readFileSync(protoPath(), 'utf8');
  const doc = fs.readFileSync(path.resolve(__dirname, '../../../docs/api.md'), 'utf8');
  const names = [
    ...[...proto.matchAll(/^\s*rpc (\w+)\(/gm)].map((m) => m[1]),
    ...[...proto.matchAll(/^message (\w+)/gm)].map((m) => m[1]),
    ...[...proto.matchAll(/^\s*(ORIGIN_\w+|APPLIED_\w+|CAPTURE_DIRECTION_\w+|SSM_MODE_\w+) =/gm)].map((m) => m[1]),
    ...EVENT_TYPES,
  ];
  t.ok(names.length > 40, `${names.length} names`);
  t.same(names.filter((n) => !doc.includes(`\`${n}\``) && !doc.includes(`\`${n} `)), [], 'each is in docs/api.md');
  for (const code of Object.keys(STATUS_OF)) t.ok(doc.includes(`\`${code}\``), `${code} is in the status table`);
});
