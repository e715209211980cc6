// SPDX-License-Identifier: MIT
// The TX thread's scheduling options reach the kernel: txPriority makes it a
// SCHED_FIFO thread of that priority, cpuTx pins it, and without them it is
// an ordinary thread (read back from /proc/self/task/*/stat and status).
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { Engine } from '../../src/engine/engine';
import { native } from '../../src/native';

interface Task {
  tid: string;
  policy: number;
  rtPriority: number;
  cpus: string;
}

function tasks(): Task[] {
  const out: Task[] = [];
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // fields after the ")" that ends comm: state is field 3, rt_priority 40, policy 41
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
      const cpus = /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1] ?? '';
      out.push({ tid, rtPriority: Number(f[40 - 3]), policy: Number(f[41 - 3]), cpus });
    } catch {
      // the task ended meanwhile
    }
  }
  return out;
}

const SCHED_FIFO = 1;
const isRoot = process.getuid?.() === 0;

t.test('txPriority and cpuTx reach the TX thread', { skip: !native().engineAvailable() ? 'the addon was built without the engine' : !isRoot ? 'needs root (CAP_SYS_NICE)' : false }, async (t) => {
  const before = new Set(tasks().map((x) => x.tid));
  const e = new Engine({ interface: 'lo', backend: 'null', region: { lanes: 1 }, txPriority: 7, cpuTx: 0 });
  await e.start();
  try {
    const fifo = tasks().filter((x) => !before.has(x.tid) && x.policy === SCHED_FIFO);
    t.equal(fifo.length, 1, 'exactly one new SCHED_FIFO thread (the TX thread; RX stays ordinary)');
    t.equal(fifo[0]?.rtPriority, 7, 'with the priority asked for');
    t.equal(fifo[0]?.cpus, '0', 'pinned to cpuTx');
  } finally {
    await e.stop();
  }

  const plain = new Engine({ interface: 'lo', backend: 'null', region: { lanes: 1 } });
  const before2 = new Set(tasks().map((x) => x.tid));
  await plain.start();
  try {
    const added = tasks().filter((x) => !before2.has(x.tid));
    t.ok(added.length >= 2, 'the engine started its threads');
    t.equal(added.filter((x) => x.policy !== 0).length, 0, 'without txPriority every engine thread is SCHED_OTHER');
  } finally {
    await plain.stop();
  }
});
