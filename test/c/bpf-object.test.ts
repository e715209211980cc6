// SPDX-License-Identifier: MIT
// The committed tc program (engine/bpf/relay.bpf.o) is what its source
// builds to: `make -C engine bpf-check` rebuilds it with Debian's clang-14
// and the pinned flags and compares byte for byte (the bpf2go convention:
// machines without clang load the committed object). Skips loudly, saying
// what is missing, where clang-14 or the libbpf headers are not installed.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..', '..');
const clang = spawnSync('sh', ['-c', 'command -v clang-14'], { encoding: 'utf8' }).status === 0;
const headers = existsSync('/usr/include/bpf/bpf_helpers.h');
const why = !clang ? 'clang-14 is not installed (apt-get install clang-14)' : !headers ? 'the libbpf headers are not installed (apt-get install libbpf-dev)' : '';

if (why) {
  process.stderr.write(`# SKIP bpf-check: ${why}\n`);
  t.plan(0, why);
} else {
  t.test('engine/bpf/relay.bpf.o is rebuilt byte for byte from its source', async (t) => {
    const r = spawnSync('make', ['-s', '-C', join(root, 'engine'), 'bpf-check'], { encoding: 'utf8', timeout: 120_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    t.equal(r.status, 0, `make bpf-check exits 0: ${out.trim().split('\n').slice(-3).join(' | ')}`);
    t.match(out, /rebuilt byte for byte/, 'the rebuilt object equals the committed one');
  });
}
