// SPDX-License-Identifier: MIT
// Relay test fixture, run inside a testbed host:
//   node port-receiver.js --addr A --ports P0,P1,.. | --first P --n N
//        --count C --timeout-ms T [--idle-ms I] [--join IFADDR]
// Binds one UDP socket per port, checks every datagram against the origin's
// generator (origin-sender.ts: seq in the first 4 bytes, the rest derived
// from seq), and prints {"ready":true} once bound, then one JSON line: per
// port received, duplicates, corrupt payloads, sequence numbers missing from
// 0..C-1, the first and last seq seen, and the sources. With --join, A is a
// multicast group that every socket joins (IP_ADD_MEMBERSHIP /
// IPV6_JOIN_GROUP) on the interface whose address is IFADDR; without it, a
// socket bound to a group receives only what a membership of another socket
// of this host asked for (none in a testbed host of its own).
import { createSocket, type Socket } from 'node:dgram';
import { checkPayload } from './payload';

export interface PortResult {
  received: number;
  dups: number;
  bad: number;
  missing: number;
  first: number;
  last: number;
  outOfOrder: number;
  sources: Record<string, number>;
}
export interface PortReceiverResult {
  ports: Record<string, PortResult>;
  timedOut: boolean;
}

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback !== undefined) return fallback;
  process.stderr.write(`port-receiver: missing ${name}\n`);
  process.exit(2);
}

function main(): void {
  const addr = arg('--addr');
  const ports = process.argv.includes('--ports')
    ? arg('--ports').split(',').map(Number)
    : Array.from({ length: Number(arg('--n')) }, (_, i) => Number(arg('--first')) + i);
  const count = Number(arg('--count'));
  const timeoutMs = Number(arg('--timeout-ms'));
  const idleMs = Number(arg('--idle-ms', '1500'));
  const join = process.argv.includes('--join') ? arg('--join') : null;
  const seen = new Map<number, Uint8Array>();
  const res: PortReceiverResult = { ports: {}, timedOut: false };
  let last = 0;
  let started = false;
  const socks: Socket[] = [];
  let bound = 0;
  for (const port of ports) {
    const r: PortResult = { received: 0, dups: 0, bad: 0, missing: 0, first: -1, last: -1, outOfOrder: 0, sources: {} };
    res.ports[String(port)] = r;
    const bits = new Uint8Array(Math.ceil(Math.max(count, 1) / 8));
    seen.set(port, bits);
    const s = createSocket({ type: addr.includes(':') ? 'udp6' : 'udp4' });
    socks.push(s);
    s.on('message', (msg, rinfo) => {
      started = true;
      last = Date.now();
      r.received++;
      const src = rinfo.family === 'IPv6' ? `[${rinfo.address}]:${rinfo.port}` : `${rinfo.address}:${rinfo.port}`;
      r.sources[src] = (r.sources[src] ?? 0) + 1;
      const seq = checkPayload(msg);
      if (seq < 0) {
        r.bad++;
        return;
      }
      if (r.first < 0) r.first = seq;
      if (seq < r.last) r.outOfOrder++;
      r.last = Math.max(r.last, seq);
      if (seq < count) {
        if (bits[seq >> 3] & (1 << (seq & 7))) r.dups++;
        bits[seq >> 3] |= 1 << (seq & 7);
      }
    });
    s.bind(port, addr, () => {
      if (join) s.addMembership(addr, join);
      try {
        s.setRecvBufferSize(4 << 20);
      } catch {
        // capped by rmem_max
      }
      if (++bound === ports.length) process.stdout.write(JSON.stringify({ ready: true }) + '\n');
    });
  }
  const finish = (timedOut: boolean): void => {
    res.timedOut = timedOut;
    for (const [port, bits] of seen) {
      const r = res.ports[String(port)];
      let have = 0;
      for (let i = 0; i < count; i++) if (bits[i >> 3] & (1 << (i & 7))) have++;
      r.missing = count - have;
    }
    for (const s of socks) s.close();
    process.stdout.write(JSON.stringify(res) + '\n');
    process.exit(0);
  };
  const t0 = Date.now();
  const timer = setInterval(() => {
    const total = Object.values(res.ports).reduce((a, r) => a + r.received, 0);
    if (total >= count * ports.length) finish(false);
    else if (started && Date.now() - last > idleMs) finish(false);
    else if (Date.now() - t0 > timeoutMs) finish(true);
  }, 20);
  timer.unref();
  // keep the process alive on the sockets; the interval decides the end
  setTimeout(() => undefined, timeoutMs + 1000);
}

main();
