// SPDX-License-Identifier: MIT
// The relays manager and the policy encoding without a real engine: a fake
// engine on the other ends of the policy and event rings decodes every
// message at the byte positions of engine/src/relay.h and acks it (or
// refuses it, or stays silent). Checks validation messages, loop
// rejection, next-hop use, acks, refusals, timeouts (undone, slots held),
// concurrent adds, the guards and limits, engine events and stop().
import t from 'tap';
import type { Test } from 'tap';
import { ReflectorError } from '../../src/errors';
import type { NextHop } from '../../src/net/neighbour';
import { EVENT, EVENT_ERROR, EVENT_POLICY_ACK, HDR, POLICY_MSG } from '../../src/region/layout';
import { Region } from '../../src/region/region';
import { RingConsumer, RingProducer } from '../../src/region/ring';
import { OP, OUT_F_DSCP, OUT_F_MAC_VALID, OUT_F_TTL, OUTPUT_ADD, OUTPUT_MAC, RELAY_ADD, RELAY_ALLOW, RELAY_LIMIT } from '../../src/relay/policy';
import { Relays } from '../../src/relay/relays';

interface Msg { op: number; seq: number; body: Buffer }

class FakeEngine {
  readonly msgs: Msg[] = [];
  mode: 'ack' | 'silent' | number = 'ack';
  private readonly cons: RingConsumer;
  private readonly prod: RingProducer;
  private readonly timer: NodeJS.Timeout;

  constructor(readonly region: Region) {
    const u32 = new Uint32Array(region.sab);
    this.cons = new RingConsumer(region.sab, u32[HDR.policyOff >> 2]);
    this.prod = new RingProducer(region.sab, u32[HDR.eventOff >> 2]);
    this.timer = setInterval(() => this.poll(), 1);
  }

  private poll(): void {
    const n = this.cons.peek(64);
    const dv = new DataView(this.region.sab);
    for (let k = 0; k < n; k++) {
      const off = this.cons.entryOffset(k);
      const m: Msg = {
        op: dv.getUint32(off + POLICY_MSG.op, true),
        seq: dv.getUint32(off + POLICY_MSG.seq, true),
        body: Buffer.from(new Uint8Array(this.region.sab, off + POLICY_MSG.body, POLICY_MSG.size - POLICY_MSG.body)),
      };
      this.msgs.push(m);
      if (this.mode === 'silent') continue;
      this.prod.reserve(1);
      const e = this.prod.entryOffset(0);
      dv.setUint32(e + EVENT.type, EVENT_POLICY_ACK, true);
      dv.setBigUint64(e + EVENT.a, BigInt(m.seq), true);
      dv.setBigUint64(e + EVENT.b, BigInt(this.mode === 'ack' ? 0 : this.mode), true);
      this.prod.submit();
    }
    if (n) this.cons.release(n);
  }

  /** An event other than an ack (RF_EVENT_ERROR, ...), as the engine's RX thread posts it. */
  event(type: number, a: bigint, b: bigint): void {
    const dv = new DataView(this.region.sab);
    this.prod.reserve(1);
    const e = this.prod.entryOffset(0);
    dv.setUint32(e + EVENT.type, type, true);
    dv.setBigUint64(e + EVENT.a, a, true);
    dv.setBigUint64(e + EVENT.b, b, true);
    this.prod.submit();
  }

  close(): void {
    clearInterval(this.timer);
  }
}

function hop(dst: string, dev = 'veth0'): Promise<NextHop> {
  return Promise.resolve({ family: dst.includes(':') ? 6 : 4, dst, dev, ifindex: 2, mtu: 1500, gateway: null,
    srcAddr: '198.18.0.2', mac: '02:00:00:00:00:07', srcMac: '02:00:00:00:00:01' } as NextHop);
}

let available = true;
try {
  Region.create({});
} catch (e) {
  available = false;
  t.plan(0, `the addon is not built: ${(e as Error).message}`);
}

async function setup(t: Test, resolve = (d: string) => hop(d)): Promise<{ fake: FakeEngine; relays: Relays }> {
  const r = Region.create({});
  const fake = new FakeEngine(r);
  const relays = new Relays({ region: r, interface: 'veth0' }, { refreshMs: 0, ackTimeoutMs: 300, resolve, isLocal: async (a) => a.startsWith('198.18.0.') || a.startsWith('2001:db8:') });
  t.teardown(async () => {
    await relays.stop();
    fake.close();
  });
  await relays.start();
  return { fake, relays };
}

async function rejects(t: Test, p: Promise<unknown>, code: string, msg: RegExp, what: string): Promise<void> {
  try {
    await p;
    t.fail(`${what}: resolved`);
  } catch (e) {
    t.ok(e instanceof ReflectorError && e.code === code && msg.test(e.message), `${what}: ${(e as Error).message}`);
  }
}

if (available) {
  t.test('messages carry relay.h byte positions', async (t) => {
    const { fake, relays } = await setup(t);
    await relays.addRelay({ name: 'news', listen: '198.18.0.2:5000', sources: ['198.18.1.0/24'] });
    await relays.addOutput('news', '198.18.0.9:6000', { dscp: 46, ttl: 9, source: '198.18.0.2:7000' });
    const [add, allow, out] = fake.msgs;
    t.equal(add.op, OP.RELAY_ADD);
    t.equal(add.body.readUInt32LE(RELAY_ADD.relayId), 1, 'relay id');
    t.equal(add.body[RELAY_ADD.family], 4);
    t.equal(add.body.readUInt16BE(RELAY_ADD.port), 5000, 'port in network order');
    t.same([...add.body.subarray(RELAY_ADD.addr, RELAY_ADD.addr + 4)], [198, 18, 0, 2], 'address as on the wire');
    t.equal(add.body.subarray(RELAY_ADD.name, RELAY_ADD.name + 4).toString(), 'news');
    t.equal(allow.op, OP.RELAY_ALLOW);
    t.equal(allow.body[RELAY_ALLOW.length], 24);
    t.same([...allow.body.subarray(RELAY_ALLOW.addr, RELAY_ALLOW.addr + 4)], [198, 18, 1, 0]);
    t.equal(out.op, OP.OUTPUT_ADD);
    t.equal(out.body[OUTPUT_ADD.flags], OUT_F_MAC_VALID | OUT_F_DSCP | OUT_F_TTL);
    t.equal(out.body[OUTPUT_ADD.dscp], 46);
    t.equal(out.body[OUTPUT_ADD.ttl], 9);
    t.equal(out.body.readUInt16BE(OUTPUT_ADD.srcPort), 7000);
    t.equal(out.body.readUInt16BE(OUTPUT_ADD.dstPort), 6000);
    t.equal(out.body.subarray(OUTPUT_ADD.dstMac, OUTPUT_ADD.dstMac + 6).toString('hex'), '020000000007', 'next-hop MAC from the resolver');
    t.same([...out.body.subarray(OUTPUT_ADD.dstAddr, OUTPUT_ADD.dstAddr + 4)], [198, 18, 0, 9]);
    t.ok(new Set(fake.msgs.map((m) => m.seq)).size === fake.msgs.length, 'every message has its own seq');
    // default source: the relay's listen address and port
    await relays.addOutput('news', '198.18.0.10:6000');
    const d = fake.msgs[3].body;
    t.equal(d.readUInt16BE(OUTPUT_ADD.srcPort), 5000);
    t.same([...d.subarray(OUTPUT_ADD.srcAddr, OUTPUT_ADD.srcAddr + 4)], [198, 18, 0, 2]);
    t.equal(d[OUTPUT_ADD.flags], OUT_F_MAC_VALID, 'no DSCP/TTL flags by default');
  });

  t.test('validation names the key and the problem', async (t) => {
    const { relays } = await setup(t);
    await relays.addRelay({ name: 'a', listen: '198.18.0.2:5000', sources: ['198.18.0.0/16'], subscribers: ['198.18.0.3:6000'] });
    const bad: Array<[Promise<unknown>, RegExp]> = [
      [relays.addRelay({ name: 'a', listen: '198.18.0.2:5001', sources: ['198.18.0.0/16'] }), /relay "a" already exists/],
      [relays.addRelay({ name: 'b', listen: '198.18.0.2:5000', sources: ['198.18.0.0/16'] }), /198\.18\.0\.2:5000 is already relay "a"'s listen address/],
      [relays.addRelay({ name: 'b', listen: '198.18.0.3:6000', sources: ['198.18.0.0/16'] }), /is a subscriber of relay "a" \(the packets would loop\)/],
      [relays.addRelay({ name: 'b', listen: '198.18.0.2:5001', sources: [] }), /at least one source prefix is required/],
      [relays.addRelay({ name: 'b', listen: '198.18.0.2:5001', sources: ['2001:db8::/32'] }), /sources\[0\]: 2001:db8::\/32 is IPv6/],
      [relays.addRelay({ name: 'b', listen: 'nowhere:1', sources: ['198.18.0.0/16'] }), /"nowhere" in "nowhere:1" is not an IPv4 or IPv6 address/],
      [relays.addRelay({ name: '', listen: '198.18.0.2:5001', sources: ['198.18.0.0/16'] }), /relay\.name/],
      [relays.addOutput('a', '198.18.0.2:5000'), /is relay "a"'s listen address \(the packets would loop\)/],
      [relays.addOutput('a', '198.18.0.3:6000'), /subscriber 198\.18\.0\.3:6000 already exists/],
      [relays.addOutput('a', '[2001:db8::3]:6000'), /IPv6, the relay listens on IPv4/],
      [relays.addOutput('a', '198.18.0.4:6000', { dscp: 64 }), /dscp 64 is not in 0\.\.63/],
      [relays.addOutput('a', '198.18.0.4:6000', { ttl: 0 }), /ttl 0 is not in 1\.\.255/],
      [relays.addOutput('zz', '198.18.0.4:6000'), /relay "zz" does not exist \(relays: a\)/],
      [relays.removeOutput('a', '198.18.0.9:6000'), /relay "a" has no subscriber 198\.18\.0\.9:6000 \(subscribers: 198\.18\.0\.3:6000\)/],
      [relays.removeRelay('zz'), /relay "zz" does not exist/],
    ];
    for (const [p, re] of bad) await rejects(t, p, 'ERR_INVALID_ARG', re, re.source);
    t.same(relays.list(), [{ name: 'a', listen: '198.18.0.2:5000', sources: ['198.18.0.0/16'], subscribers: ['198.18.0.3:6000'] }], 'state unchanged by refused calls');
  });

  t.test('next hops: unresolved outputs drop until a refresh finds them, changed MACs are pushed', async (t) => {
    let mac: string | null = null;
    const { fake, relays } = await setup(t, (d) =>
      mac === null ? Promise.reject(new ReflectorError('ERR_NO_NEIGHBOUR', `no answer from ${d}`)) : hop(d).then((h) => ({ ...h, mac: mac! })),
    );
    await relays.addRelay({ name: 'a', listen: '198.18.0.2:5000', sources: ['198.18.0.0/16'], subscribers: ['198.18.0.3:6000'] });
    const add = fake.msgs.find((m) => m.op === OP.OUTPUT_ADD)!;
    t.equal(add.body[OUTPUT_ADD.flags] & OUT_F_MAC_VALID, 0, 'added without a next hop: the engine drops and counts (no_neighbour)');
    mac = '02:00:00:00:00:aa';
    await relays.refreshNextHops();
    let set = fake.msgs.filter((m) => m.op === OP.OUTPUT_SET_MAC);
    t.equal(set.length, 1, 'the refresh pushed the MAC it found');
    t.equal(set[0].body.subarray(OUTPUT_MAC.dstMac, OUTPUT_MAC.dstMac + 6).toString('hex'), '0200000000aa');
    t.equal(set[0].body[OUTPUT_MAC.valid], 1);
    await relays.refreshNextHops();
    t.equal(fake.msgs.filter((m) => m.op === OP.OUTPUT_SET_MAC).length, 1, 'an unchanged MAC sends nothing');
    mac = null;
    await relays.refreshNextHops();
    set = fake.msgs.filter((m) => m.op === OP.OUTPUT_SET_MAC);
    t.equal(set.length, 2, 'a lost neighbour is pushed too');
    t.equal(set[1].body[OUTPUT_MAC.valid], 0, 'as not valid');
  });

  t.test('a subscriber routed through another interface is refused', async (t) => {
    const { relays } = await setup(t, (d) => hop(d, 'eth9'));
    await relays.addRelay({ name: 'a', listen: '198.18.0.2:5000', sources: ['198.18.0.0/16'] });
    await rejects(t, relays.addOutput('a', '198.18.0.3:6000'), 'ERR_INVALID_ARG', /route goes through eth9, not the engine's interface veth0/, 'other interface');
  });

  t.test('refusals, silence and stop()', async (t) => {
    const { fake, relays } = await setup(t);
    fake.mode = 17; // EEXIST
    await rejects(t, relays.addRelay({ name: 'a', listen: '198.18.0.2:5000', sources: ['198.18.0.0/16'] }), 'ERR_POLICY', /relay "a" \(198\.18\.0\.2:5000\): the engine refused it: EEXIST/, 'engine refusal');
    t.same(relays.list(), [], 'a refused relay is not kept');
    fake.mode = 'silent';
    await rejects(t, relays.addRelay({ name: 'b', listen: '198.18.0.2:5001', sources: ['198.18.0.0/16'] }), 'ERR_RING_TIMEOUT', /no answer from the engine within 300 ms/, 'silent engine');
    const pending = relays.addRelay({ name: 'c', listen: '198.18.0.2:5002', sources: ['198.18.0.0/16'] });
    await new Promise((r) => setTimeout(r, 20));
    await relays.stop();
    await rejects(t, pending, 'ERR_CLOSED', /stopped before the engine answered/, 'stop() rejects what is pending');
    await rejects(t, relays.addRelay({ name: 'd', listen: '198.18.0.2:5003', sources: ['198.18.0.0/16'] }), 'ERR_CLOSED', /stopped/, 'after stop()');
  });
}

async function seen(fake: FakeEngine, n: number): Promise<void> {
  const t0 = Date.now();
  while (fake.msgs.length < n && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 2));
}

if (available) {
  t.test('a change the engine does not answer in time is undone, and its counter slot is held until answered', async (t) => {
    const { fake, relays } = await setup(t);
    fake.mode = 'silent';
    await rejects(t, relays.addRelay({ name: 'a', listen: '198.18.0.2:5000', sources: ['198.18.0.0/16'] }), 'ERR_RING_TIMEOUT', /no answer from the engine within 300 ms/, 'silent engine');
    await seen(fake, 2);
    const [add, undo] = fake.msgs;
    t.equal(add.op, OP.RELAY_ADD);
    t.equal(undo?.op, OP.RELAY_REMOVE, 'a removal is queued right behind the unanswered add');
    t.equal(undo.body.readUInt32LE(0), add.body.readUInt32LE(RELAY_ADD.relayId), 'for the same relay id');
    // the engine wakes up: the next relay must not get the counter slot the first may hold
    fake.mode = 'ack';
    await relays.addRelay({ name: 'b', listen: '198.18.0.2:5001', sources: ['198.18.0.0/16'] });
    const b = fake.msgs.filter((m) => m.op === OP.RELAY_ADD)[1];
    t.not(b.body.readUInt32LE(RELAY_ADD.counter), add.body.readUInt32LE(RELAY_ADD.counter), 'a slot the engine may still use is not handed out');
    t.same(relays.list().map((r) => r.name), ['b'], 'the timed-out relay is not in the state');
    // an output add that times out is undone the same way
    fake.mode = 'silent';
    const n = fake.msgs.length;
    await rejects(t, relays.addOutput('b', '198.18.0.9:6000'), 'ERR_RING_TIMEOUT', /no answer/, 'silent output add');
    await seen(fake, n + 2);
    const last = fake.msgs.slice(-2);
    t.same(last.map((m) => m.op), [OP.OUTPUT_ADD, OP.OUTPUT_REMOVE], 'OUTPUT_ADD, then its OUTPUT_REMOVE');
    fake.mode = 'ack';
    t.same(relays.list()[0].subscribers, [], 'not subscribed');
  });

  t.test('two concurrent adds of one name: exactly one wins, the other is refused at once', async (t) => {
    const { relays } = await setup(t);
    const spec = { name: 'same', listen: '198.18.0.2:5000', sources: ['198.18.0.0/16'] };
    const r = await Promise.allSettled([relays.addRelay(spec), relays.addRelay({ ...spec, listen: '198.18.0.2:5001' })]);
    t.same(r.map((x) => x.status), ['fulfilled', 'rejected']);
    t.match((r[1] as PromiseRejectedResult).reason, { code: 'ERR_INVALID_ARG', message: 'relay "same" already exists' });
    const l = await Promise.allSettled([relays.addRelay({ ...spec, name: 'x' }), relays.addRelay({ ...spec, name: 'y', listen: '198.18.0.2:5002' })]);
    t.equal(l.filter((x) => x.status === 'rejected').length, 1, 'one listen address, one relay');
  });

  t.test('guards: any-source only when allowed, listen address local, names and limits checked', async (t) => {
    const { fake, relays } = await setup(t);
    await rejects(t, relays.addRelay({ name: 'open', listen: '198.18.0.2:5000', sources: ['0.0.0.0/0'] }), 'ERR_INVALID_ARG', /sources\[0\]: 0\.0\.0\.0\/0 lets any host send through this relay \(an open amplifier\).*allow_any_source: true/, 'IPv4 any-source');
    await rejects(t, relays.addRelay({ name: 'open6', listen: '[2001:db8::2]:5000', sources: ['::/0'] }), 'ERR_INVALID_ARG', /::\/0 lets any host send/, 'IPv6 any-source');
    await rejects(t, relays.addRelay({ name: 'empty', listen: '198.18.0.2:5000', sources: [] }), 'ERR_INVALID_ARG', /^(?!.*0\.0\.0\.0\/0).*at least one source prefix is required/, 'the refusal no longer suggests 0.0.0.0/0');
    await relays.addRelay({ name: 'open', listen: '198.18.0.2:5000', sources: ['0.0.0.0/0'], allowAnySource: true });
    await rejects(t, relays.addRelay({ name: 'transit', listen: '203.0.113.5:5000', sources: ['198.18.0.0/16'] }), 'ERR_INVALID_ARG', /relay "transit"\.listen: 203\.0\.113\.5 is not an address of the server's namespace/, 'a listen address that is not local');
    await rejects(t, relays.addRelay({ name: 'x'.repeat(33), listen: '198.18.0.2:5001', sources: ['198.18.0.0/16'] }), 'ERR_INVALID_ARG', /relay\.name: "x{33}" is 33 characters, longer than 32/, 'relay name over 32 bytes');
    await rejects(t, relays.addRelay({ name: 'a b', listen: '198.18.0.2:5001', sources: ['198.18.0.0/16'] }), 'ERR_INVALID_ARG', /relay\.name: "a b" is not a valid relay name/, 'relay name with a space');
    await rejects(t, relays.addRelay({ name: 'z', listen: '[fe80::1%eth0]:5001', sources: ['198.18.0.0/16'] }), 'ERR_INVALID_ARG', /has a zone id \("%eth0"\)/, 'zone id');
    await rejects(t, relays.addRelay({ name: 'z', listen: '198.18.0.2:5001', sources: ['198.18.0.0/16'], maxPps: -1 }), 'ERR_INVALID_ARG', /maxPps: -1 is not an integer in 0\.\.4294967295/, 'negative pps');
    await rejects(t, relays.addRelay({ name: 'z', listen: '198.18.0.2:5001', sources: ['198.18.0.0/16'], maxPps: 2 ** 32 }), 'ERR_INVALID_ARG', /maxPps: 4294967296 is not/, 'pps over uint32');
    await rejects(t, relays.addRelay({ name: 'z', listen: '198.18.0.2:5001', sources: ['198.18.0.0/16'], maxBps: 1.5 }), 'ERR_INVALID_ARG', /maxBps: 1\.5 is not an integer/, 'fractional bps');
    // limits: sent before the sources, live changes, bits -> bytes
    const before = fake.msgs.length;
    await relays.addRelay({ name: 'lim', listen: '198.18.0.2:5002', sources: ['198.18.0.0/16'], maxPps: 1000, maxBps: 8_000_001 });
    const ops = fake.msgs.slice(before).map((m) => m.op);
    t.same(ops, [OP.RELAY_ADD, OP.RELAY_LIMIT, OP.RELAY_ALLOW], 'the limit is in force before any source is allowed');
    const lim = fake.msgs[before + 1].body;
    t.equal(lim.readUInt32LE(RELAY_LIMIT.relayId), fake.msgs[before].body.readUInt32LE(RELAY_ADD.relayId));
    t.equal(lim.readUInt32LE(RELAY_LIMIT.pps), 1000);
    t.equal(lim.readBigUInt64LE(RELAY_LIMIT.bytesPerS), 1_000_001n, 'bits per second become bytes per second, rounded up');
    t.same(relays.limitOf('lim'), { maxPps: 1000, maxBps: 8_000_008 });
    await relays.setLimit('lim', { maxPps: 0, maxBps: 0 });
    t.equal(fake.msgs.at(-1)!.op, OP.RELAY_LIMIT);
    t.equal(fake.msgs.at(-1)!.body.readUInt32LE(RELAY_LIMIT.pps), 0, 'no limit');
    const n = fake.msgs.length;
    await relays.setLimit('lim', { maxPps: 0 });
    t.equal(fake.msgs.length, n, 'an unchanged limit sends nothing');
  });

  t.test('engine error events reach listeners without a request pending', async (t) => {
    const { fake, relays } = await setup(t);
    const got: unknown[] = [];
    relays.on('event', (e) => got.push(e));
    // the RX thread's RF_EVENT_ERROR (a = thread 1, b = errno 12, ENOMEM)
    fake.event(EVENT_ERROR, 1n, 12n);
    const t0 = Date.now();
    while (got.length === 0 && Date.now() - t0 < 2000) await new Promise((res) => setTimeout(res, 10));
    t.match(got, [{ type: 'engine', thread: 'rx', code: 'ERR_ENGINE', reason: /RX thread reported errno 12/ }]);
  });
}
