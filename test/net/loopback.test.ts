// SPDX-License-Identifier: MIT
// enableLoopbackDelivery in a namespace sets lo's route_localnet and
// accept_local there (and only there), with no `sysctl` (procps) on PATH: a
// fresh machine has iproute2 and coreutils, not necessarily procps. A
// namespace that does not exist is an ERR_ENGINE_START naming it.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { enableLoopbackDelivery, LOOPBACK_SYSCTLS } from '../../src/net/loopback';
import { Testbed, skipUnlessRoot } from '../helpers/testbed';

const proc = (key: string): string => `/proc/sys/${key.replace(/\./g, '/')}`;

if (!skipUnlessRoot(t)) {
  t.test('in a namespace, without sysctl on PATH', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'rf-nosysctl-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    for (const d of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
      let names: string[] = [];
      try {
        names = readdirSync(d);
      } catch {
        continue;
      }
      for (const n of names) if (n !== 'sysctl' && !existsSync(join(dir, n))) symlinkSync(join(d, n), join(dir, n));
    }
    const saved = process.env.PATH;
    process.env.PATH = dir;
    t.teardown(() => {
      process.env.PATH = saved;
    });
    const tb = await Testbed.create(t, { hosts: ['a'] });
    const ns = tb.ns('a');
    const host = LOOPBACK_SYSCTLS.map((k) => execFileSync('cat', [proc(k)], { encoding: 'utf8' }).trim());
    t.same(await enableLoopbackDelivery(ns), [...LOOPBACK_SYSCTLS], 'both were off in a new namespace, both turned on');
    for (const k of LOOPBACK_SYSCTLS) t.equal(execFileSync('ip', ['netns', 'exec', ns, 'cat', proc(k)], { encoding: 'utf8' }).trim(), '1', `${k} = 1 in the namespace`);
    t.same(LOOPBACK_SYSCTLS.map((k) => execFileSync('cat', [proc(k)], { encoding: 'utf8' }).trim()), host, 'the host namespace unchanged');
    t.same(await enableLoopbackDelivery(ns), [], 'a second time: nothing to change');
    await t.rejects(enableLoopbackDelivery('rf-no-such-ns'), { code: 'ERR_ENGINE_START', message: /loopback: cannot set net\.ipv4\.conf\.lo\.route_localnet=1 in namespace rf-no-such-ns/ });
  });
}
