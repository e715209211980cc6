// SPDX-License-Identifier: MIT
// A small strict argument parser: known options only, each error names the
// option and says what is accepted (exit code 2 in the CLI).

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

export function parseArgs(argv: string[], spec: Record<string, OptionSpec>, command: string): Parsed {
  const options = new Map<string, string[]>();
  const flags = new Set<string>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('--') || a === '-') {
      if (a.startsWith('-') && a.length > 1 && a !== '-h' && a !== '-V' && !/^-\d/.test(a)) {
        throw new UsageError(`${command}: unknown option "${a}" (options: ${Object.keys(spec).map((k) => `--${k}`).join(', ')})`);
      }
      if (a === '-h') flags.add('help');
      else if (a === '-V') flags.add('version');
      else positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const s = spec[name];
    if (!s) throw new UsageError(`${command}: unknown option "--${name}" (options: ${Object.keys(spec).map((k) => `--${k}`).join(', ')})`);
    if (!s.value) {
      if (eq >= 0) throw new UsageError(`${command}: option --${name} takes no value`);
      flags.add(name);
      continue;
    }
    let v: string | undefined;
    if (eq >= 0) v = a.slice(eq + 1);
    else {
      v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${command}: option --${name} needs a value ${s.value}`);
      i++;
    }
    const list = options.get(name) ?? [];
    if (list.length && !s.repeat) throw new UsageError(`${command}: option --${name} given twice`);
    list.push(v);
    options.set(name, list);
  }
  return { options, flags, positionals };
}

export function optionHelp(spec: Record<string, OptionSpec>): string {
  const rows = Object.entries(spec).map(([k, s]) => [`--${k}${s.value ? ` ${s.value}` : ''}`, s.help + (s.repeat ? ' (repeatable)' : '')]);
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([a, b]) => `  ${a.padEnd(w)}  ${b}`).join('\n');
}
