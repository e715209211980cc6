// SPDX-License-Identifier: MIT
// The `reflector` command: serve, check-config, ctl.
//
// Exit codes (docs/server.md):
//   0  success
//   1  failure: invalid config (check-config, serve), the server could not
//      start, or the control API refused the request (its error is printed)
//   2  usage error: unknown command or option, missing or malformed argument
//   3  ctl could not reach the server (no socket, refused, closed, timed out)
import { parseArgs, optionHelp, UsageError, type OptionSpec } from './args';
import { checkConfig } from './check-config';
import { serve } from './serve';
import { ctl, ctlHelp, CTL_OPTIONS } from './ctl';
import { clusterCtl } from './ctl-cluster';
import { version } from './version';

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const stdio: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

const TOP_OPTIONS: Record<string, OptionSpec> = {
  help: { help: 'show this help' },
  version: { help: 'print the version' },
};

const TOP_HELP = `Usage: reflector <command> [options]

Packet engine for media streaming servers: aggregate timed transmit, redirect
and split below the application.

Commands:
  serve --config FILE        run the server (engine, relays, sessions, metrics, control API)
  check-config FILE          validate a config file; one line per problem
  ctl [--socket PATH] CMD    talk to a running server (list, subscribe, ... see reflector ctl --help)
  ctl --etcd URL CMD         manage a cluster in etcd: apply FILE, status (reflector ctl --etcd URL --help)

Options:
${optionHelp(TOP_OPTIONS)}

Every command takes --help and --version.
Exit codes: 0 ok, 1 failed (invalid config, start failure, request refused),
2 usage error, 3 server unreachable.
`;

export const SERVE_OPTIONS: Record<string, OptionSpec> = {
  config: { value: 'FILE', help: 'the YAML config (see config/reflector.yaml)' },
  help: { help: 'show this help' },
  version: { help: 'print the version' },
};

const SERVE_HELP = `Usage: reflector serve --config FILE

Run the server until SIGTERM or SIGINT (orderly stop, exit 0). SIGHUP or a
change of FILE reloads it: only the difference is applied; an invalid file
keeps the running config. Logs are JSON lines on stderr.

Options:
${optionHelp(SERVE_OPTIONS)}
`;

const CHECK_OPTIONS: Record<string, OptionSpec> = {
  quiet: { help: 'print nothing when the file is valid' },
  help: { help: 'show this help' },
  version: { help: 'print the version' },
};

const CHECK_HELP = `Usage: reflector check-config FILE

Validate FILE. Exit 0 when it is valid; otherwise exit 1 and print one line
per problem: FILE:LINE:COLUMN: KEY.PATH: what is wrong.

Options:
${optionHelp(CHECK_OPTIONS)}
`;

/** Run the CLI; resolves with the exit code (serve resolves when the server stopped). */
export async function main(argv: string[], io: Io = stdio): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case undefined:
        io.err(TOP_HELP);
        return 2;
      case '--help':
      case '-h':
      case 'help':
        io.out(TOP_HELP);
        return 0;
      case '--version':
      case '-V':
        io.out(`${version()}\n`);
        return 0;
      case 'serve': {
        const a = parseArgs(rest, SERVE_OPTIONS, 'serve');
        if (a.flags.has('help')) return done(io, SERVE_HELP);
        if (a.flags.has('version')) return done(io, `${version()}\n`);
        if (a.positionals.length) throw new UsageError(`serve: unexpected argument "${a.positionals[0]}" (the config is given with --config FILE)`);
        const file = a.options.get('config')?.[0];
        if (!file) throw new UsageError('serve: --config FILE is required');
        return await serve(file, io);
      }
      case 'check-config': {
        const a = parseArgs(rest, CHECK_OPTIONS, 'check-config');
        if (a.flags.has('help')) return done(io, CHECK_HELP);
        if (a.flags.has('version')) return done(io, `${version()}\n`);
        if (a.positionals.length !== 1) throw new UsageError(`check-config: expected exactly one FILE, got ${a.positionals.length}`);
        return checkConfig(a.positionals[0], io, a.flags.has('quiet'));
      }
      case 'ctl': {
        // cluster commands talk to etcd, not to one server (src/cli/ctl-cluster.ts)
        if (rest.some((x) => x === '--etcd' || x.startsWith('--etcd='))) return await clusterCtl(rest, io);
        const a = parseArgs(rest, CTL_OPTIONS, 'ctl');
        if (a.flags.has('help')) return done(io, ctlHelp(a.positionals[0]));
        if (a.flags.has('version')) return done(io, `${version()}\n`);
        return await ctl(a, io);
      }
      default:
        throw new UsageError(`unknown command "${cmd}" (commands: serve, check-config, ctl; see reflector --help)`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`reflector: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

function done(io: Io, text: string): number {
  io.out(text);
  return 0;
}
