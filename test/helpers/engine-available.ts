// SPDX-License-Identifier: MIT
// Whether this build can run the engine: tests that need it skip loudly with
// the reason instead of failing on a missing or engine-less addon.
import { native } from '../../src/native';

/** Why the engine cannot run here, or null when it can. */
export function engineUnavailable(): string | null {
  try {
    return native().engineAvailable() ? null : 'the addon was built without engine/src/engine.c';
  } catch (e) {
    return `the native addon does not load: ${(e as Error).message.split('\n')[0]}`;
  }
}
