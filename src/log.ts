// SPDX-License-Identifier: MIT
// Structured logs: one JSON object per line (time, level, msg, fields) on
// stderr, for lifecycle events and errors only, never one per packet.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

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
  write?: (line: string) => void;
  fields?: LogFields;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  let level: LogLevel = opts.level ?? 'info';
  let min = LEVELS[level];
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const base = opts.fields ?? {};
  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (LEVELS[level] < min) return;
    const record = { time: new Date().toISOString(), level, msg, ...base, ...(fields ?? {}) };
    write(JSON.stringify(record, replacer) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ ...opts, level, fields: { ...base, ...fields } }),
    setLevel: (l) => {
      level = l;
      min = LEVELS[l];
    },
  };
}

/** A logger that drops everything (library use, tests). */
export const silentLogger: Logger = createLogger({ write: () => undefined, level: 'error' });

// bigint is not JSON; errors lose their message under JSON.stringify
function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return { name: value.name, message: value.message, ...(code !== undefined ? { code } : {}) };
  }
  return value;
}
