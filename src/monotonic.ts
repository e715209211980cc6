// SPDX-License-Identifier: MIT
// The engine's clock. process.hrtime.bigint() reads CLOCK_MONOTONIC on Linux,
// the clock the engine compares descriptor tx_time with.

/** CLOCK_MONOTONIC now, in nanoseconds. */
export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}
