// SPDX-License-Identifier: MIT
// Measuring child processes for benchmarks: run one and parse its JSON line,
// wrap it in /usr/bin/time for CPU and context switches (wait4 rusage of
// every thread), count its system calls with strace -c -f, compile C
// baselines with gcc, and take medians.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileBpf, compileC } from '../../test/helpers/cc';

export interface Rusage {
  cpuUser: number;
  cpuSys: number;
  ctxVoluntary: number;
  ctxInvoluntary: number;
  elapsed: number;
}

export interface ChildRun {
  json: Record<string, unknown>;
  rusage: Rusage | null;
  stderr: string;
}

let seq = 0;

function tmp(name: string): string {
  return join(tmpdir(), `rf-bench-${process.pid}-${seq++}-${name}`);
}

/** Run argv (optionally under /usr/bin/time); resolves with its last JSON stdout line. */
export function runChild(argv: string[], opts: { timeMs?: boolean; timeoutMs?: number } = {}): Promise<ChildRun> {
  const timeFile = opts.timeMs ? tmp('time') : null;
  const full = timeFile ? ['/usr/bin/time', '-f', '%U %S %w %c %e', '-o', timeFile, ...argv] : argv;
  return new Promise((resolve, reject) => {
    execFile(full[0], full.slice(1), { encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${argv.join(' ')} failed: ${stderr.trim() || err.message}`));
        return;
      }
      const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (!line) {
        reject(new Error(`${argv.join(' ')} printed no JSON: ${stdout.trim()} ${stderr.trim()}`));
        return;
      }
      let rusage: Rusage | null = null;
      if (timeFile && existsSync(timeFile)) {
        const f = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(/\s+/).map(Number);
        rusage = { cpuUser: f[0], cpuSys: f[1], ctxVoluntary: f[2], ctxInvoluntary: f[3], elapsed: f[4] };
        rmSync(timeFile, { force: true });
      }
      resolve({ json: JSON.parse(line) as Record<string, unknown>, rusage, stderr });
    });
  });
}

/** System calls by name made by argv and its threads (strace -c -f). */
export async function straceCounts(argv: string[], timeoutMs = 60_000): Promise<{ json: Record<string, unknown>; calls: Record<string, number> }> {
  const out = tmp('strace');
  const r = await runChild(['strace', '-f', '-c', '-o', out, ...argv], { timeoutMs });
  const calls = parseStrace(out);
  rmSync(out, { force: true });
  return { json: r.json, calls };
}

/** Calls by name from an `strace -c` summary file. */
export function parseStrace(file: string): Record<string, number> {
  const calls: Record<string, number> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    // "% time  seconds  usecs/call  calls  errors syscall"
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$/.exec(line);
    if (m && m[2] !== 'total') calls[m[2]] = Number(m[1]);
  }
  return calls;
}

/**
 * Attach `strace -c -f` to this process (every thread) until the returned
 * stop() is called: counts the system calls of a measurement window only,
 * without the start-up of node, Piscina or the engine.
 */
export async function straceSelf(): Promise<() => Promise<Record<string, number>>> {
  const file = tmp('strace-self');
  const child = spawn('strace', ['-c', '-f', '-p', String(process.pid), '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: string) => {
      err += d;
      if (err.includes('attached')) resolve();
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`strace exited ${code}: ${err.trim()}`)));
  });
  // threads attach one by one; let the last ones settle
  await new Promise((r) => setTimeout(r, 100));
  return async () => {
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    child.kill('SIGINT');
    await exited;
    const calls = parseStrace(file);
    rmSync(file, { force: true });
    return calls;
  };
}

/** System calls on the send path: sends, waits for room, wake-ups. */
export const DATA_PATH_SYSCALLS = [
  'sendto', 'sendmsg', 'sendmmsg', 'write', 'writev', 'poll', 'ppoll', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2',
  'select', 'pselect6', 'futex', 'sched_yield', 'nanosleep', 'clock_nanosleep', 'io_uring_enter', 'read',
];

export function dataPathCalls(calls: Record<string, number>): number {
  return DATA_PATH_SYSCALLS.reduce((s, n) => s + (calls[n] ?? 0), 0);
}

/** Compile bench/c/NAME.c into engine/out/NAME when the binary is older than the source. */
export function compileBench(name: string, extra: string[] = []): { bin: string } | { missing: string } {
  return compileC('bench/c', name, extra);
}

/** Compile bench/c/NAME.bpf.c into engine/out/NAME.bpf.o when it is older than the source. */
export function compileBenchBpf(name: string): { bin: string } | { missing: string } {
  return compileBpf('bench/c', name);
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Hold a shared flock on `path` until release() (a `flock -s` child holds
 * it): engineers rebuild the addon under `flock /tmp/rf-gyp.lock`, and a
 * rebuild deletes build/Release/reflector.node under a running benchmark.
 */
export async function holdSharedLock(path: string, timeoutMs = 120_000): Promise<() => void> {
  // -F: flock execs the command itself, so killing the child releases the
  // lock (with a fork, the orphaned sleep kept it for a day)
  const child = spawn('flock', ['-F', '-s', '-w', String(Math.ceil(timeoutMs / 1000)), path, '-c', 'echo locked; exec sleep 86400'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', () => resolve());
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`could not take a shared lock on ${path} (flock exited ${code})`)));
  });
  return () => {
    child.kill('SIGTERM');
  };
}

/** A point in time of this process: the clock and its resource usage. */
export interface UsageMark {
  t: bigint;
  ru: NodeJS.ResourceUsage;
}

export function usageMark(): UsageMark {
  return { t: process.hrtime.bigint(), ru: process.resourceUsage() };
}

/** Seconds, CPU seconds and context switches of this process between two marks. */
export function usageBetween(a: UsageMark, b: UsageMark): {
  seconds: number;
  cpuUser: number;
  cpuSys: number;
  ctxVoluntary: number;
  ctxInvoluntary: number;
} {
  return {
    seconds: Number(b.t - a.t) / 1e9,
    cpuUser: (b.ru.userCPUTime - a.ru.userCPUTime) / 1e6,
    cpuSys: (b.ru.systemCPUTime - a.ru.systemCPUTime) / 1e6,
    ctxVoluntary: b.ru.voluntaryContextSwitches - a.ru.voluntaryContextSwitches,
    ctxInvoluntary: b.ru.involuntaryContextSwitches - a.ru.involuntaryContextSwitches,
  };
}

/**
 * Set a /proc/sys value for a bench run and return the function that puts
 * the old value back. It is put back also when the process exits or is
 * stopped by SIGINT, SIGTERM or SIGHUP first (a bench killed mid-run must
 * not leave the host's setting changed): each signal handler restores,
 * removes itself and, when no other handler is left (test/helpers/testbed.ts
 * keeps the same rule), raises the signal again. A value that is already
 * set (another bench running at the same time set it) is left alone and
 * not put back by this run: the run that set it puts it back.
 */
export function sysctlForRun(path: string, value: string): () => void {
  const old = readFileSync(path, 'utf8').trim();
  if (old === value) return () => undefined;
  let done = false;
  const restore = (): void => {
    if (done) return;
    done = true;
    writeFileSync(path, old);
    process.removeListener('exit', restore);
    for (const [sig, h] of handlers) process.removeListener(sig, h);
  };
  const handlers: Array<[NodeJS.Signals, () => void]> = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => {
    const h = (): void => {
      restore();
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, h);
    return [sig, h];
  });
  process.on('exit', restore);
  writeFileSync(path, value);
  return restore;
}
