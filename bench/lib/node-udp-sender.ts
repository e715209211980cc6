// SPDX-License-Identifier: MIT
// Baseline "Node": a plain (connected) dgram send loop, one system call per packet, run
// inside the sender namespace:
//   node dist/bench/lib/node-udp-sender.js --to ADDR --port P --size S --warmup-ms W --duration-ms D
// Prints one JSON line measured over the D ms window after a W ms warm-up:
// packets sent, seconds, process CPU (every thread) and context switches.
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { straceSelf, usageBetween, usageMark } from './measure';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const to = arg('--to', '198.18.0.2');
const port = Number(arg('--port', '9'));
const size = Number(arg('--size', '64'));
const warmupMs = Number(arg('--warmup-ms', '200'));
const durationMs = Number(arg('--duration-ms', '1000'));
// --strace: count every thread's system calls over the window only
const straced = process.argv.includes('--strace');
// sends in flight: enough to keep the socket busy, bounded so memory is too
const MAX_INFLIGHT = 512;

const sock = createSocket(isIPv6(to) ? 'udp6' : 'udp4');
const payload = Buffer.alloc(size, 0x5a);
let inflight = 0;
let done = 0;
let phase: 'warmup' | 'window' | 'stop' = 'warmup';
let mark = { done: 0, ...usageMark() };

const onSent = (err: Error | null): void => {
  inflight--;
  if (!err) done++;
};

function pump(): void {
  if (phase === 'stop') return;
  while (inflight < MAX_INFLIGHT) {
    inflight++;
    sock.send(payload, onSent);
  }
  setImmediate(pump);
}

sock.on('error', (e) => {
  process.stderr.write(`node-udp-sender: ${e.message}\n`);
  process.exit(1);
});
// connected: no address lookup per send, the fastest dgram path
sock.connect(port, to, () => {
  sock.setSendBufferSize(4 << 20);
  pump();
  setTimeout(async () => {
    const stopStrace = straced ? await straceSelf() : null;
    phase = 'window';
    mark = { done, ...usageMark() };
    setTimeout(async () => {
      const end = usageMark();
      const packets = done - mark.done;
      phase = 'stop';
      const calls = stopStrace ? await stopStrace() : null;
      const out = {
        method: 'node-dgram',
        packets,
        ...usageBetween(mark, end),
        // every packet of the process's life (warm-up too), for strace and the sink count
        totalPackets: done,
        ...(calls ? { straceCalls: calls } : {}),
      };
      process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
    }, durationMs);
  }, warmupMs);
});
