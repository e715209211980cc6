// SPDX-License-Identifier: MIT
// Structured logs through pino: one JSON object per line (time, level, msg,
// fields) on stderr, for lifecycle events and errors only, never one per
// packet. An Error anywhere in the fields is written with its name, message,
// code, stack and cause chain; bigints as decimal strings.
import pino from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  /** Change the minimum level (config reloads); children made later inherit it. */
  setLevel(level: LogLevel): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** where each line goes (default: stderr, written synchronously so nothing is lost at exit) */
  write?: (line: string) => void;
  fields?: LogFields;
}

/** The JSON form of an error: what the log line carries, its causes included (at most 8 deep, cycles cut). */
export function serializeError(err: Error, depth = 0): Record<string, unknown> {
  const code = (err as { code?: unknown }).code;
  const out: Record<string, unknown> = { name: err.name, message: err.message };
  if (code !== undefined) out.code = code;
  if (err.stack) out.stack = err.stack;
  const cause = (err as { cause?: unknown }).cause;
  if (cause !== undefined && depth < 8) out.cause = cause instanceof Error ? serializeError(cause, depth + 1) : plain(cause);
  return out;
}

function plain(v: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(v, replacer) ?? 'null');
  } catch {
    return String(v);
  }
}

// bigint is not JSON; errors lose their message and stack under JSON.stringify
function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return serializeError(value);
  return value;
}

function wrap(p: pino.Logger): Logger {
  const emit = (level: LogLevel) => (msg: string, fields?: LogFields): void => {
    if (!p.isLevelEnabled(level)) return;
    if (fields) p[level](plain(fields) as object, msg);
    else p[level](msg);
  };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (fields) => wrap(p.child(plain(fields) as pino.Bindings)),
    setLevel: (l) => {
      p.level = l;
    },
  };
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const dest: pino.DestinationStream = opts.write ? { write: opts.write } : pino.destination({ fd: 2, sync: true });
  const p = pino(
    {
      level: opts.level ?? 'info',
      // no pid/hostname on every line: the server logs its pid once at start
      base: null,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // errors are serialized above (any key, the cause chain included), not by pino's `err` serializer
      serializers: { err: (e: unknown) => e },
    },
    dest,
  );
  return wrap(opts.fields ? p.child(plain(opts.fields) as pino.Bindings) : p);
}

/** A logger that drops everything (library use, tests). */
export const silentLogger: Logger = createLogger({ write: () => undefined, level: 'error' });
