// SPDX-License-Identifier: MIT
// Relay benchmark (issue #4): lossless delivered packets/s per subscriber
// and relay CPU per packet for redirect (1:1) and split (1:8, 1:64 with
// --fanouts 1,8,64), payloads 64 and 1316 bytes, side by side in one run:
//   engine    the Reflector engine (AF_PACKET RX -> policy table -> TX ring)
//   afpacket  bench/c/afpacket_relay.c: the bare C AF_PACKET relay (TPACKET_V3
//             RX ring, PACKET_TX_RING with qdisc bypass, one send() per burst)
//   c         bench/c/mmsg_relay.c: recvmmsg/sendmmsg on a UDP socket
//   node    a Node.js dgram proxy (the patent's user-level proxy, Figs. 3/5)
//   nft     the kernel: nftables dnat (1:1) / netdev dup (1:N)
// Topology: origin <-veth-> relay; the subscribers are ports 6000.. on the
// origin host, whose veth ingress counts and drops them with nftables (no
// socket, no IP processing). The origin is bench/c/relay_origin.c, paced;
// by default it sends from a PACKET_TX_RING (--origin ring), several times
// what its UDP socket does (--origin udp), so that the relay is the limit.
//
// For each method and case: one run at the origin's full speed, then paced
// runs at falling fractions of what got through until one loses nothing
// (< 0.1 %): the lossless rate, confirmed as the median of --runs runs.
// Overload: the origin at twice that rate; delivered must stay >= 90 % of
// the lossless rate (no collapse).
//   npm run bench -- relay [--runs 3] [--ms 500] [--sizes 64,1316]
//                          [--fanouts 1,8] [--methods engine,afpacket,c,node,nft]
//                          [--origin ring|udp] [--readme]
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { compileC, holdSharedLock, median, runChild } from './lib/measure';
import { Testbed, netnsUnavailable } from '../test/helpers/testbed';

const ROOT = join(__dirname, '..', '..');
const METHODS = ['engine', 'afpacket', 'c', 'node', 'nft'] as const;
const LABEL: Record<Method, string> = { engine: 'engine', afpacket: 'bare C AF_PACKET', c: 'C mmsg relay', node: 'Node proxy', nft: 'nftables' };
type Method = (typeof METHODS)[number];
const P = 5000;
const SUB0 = 6000;
const CLK_TCK = 100;

interface Options { runs: number; ms: number; sizes: number[]; fanouts: number[]; methods: Method[]; origin: 'ring' | 'udp'; readme: boolean }

function parse(args: string[]): Options {
  const o: Options = { runs: 3, ms: 500, sizes: [64, 1316], fanouts: [1, 8], methods: [...METHODS], origin: 'ring', readme: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = args[i + 1];
    if (a === '--runs') o.runs = Number(args[++i]);
    else if (a === '--ms') o.ms = Number(args[++i]);
    else if (a === '--sizes') (o.sizes = v.split(',').map(Number)), i++;
    else if (a === '--fanouts') (o.fanouts = v.split(',').map(Number)), i++;
    else if (a === '--methods') (o.methods = v.split(',') as Method[]), i++;
    else if (a === '--origin') o.origin = args[++i] as 'ring' | 'udp';
    else if (a === '--readme') o.readme = true;
    else throw new Error(`bench relay: unknown option "${a}" (accepted: --runs, --ms, --sizes, --fanouts, --methods, --origin, --readme)`);
  }
  for (const m of o.methods) if (!METHODS.includes(m)) throw new Error(`bench relay: --methods: "${m}" is not one of ${METHODS.join(', ')}`);
  if (o.origin !== 'ring' && o.origin !== 'udp') throw new Error(`bench relay: --origin: "${String(o.origin)}" is not one of ring, udp`);
  return o;
}

interface RelayUnderTest {
  /** CPU seconds the relay has used so far (NaN: not measurable, e.g. kernel softirq) */
  cpu(): number;
  stop(): Promise<void>;
}

function procCpu(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

async function readyChild(child: ChildProcess, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"ready":true')) resolve();
    });
    child.on('exit', (c) => reject(new Error(`${what} exited ${String(c)}`)));
    setTimeout(() => reject(new Error(`${what} not ready after 5 s`)), 5000).unref();
  });
}

const NODE_PROXY = `const d=require('dgram');const subs=JSON.parse(process.argv[1]);const s=d.createSocket('udp4');
s.on('message',(m)=>{for(const [a,p] of subs)s.send(m,p,a)});
s.bind(${P},process.argv[2],()=>{try{s.setRecvBufferSize(8<<20);s.setSendBufferSize(8<<20)}catch{};console.log('{"ready":true}')});`;

async function main(args: string[]): Promise<void> {
  const why = netnsUnavailable();
  if (why) {
    process.stdout.write(`SKIPPED: ${why}\n`);
    return;
  }
  const o = parse(args);
  const origin = compileC(ROOT, 'relay_origin');
  const mmsg = compileC(ROOT, 'mmsg_relay');
  const afp = compileC(ROOT, 'afpacket_relay');
  if ('missing' in origin) throw new Error(origin.missing);
  if ('missing' in mmsg && o.methods.includes('c')) throw new Error(mmsg.missing);
  if ('missing' in afp && o.methods.includes('afpacket')) throw new Error(afp.missing);
  const unlock = await holdSharedLock('/tmp/rf-gyp.lock');
  const tb = await Testbed.create(null, { hosts: ['origin', 'relay'], links: [['origin', 'relay']] });
  const results: Row[] = [];
  try {
    const R = tb.addr('relay');
    const O = tb.addr('origin');
    const dev = tb.iface('relay').name;
    const odev = tb.iface('origin').name;
    // the sink: count and drop the relayed datagrams at the origin's veth ingress
    await tb.exec('origin', ['nft', '-f', '-'], {
      input: `table netdev rfbench_sink {\n chain in { type filter hook ingress device "${odev}" priority 0; policy accept;\n` +
        `  udp dport ${SUB0}-${SUB0 + 63} counter drop\n }\n}\n`,
    });
    const delivered = async (): Promise<number> => {
      const r = await tb.exec('origin', ['nft', 'list', 'chain', 'netdev', 'rfbench_sink', 'in']);
      return Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? NaN);
    };
    // the engine lives in this process for the whole bench
    const { Engine } = await import('../src/engine/engine');
    const { Relays } = await import('../src/relay/relays');
    const engine = o.methods.includes('engine') ? new Engine({ interface: dev, netns: tb.ns('relay'), backend: 'afpacket' }) : null;
    const relays = engine ? new Relays(engine, { refreshMs: 0 }) : null;
    if (engine && relays) {
      await engine.start();
      await relays.start();
    }
    const subs = (n: number): Array<[string, number]> => Array.from({ length: n }, (_, i) => [O, SUB0 + i]);

    const start = async (m: Method, fanout: number): Promise<RelayUnderTest> => {
      if (m === 'engine') {
        await relays!.addRelay({ name: 'bench', listen: `${R}:${P}`, sources: [`${O}/32`], subscribers: subs(fanout).map(([a, p]) => `${a}:${p}`) });
        const c0 = process.cpuUsage();
        return {
          cpu: () => {
            const c = process.cpuUsage(c0);
            return (c.user + c.system) / 1e6;
          },
          stop: () => relays!.removeRelay('bench'),
        };
      }
      if (m === 'c' || m === 'node' || m === 'afpacket') {
        const to = subs(fanout).map(([a, p]) => `${a}:${p}`).join(',');
        const argv = m === 'c'
          ? [(mmsg as { bin: string }).bin, '--listen', `${R}:${P}`, '--to', to]
          : m === 'afpacket'
            ? [(afp as { bin: string }).bin, '--ifname', dev, '--listen', `${R}:${P}`, '--to', to, '--dst-mac', tb.mac('origin')]
            : [process.execPath, '-e', NODE_PROXY, JSON.stringify(subs(fanout)), R];
        // afpacket: like the engine's guard (src/relay/nft.ts), keep the datagrams
        // from the kernel stack (no ICMP port unreachable); ingress runs after the taps
        if (m === 'afpacket') {
          await tb.exec('relay', ['nft', '-f', '-'], {
            input: `table netdev rfbench_guard {\n chain in { type filter hook ingress device "${dev}" priority 0; policy accept;\n` +
              `  ip daddr ${R} udp dport ${P} drop\n }\n}\n`,
          });
        }
        const child = tb.spawn('relay', argv);
        await readyChild(child, `${m} relay`);
        const pid = child.pid!;
        return {
          cpu: () => procCpu(pid),
          stop: async () => {
            child.kill('SIGTERM');
            await new Promise((r) => child.once('exit', r));
            if (m === 'afpacket') await tb.exec('relay', ['nft', 'delete', 'table', 'netdev', 'rfbench_guard']);
          },
        };
      }
      // nft: dnat for 1:1, netdev dup for 1:N
      await tb.exec('relay', ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
      const rmac = tb.mac('relay');
      const omac = tb.mac('origin');
      const script = fanout === 1
        ? `table ip rfbench {\n chain pre { type nat hook prerouting priority dstnat; ip daddr ${R} udp dport ${P} dnat to ${O}:${SUB0}; }\n` +
          ` chain post { type nat hook postrouting priority srcnat; ip daddr ${O} udp dport ${SUB0} snat to ${R}; }\n}\n`
        : `table netdev rfbench {\n chain in { type filter hook ingress device "${dev}" priority 0; policy accept;\n` +
          `  ip daddr ${R} udp dport ${P} meta mark set 0x42 ether saddr set ${rmac} ether daddr set ${omac} ip saddr set ${R} ip daddr set ${O} udp sport set ${P}\n` +
          subs(fanout).map(([, p]) => `  meta mark 0x42 udp dport set ${p} dup to "${dev}"\n`).join('') +
          `  meta mark 0x42 drop\n }\n}\n`;
      await tb.exec('relay', ['nft', '-f', '-'], { input: script });
      return {
        cpu: () => NaN,
        stop: async () => {
          await tb.exec('relay', ['nft', 'delete', 'table', fanout === 1 ? 'ip' : 'netdev', 'rfbench']);
          await tb.exec('relay', ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
        },
      };
    };

    // one measured run: offered rate (0 = full speed) -> per-subscriber delivered pps, loss, CPU/packet
    const measure = async (rut: RelayUnderTest, fanout: number, size: number, pps: number): Promise<Point> => {
      const d0 = await delivered();
      const c0 = rut.cpu();
      const ring = o.origin === 'ring' ? ['--ifname', odev, '--src', `${O}:${P + 1}`, '--dst-mac', tb.mac('relay')] : [];
      const r = await runChild(['ip', 'netns', 'exec', tb.ns('origin'), origin.bin, '--dst', `${R}:${P}`, '--size', String(size), '--pps', String(pps), '--ms', String(o.ms), ...ring]);
      // the tail in flight: a relay that fell behind drains its RX ring (up to
      // 16 MB) after the origin stopped; wait until the count stops moving so
      // that none of it is credited to the next run
      let last = await delivered();
      for (let waited = 0; waited < 3000; waited += 50) {
        await new Promise((res) => setTimeout(res, 50));
        const now = await delivered();
        if (now === last) break;
        last = now;
      }
      const got = last - d0;
      const cpu = rut.cpu() - c0;
      const sent = Number(r.json.sent);
      const secs = Number(r.json.seconds);
      if (process.env.RF_BENCH_DEBUG) process.stdout.write(`  run pps=${pps}: sent ${sent}, delivered ${got} (${d0} before)\n`);
      return { sentPps: sent / secs, perSub: got / fanout / secs, loss: sent ? 1 - got / (sent * fanout) : 1, usPerPkt: got ? (cpu / got) * 1e6 : NaN };
    };

    for (const size of o.sizes) {
      for (const fanout of o.fanouts) {
        for (const m of o.methods) {
          const rut = await start(m, fanout);
          try {
            await measure(rut, fanout, size, 20000); // warm up: neighbours, caches
            const full = await measure(rut, fanout, size, 0);
            let lossless: Point | null = null;
            let rate = 0;
            // the relay kept up with all the origin could send: origin-bound
            const originBound = full.loss < 0.001;
            if (originBound) {
              lossless = full;
            } else {
              for (const f of [1, 0.8, 0.6, 0.45, 0.3, 0.2, 0.1, 0.05]) {
                rate = Math.max(1000, Math.floor(full.perSub * f));
                const p = await measure(rut, fanout, size, rate);
                if (p.loss < 0.001) {
                  lossless = p;
                  break;
                }
              }
            }
            const confirm: Point[] = lossless ? [lossless] : [];
            for (let k = 1; k < o.runs && lossless; k++) confirm.push(await measure(rut, fanout, size, rate));
            const over = lossless && !originBound ? await measure(rut, fanout, size, rate * 2) : null;
            const row: Row = {
              method: m, size, fanout,
              lossless: lossless ? median(confirm.map((p) => p.perSub)) : 0,
              losslessLoss: lossless ? median(confirm.map((p) => p.loss)) : 1,
              usPerPkt: lossless ? median(confirm.map((p) => p.usPerPkt)) : NaN,
              fullPerSub: full.perSub,
              originBound,
              overOffered: over ? over.sentPps : 0,
              overPerSub: over ? over.perSub : 0,
            };
            results.push(row);
            if (m === 'engine' && engine) {
              const names = ['rx_packets', 'relay_in', 'relay_out', 'rx_unmatched', 'drop_not_allowed', 'drop_fragment', 'drop_tx_full', 'tx_ring_full', 'drop_malformed'];
              process.stdout.write(`  engine counters: ${names.map((n) => `${n}=${engine.region.counter(1, n)}`).join(' ')}\n`);
            }
            process.stdout.write(`${m} 1:${fanout} ${size}B: lossless ${Math.round(row.lossless)} pps/sub, ${fmt(row.usPerPkt)} us CPU/pkt, ` +
              `full speed ${Math.round(full.perSub)} pps/sub (origin ${Math.round(full.sentPps)} pps), overload (${Math.round(row.overOffered)} offered) ${Math.round(row.overPerSub)} pps/sub\n`);
          } finally {
            await rut.stop();
          }
        }
      }
    }
    if (relays) await relays.stop();
    if (engine) await engine.stop();
  } finally {
    await tb.destroy();
    unlock();
  }
  const table = render(results, o);
  process.stdout.write('\n' + table + '\n');
  if (o.readme) writeReadme(table, args, o);
}

interface Point { sentPps: number; perSub: number; loss: number; usPerPkt: number }
interface Row {
  method: Method; size: number; fanout: number; lossless: number; losslessLoss: number; usPerPkt: number;
  fullPerSub: number; overOffered: number; overPerSub: number; originBound: boolean;
}

function fmt(x: number, d = 2): string {
  return Number.isFinite(x) ? x.toFixed(d) : '-';
}

function render(rows: Row[], o: Options): string {
  const lines = [
    '| case | method | lossless pps / subscriber | vs bare C AF_PACKET | vs Node proxy | vs C mmsg | CPU us / delivered pkt | overload: offered pps | delivered / subscriber | vs lossless |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const size of o.sizes) {
    for (const fanout of o.fanouts) {
      const of = (m: Method): Row | undefined => rows.find((r) => r.method === m && r.size === size && r.fanout === fanout);
      for (const r of rows.filter((x) => x.size === size && x.fanout === fanout)) {
        const node = of('node')?.lossless ?? NaN;
        const c = of('c')?.lossless ?? NaN;
        const afp = of('afpacket')?.lossless ?? NaN;
        const over = r.originBound ? '- | - | - (origin-bound)' : `${Math.round(r.overOffered)} | ${Math.round(r.overPerSub)} | ${fmt(r.overPerSub / r.lossless)}x`;
        lines.push(`| 1:${fanout} ${size} B | ${LABEL[r.method]} | ${r.originBound ? '>= ' : ''}${Math.round(r.lossless)} | ${fmt(r.lossless / afp)}x | ${fmt(r.lossless / node)}x | ${fmt(r.lossless / c)}x | ` +
          `${fmt(r.usPerPkt)} | ${over} |`);
      }
    }
  }
  return lines.join('\n');
}

function writeReadme(table: string, args: string[], o: Options): void {
  const file = join(ROOT, 'bench', 'README.md');
  const begin = '<!-- relay-results:begin -->';
  const end = '<!-- relay-results:end -->';
  let text = readFileSync(file, 'utf8');
  const block = `${begin}\nMeasured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ` +
    `Linux ${release()}, Node ${process.version}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} (1/5/15 min) at the end; origin: ${o.origin === 'ring' ? 'PACKET_TX_RING' : 'UDP sendmmsg'}.\nCommand: \`npm run bench -- relay${args.filter((a) => a !== '--readme').map((a) => ' ' + a).join('')}\`\n\n${table}\n${end}`;
  const i = text.indexOf(begin);
  const k = text.indexOf(end);
  if (i >= 0 && k > i) text = text.slice(0, i) + block + text.slice(k + end.length);
  else text = text.trimEnd() + `\n\n${RELAY_SECTION}\n\n${block}\n`;
  writeFileSync(file, text);
}

const RELAY_SECTION = `## Relay: redirect and split (issue #4)

Delivered packets/s per subscriber for redirect (1:1) and split (1:N), UDP
payloads of 64 and 1316 bytes, IPv4, on a veth pair: the origin
(\`bench/c/relay_origin.c\`, paced \`sendmmsg\`) sends to P on the relay host;
the relayed datagrams come back to ports 6000.. on the origin host, whose
veth ingress counts and drops them with nftables.

| method | what relays |
|---|---|
| engine | the Reflector engine: AF_PACKET RX ring -> policy table -> per-subscriber header + shared payload -> AF_PACKET TX ring (one copy of the payload per output frame, made by the ring) |
| c | \`bench/c/mmsg_relay.c\`: one UDP socket, \`recvmmsg\` 64 then one \`sendmmsg\` of every datagram to every subscriber |
| node | a Node.js \`dgram\` proxy: on 'message', \`send()\` to every subscriber (the patent's user-level proxy) |
| nft | the kernel alone: nftables \`dnat\`+\`snat\` for 1:1, netdev ingress \`dup\` per subscriber for 1:N |

- **lossless pps / subscriber**: the highest paced rate (falling fractions of what got through at
  full speed) at which every subscriber got >= 99.9 % of what was sent; median of \`--runs\` runs.
- **CPU us / delivered pkt**: user + system CPU of the relay process (engine: the whole bench
  process, its RX thread doing the work) per delivered packet at that rate; nft runs in softirq: -.
- **overload**: the origin paced at twice the lossless rate (as far as it gets): delivered per
  subscriber and its ratio to the lossless rate (goal >= 0.9x: no collapse).
- **>= N (origin-bound)**: the relay lost nothing even with the origin at full speed; the figure is
  the origin's rate on this host (the origin, the relay and the sink share its 2 cores), and no
  overload can be offered.
- Payload copies per output: engine 1 (into the TX ring frame), c 1 (kernel, per \`sendmmsg\`
  entry), node 1 + 1 (kernel, plus the Buffer), nft 1 (\`dup\` clones the skb).`;

export { main };
