// SPDX-License-Identifier: MIT
// Relay test fixture: receive UDP datagrams on ADDR:PORT and append their
// payloads to FILE (an MPEG-TS capture), until IDLE ms pass without one
// after the first (or TIMEOUT ms in total). Prints {"ready":true}, then
// {"datagrams":N,"bytes":B}.
//   node ts-capture.js ADDR PORT FILE IDLE_MS TIMEOUT_MS
import { createSocket } from 'node:dgram';
import { openSync, writeSync, closeSync } from 'node:fs';

const [addr, port, file, idle, timeout] = process.argv.slice(2);
const fd = openSync(file, 'w');
const s = createSocket(addr.includes(':') ? 'udp6' : 'udp4');
let n = 0;
let bytes = 0;
let last = 0;
s.on('message', (m) => {
  writeSync(fd, m);
  n++;
  bytes += m.length;
  last = Date.now();
});
s.bind(Number(port), addr, () => {
  s.setRecvBufferSize(4 << 20);
  process.stdout.write('{"ready":true}\n');
});
const t0 = Date.now();
const timer = setInterval(() => {
  if ((n > 0 && Date.now() - last > Number(idle)) || Date.now() - t0 > Number(timeout)) {
    clearInterval(timer);
    s.close();
    closeSync(fd);
    process.stdout.write(JSON.stringify({ datagrams: n, bytes }) + '\n');
  }
}, 50);
