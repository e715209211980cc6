// SPDX-License-Identifier: MIT
// Command-line parsing on node's util.parseArgs: known options only, each
// error names the option and says what is accepted (exit code 2 in the CLI).
import { parseArgs as nodeParseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OptionSpec {
  /** takes a value ("--socket PATH") */
  value?: string;
  /** may repeat (values collected in order) */
  repeat?: boolean;
  help: string;
}

export interface Parsed {
  options: Map<string, string[]>;
  flags: Set<string>;
  positionals: string[];
}

/**
 * Parse with node's util.parseArgs (strict: known options only), then say
 * what went wrong in our words: the option, and what is accepted.
 */
export function parseArgs(argv: string[], spec: Record<string, OptionSpec>, command: string): Parsed {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const [k, s] of Object.entries(spec)) {
    options[k] = { type: s.value ? 'string' : 'boolean', multiple: true };
    if (k === 'help') options[k].short = 'h';
    if (k === 'version') options[k].short = 'V';
  }
  const known = Object.keys(spec).map((k) => `--${k}`).join(', ');
  let r: ReturnType<typeof nodeParseArgs>;
  try {
    r = nodeParseArgs({ args: argv, options, allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    const e = err as Error & { code?: string };
    const name = /'(-{1,2}[^' ]+)/.exec(e.message)?.[1] ?? '';
    const opt = name.replace(/^-+/, '');
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`${command}: unknown option "${name}" (options: ${known})`);
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      if (spec[opt]?.value) throw new UsageError(`${command}: option --${opt} needs a value ${spec[opt].value}`);
      if (spec[opt]) throw new UsageError(`${command}: option --${opt} takes no value`);
    }
    throw new UsageError(`${command}: ${e.message}`);
  }
  const out: Parsed = { options: new Map(), flags: new Set(), positionals: r.positionals };
  for (const [k, v] of Object.entries(r.values)) {
    const list = (v as Array<string | boolean>) ?? [];
    if (list.length > 1 && spec[k].value && !spec[k].repeat) throw new UsageError(`${command}: option --${k} given twice`);
    if (spec[k].value) out.options.set(k, list.map(String));
    else if (list.length) out.flags.add(k);
  }
  return out;
}

export function optionHelp(spec: Record<string, OptionSpec>): string {
  const rows = Object.entries(spec).map(([k, s]) => [`--${k}${s.value ? ` ${s.value}` : ''}`, s.help + (s.repeat ? ' (repeatable)' : '')]);
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([a, b]) => `  ${a.padEnd(w)}  ${b}`).join('\n');
}
