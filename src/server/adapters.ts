// SPDX-License-Identifier: MIT
// Binds the server's small interfaces (deps.ts) to the real engine, relays
// manager and session manager. Each piece is loaded when the server starts,
// so a missing piece gives one clear error instead of a crash at import.
import type { Config } from '../config/schema';
import { ReflectorError } from '../errors';
import type { Logger } from '../log';
import type { ServerDeps } from './deps';

/** Which pieces the real server needs and whether they are built; tests skip with this. */
export function missingPieces(): string[] {
  const missing: string[] = [];
  for (const [what, mod] of [
    ['engine (src/engine/engine.ts)', '../engine/engine'],
    ['relays manager (src/relay/relays.ts)', '../relay/relays'],
    ['session manager (src/session/sessions.ts)', '../session/sessions'],
  ] as const) {
    try {
      require.resolve(mod);
    } catch {
      missing.push(what);
    }
  }
  return missing;
}

export async function realDeps(_config: Config, _log: Logger): Promise<ServerDeps> {
  const missing = missingPieces();
  if (missing.length) {
    throw new ReflectorError('ERR_ENGINE_START', `this build lacks: ${missing.join(', ')}`);
  }
  throw new ReflectorError('ERR_ENGINE_START', 'engine adapters not bound yet');
}
