// SPDX-License-Identifier: MIT
// Every control message round-trips through the .proto encoding, and the
// frame reader splits, joins and refuses oversize frames.
import t from 'tap';
import {
  decodeRequest, decodeResponse, encodeRequest, encodeResponse, frame, FrameReader, ControlError,
  type Command, type Result,
} from '../../src/control/protocol';

const commands: Command[] = [
  { type: 'auth', token: 's3cret' },
  { type: 'list' },
  { type: 'subscribe', relay: 'cam', subscriber: '127.0.0.1:6000' },
  { type: 'unsubscribe', relay: 'cam', subscriber: '[::1]:6000' },
  { type: 'addRelay', name: 'cam', listen: '127.0.0.1:5000', sources: ['127.0.0.1/32', '10.0.0.0/8'], subscribers: ['127.0.0.1:6000'] },
  { type: 'removeRelay', name: 'cam' },
  { type: 'startSession', name: 'm', file: '/media/a.ts', to: '127.0.0.1:7000', format: 'rtp', loop: true },
  { type: 'stopSession', name: 'm' },
  { type: 'stats' },
  { type: 'capture', name: 'cam', out: '/var/tmp/cam.pcap', count: 3000, seconds: 2.5, subscriber: '127.0.0.1:6000' },
];

t.test('every request type round-trips', async (t) => {
  commands.forEach((command, i) => {
    const id = 1000 + i;
    t.same(decodeRequest(encodeRequest({ id, command })), { id, command }, command.type);
  });
});

const results: Result[] = [
  { type: 'ok' },
  { type: 'error', code: 'ERR_NOT_FOUND', message: 'no relay named "x"' },
  {
    type: 'list',
    relays: [{ name: 'cam', listen: '127.0.0.1:5000', sources: ['127.0.0.1/32'], subscribers: ['127.0.0.1:6000'], origin: 'config' }],
    sessions: [{ name: 'm', file: '/a.ts', to: '127.0.0.1:7000', format: 'mpegts', loop: false, origin: 'runtime' }],
  },
  {
    type: 'stats',
    stats: {
      engineRunning: true, ready: true, configReloads: 3n, configReloadFailures: 1n,
      counters: [{ name: 'tx_packets', labels: { thread: 'tx' }, value: 2n ** 60n + 1n }],
    },
  },
  { type: 'capture', packets: 3000, dropped: 12, file: '/var/tmp/cam.pcap' },
];

t.test('every response type round-trips (64-bit counters exact)', async (t) => {
  results.forEach((result, i) => t.same(decodeResponse(encodeResponse({ id: i + 1, result })), { id: i + 1, result }, result.type));
});

t.test('a request without a command is ERR_UNKNOWN_COMMAND with its id', async (t) => {
  // field 1 (id) = 7, no oneof
  const bytes = Uint8Array.from([0x08, 0x07]);
  t.match(caught(() => decodeRequest(bytes)), { controlCode: 'ERR_UNKNOWN_COMMAND', requestId: 7 });
});

t.test('garbage is ERR_BAD_FRAME', async (t) => {
  t.match(caught(() => decodeRequest(Uint8Array.from([0xff, 0xff, 0xff]))), { controlCode: 'ERR_BAD_FRAME' });
  t.ok(caught(() => decodeResponse(Uint8Array.from([0x08]))) instanceof ControlError);
});

t.test('frames: split across chunks, several per chunk, oversize refused', async (t) => {
  const a = frame(Uint8Array.from([1, 2, 3]));
  const b = frame(Uint8Array.from([4]));
  const r = new FrameReader(16);
  const both = Buffer.concat([a, b]);
  t.same(r.push(both.subarray(0, 2)), []);
  t.same(r.push(both.subarray(2, 6)), []);
  t.same(r.push(both.subarray(6)).map((f) => [...f]), [[1, 2, 3], [4]]);
  const big = Buffer.alloc(4);
  big.writeUInt32BE(17);
  t.match(caught(() => new FrameReader(16).push(big)), { controlCode: 'ERR_BAD_FRAME', message: /frame of 17 bytes exceeds the limit of 16 bytes/ });
});

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return new Error('did not throw');
}
