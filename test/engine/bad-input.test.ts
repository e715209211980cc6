// SPDX-License-Identifier: MIT
// Bad input to the engine gives a typed error naming the problem: options,
// absurd region sizes (the engine's own message), a missing interface, no
// privileges.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Engine, type EngineOptions } from '../../src/engine/engine';
import { native } from '../../src/native';

const CHILD = join(__dirname, '..', 'fixtures', 'engine-child.js');
// the child runs plain node: without tap's process hooks (NODE_OPTIONS, which
// tap re-adds on spawn, hence `env -u` too), which write into the repository
// (not writable as nobody) and add exit handlers
const childEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('_TAPJS')));
const isRoot = process.getuid?.() === 0;

t.test('options are validated with messages naming the key and the accepted values', async (t) => {
  const bad = (o: unknown, message: string | RegExp): void => {
    t.throws(() => new Engine(o as EngineOptions), { code: 'ERR_INVALID_ARG', message });
  };
  bad({}, /^engine\.interface: expected an interface name, got undefined \(accepted: 1\.\.15 characters/);
  bad({ interface: 'a/b' }, /^engine\.interface: "a\/b" is not a valid interface name \(accepted: 1\.\.15 characters/);
  bad({ interface: 'x'.repeat(16) }, /^engine\.interface: "x{16}" is 16 characters, longer than 15/);
  bad({ interface: 'lo', backend: 'dpdk' }, 'engine.backend: "dpdk" is not a backend (accepted: afpacket, afxdp, null)');
  bad({ interface: 'lo', netns: '../etc' }, /^engine\.netns: "\.\.\/etc" is not a valid netns name/);
  bad({ interface: 'lo', lateDropMs: -1 }, 'engine.lateDropMs: -1 is not in 0..3600000 (0 = never drop late packets)');
  bad({ interface: 'lo', cpuTx: 1.5 }, 'engine.cpuTx: 1.5 is not a CPU number (accepted: -1 = any, 0..1023)');
  bad({ interface: 'lo', txWindowUs: 2000 }, 'engine.txWindowUs: 2000 is not in 0..1000 (microseconds; 0 = each packet at its own time)');
  bad({ interface: 'lo', txPriority: 100 }, 'engine.txPriority: 100 is not a SCHED_FIFO priority (accepted: 0 = ordinary scheduling, 1..99)');
  bad({ interface: 'lo', relayTier: 'xdp' as never }, 'engine.relayTier: "xdp" is not a tier (accepted: kernel, user)');
  bad({ interface: 'lo', kernelOrphanS: 0 }, 'engine.kernelOrphanS: 0 is not an integer in 1..86400 (seconds)');
  bad({ interface: 'lo', txPriority: -1 }, 'engine.txPriority: -1 is not a SCHED_FIFO priority (accepted: 0 = ordinary scheduling, 1..99)');
  bad({ interface: 'lo', burst: 0 }, 'engine.burst: 0 is not an integer in 1..256');
  bad({ interface: 'lo', burst: 300 }, 'engine.burst: 300 is not an integer in 1..256');
  bad({ interface: 'lo', txFrames: 100 }, 'engine.txFrames: 100 is not a power of two in 128..65536 (at least twice engine.burst = 64)');
  bad({ interface: 'lo', burst: 128, txFrames: 128 }, 'engine.txFrames: 128 is not a power of two in 256..65536 (at least twice engine.burst = 128)');
  bad({ interface: 'lo', txFrames: 131072 }, 'engine.txFrames: 131072 is not a power of two in 128..65536 (at least twice engine.burst = 64)');
  bad({ interface: 'lo', rxBlocks: 1 }, 'engine.rxBlocks: 1 is not an integer in 2..4096');
  bad({ interface: 'lo', rxBlocks: 5000 }, 'engine.rxBlocks: 5000 is not an integer in 2..4096');
  bad({ interface: 'lo', rxBlockSize: 5000 }, 'engine.rxBlockSize: 5000 is not a power of two in 4096..67108864');
  bad({ interface: 'lo', rxBlockSize: 2048 }, 'engine.rxBlockSize: 2048 is not a power of two in 4096..67108864');
  bad({ interface: 'lo', iface: 'x' }, /^engine\.iface is not an engine option \(accepted: interface, netns, backend, /);
});

t.test('absurd region sizes get the engine\'s message naming the key and range', async (t) => {
  const region = (r: Record<string, unknown>, message: string | RegExp): void => {
    t.throws(() => new Engine({ interface: 'lo', backend: 'null', region: r }), { code: 'ERR_INVALID_ARG', message });
  };
  region({ slotSize: 3 }, 'region: slotSize = 3 is invalid (accepted: a power of two in 512..16384)');
  region({ lanes: 1000 }, 'region: lanes = 1000 is invalid (accepted: 1..64)');
  region({ submitEntries: 100 }, 'region: submitEntries = 100 is invalid (accepted: a power of two in 16..65536)');
  region({ lanes: 64, slotsPerLane: 65536, slotSize: 16384 }, /^region: \d+ bytes needed, more than the 2147483648-byte limit/);
  region({ slotSize: 'big' }, 'region.slotSize = big is invalid (accepted: an integer, see the engine\'s range)');
  region({ slot_size: 512 }, /^region\.slot_size is not a region parameter \(accepted: lanes, slotsPerLane, /);
});

t.test('interfaceInfo names a missing interface', async (t) => {
  const lo = new Engine({ interface: 'lo', backend: 'null', region: { lanes: 1 } });
  t.same(lo.interfaceInfo(), { mac: '00:00:00:00:00:00', mtu: 65536, ifindex: 1 });
  const missing = new Engine({ interface: 'no-such-if0', backend: 'null', region: { lanes: 1 } });
  t.throws(() => missing.interfaceInfo(), { code: 'ERR_INVALID_ARG', message: /^engine\.interface: interface no-such-if0 not found: No such device/ });
  const ns = new Engine({ interface: 'lo', netns: 'no-such-ns-rf', backend: 'null', region: { lanes: 1 } });
  t.throws(() => ns.interfaceInfo(), { code: 'ERR_INVALID_ARG', message: /netns \/run\/netns\/no-such-ns-rf: No such file or directory/ });
});

if (!native().engineAvailable()) {
  t.test('engine start errors', async (t) => {
    t.plan(0, 'the addon was built without engine/src/engine.c');
  });
} else {
  t.test('a missing interface fails start() with ERR_ENGINE_START naming it', { skip: isRoot ? false : 'needs root (CAP_NET_RAW) to get past the socket to the interface lookup' }, async (t) => {
    const e = new Engine({ interface: 'no-such-if0', backend: 'afpacket', region: { lanes: 1 } });
    await t.rejects(e.start(), { code: 'ERR_ENGINE_START', message: /no-such-if0/ });
    t.equal(e.running, false);
    // and the engine is usable afterwards: nothing was left half-open
    await t.rejects(e.start(), { code: 'ERR_ENGINE_START' });
  });

  t.test('backend afxdp on a missing interface fails start() naming the backend and the interface', { skip: isRoot ? false : 'needs root (CAP_NET_RAW) to get past the socket to the interface lookup' }, async (t) => {
    const e = new Engine({ interface: 'no-such-if0', backend: 'afxdp', region: { lanes: 1 } });
    const err = await e.start().then(
      () => null,
      (x: Error & { code?: string }) => x,
    );
    if (err && /socket\(AF_XDP\) failed/.test(err.message)) {
      t.plan(0, `no AF_XDP sockets here: ${err.message}`);
      return;
    }
    t.ok(err, 'start() rejected');
    t.equal(err?.code, 'ERR_ENGINE_START');
    t.match(err?.message, /afxdp interface no-such-if0: no such interface/);
    t.equal(e.running, false);
  });

  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
  t.test('no privileges: the error names CAP_NET_RAW / permission', { skip: !isRoot ? 'needs root to drop to user nobody' : !setpriv ? 'setpriv is not installed' : false }, async (t) => {
    const r = spawnSync(setpriv as string, ['--reuid=65534', '--regid=65534', '--clear-groups', '/usr/bin/env', '-u', 'NODE_OPTIONS', process.execPath, CHILD, 'start', 'lo', 'afpacket'], {
      encoding: 'utf8',
      timeout: 30_000,
      env: childEnv,
    });
    t.equal(r.status, 0, `child exit code (stderr: ${r.stderr})`);
    t.equal(r.stderr, '');
    const out = JSON.parse(r.stdout) as { code: string; message: string };
    t.equal(out.code, 'ERR_ENGINE_START');
    t.match(out.message, /CAP_NET_RAW|[Pp]ermission|not permitted/);
    t.match(out.message, /\blo\b/, 'names the interface');
  });
}

t.test('the addon refuses a duration it cannot cast to an integer (NaN, negative, past 2^64)', { skip: native().engineAvailable() ? false : 'the addon was built without the engine' }, async (t) => {
  const sab = native().regionAlloc(4096);
  for (const key of ['lateDropNs', 'spinNs', 'txWindowNs']) {
    for (const v of [Number.NaN, -1, 2 ** 64, Infinity]) {
      t.throws(() => native().engineCreate(sab, { backend: 'null', ifname: 'lo', [key]: v }), { name: 'RangeError', message: `${key}: expected a number of ns in 0..2^64` }, `${key} = ${v}`);
    }
  }
});
