// SPDX-License-Identifier: MIT
// Relay test fixture, run inside the origin host:
//   node origin-sender.js --from A:PORT --to B:PORT --count N --pps R --size S
// Sends N datagrams (payload.ts: seq 0..N-1) at R packets/s, paced per
// millisecond, then prints {"sent":N}. Bounded by count.
import { createSocket } from 'node:dgram';
import { parseEndpoint } from '../../src/net/address';
import { makePayload } from './payload';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback !== undefined) return fallback;
  process.stderr.write(`origin-sender: missing ${name}\n`);
  process.exit(2);
}

const from = parseEndpoint(arg('--from'));
const to = parseEndpoint(arg('--to'));
const count = Number(arg('--count'));
const pps = Number(arg('--pps', '1000'));
const size = Number(arg('--size', '200'));
const s = createSocket({ type: from.family === 6 ? 'udp6' : 'udp4' });
s.bind(from.port, from.address, () => {
  const t0 = process.hrtime.bigint();
  let seq = 0;
  let inflight = 0;
  let errors = 0;
  const tick = (): void => {
    const due = Math.min(count, Math.floor((Number(process.hrtime.bigint() - t0) / 1e9) * pps) + 1);
    while (seq < due && inflight < 512) {
      inflight++;
      s.send(makePayload(seq++, size), to.port, to.address, (err) => {
        inflight--;
        if (err) errors++;
      });
    }
    if (seq < count || inflight > 0) setTimeout(tick, 1);
    else {
      process.stdout.write(JSON.stringify({ sent: seq, errors }) + '\n');
      s.close();
    }
  };
  tick();
});
