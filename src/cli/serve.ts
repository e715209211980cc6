// SPDX-License-Identifier: MIT
// `reflector serve --config FILE`: run the server; SIGHUP reloads, SIGTERM /
// SIGINT stop it in order (exit 0); a second stop signal exits at once (1).
import { ConfigError } from '../config/validate';
import { ReflectorError } from '../errors';
import { createLogger } from '../log';
import { Server } from '../server/server';
import { realDeps } from '../server/adapters';
import { version } from './version';
import type { Io } from './main';

export async function serve(file: string, io: Io): Promise<number> {
  const envLevel = process.env.REFLECTOR_LOG_LEVEL;
  const levels = ['debug', 'info', 'warn', 'error'] as const;
  const fixed = levels.find((l) => l === envLevel);
  if (envLevel !== undefined && !fixed) io.err(`reflector: REFLECTOR_LOG_LEVEL="${envLevel}" is not one of ${levels.join(' | ')}; using log.level\n`);
  const log = createLogger({ level: fixed ?? 'info' });
  let stopping = false;
  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((r) => (resolveStopped = r));
  // cluster mode: another live node took this node's name; stop in order, exit 1
  const onFatal = (err: Error): void => {
    if (stopping) return;
    stopping = true;
    log.error('server stopping: cluster membership lost for good', { err });
    server.stop().finally(() => resolveStopped(1));
  };
  const server = new Server({ configFile: file, deps: realDeps, log, fixedLogLevel: fixed !== undefined, version: version(), onFatal });
  const stop = (signal: string): void => {
    if (stopping) {
      log.warn('second stop signal, exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    log.info('stop signal', { signal });
    server.stop().then(
      () => resolveStopped(0),
      (err) => {
        log.error('stop failed', { err });
        resolveStopped(1);
      },
    );
  };
  const onHup = (): void => {
    log.info('reload signal', { signal: 'SIGHUP' });
    void server.reload('SIGHUP');
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', onHup);
  try {
    await server.start();
  } catch (err) {
    // a stop signal during start: the server stops in order (stopped resolves)
    if (stopping && err instanceof ReflectorError && err.code === 'ERR_CLOSED') {
      log.info('stopped while starting');
      return stopped;
    }
    if (err instanceof ConfigError) {
      for (const p of err.problems) io.err(`${p.file}:${p.line}:${p.column}: ${p.path}: ${p.message}\n`);
      log.error('config invalid, not starting', { problems: err.problems.length });
    } else {
      const code = err instanceof ReflectorError ? err.code : undefined;
      log.error('server failed to start', { err, code });
    }
    await server.stop().catch(() => undefined);
    return 1;
  }
  return stopped;
}
