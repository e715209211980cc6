// SPDX-License-Identifier: MIT
// Typed errors: every error Reflector raises on purpose is a ReflectorError
// with a stable `code`, so callers can branch on it instead of on messages.

export type ReflectorErrorCode =
  | 'ERR_INVALID_ARG' // a value a user passed is out of range or malformed
  | 'ERR_LAYOUT_MISMATCH' // the TypeScript mirror disagrees with the engine's region layout
  | 'ERR_ENGINE_STATE' // start/stop called in the wrong state
  | 'ERR_ENGINE_START' // the engine could not start (interface, privileges, namespace)
  | 'ERR_NO_NEIGHBOUR' // the next-hop Ethernet address could not be resolved
  | 'ERR_RING_TIMEOUT' // a ring stayed full/empty past the caller's deadline
  | 'ERR_CONFIG' // the configuration file is invalid
  | 'ERR_MEDIA' // a media file is missing, truncated or corrupt
  | 'ERR_POLICY' // the engine refused a policy update
  | 'ERR_CONTROL' // the control API refused a request
  | 'ERR_CLUSTER' // etcd cannot be reached or refused, or the cluster refused this node (its name is taken)
  | 'ERR_CLOSED' // the object was stopped or closed
  | 'ERR_WOULD_BLOCK' // a synchronous call on the main thread found nothing ready and will not wait (use the *Async form)
  | 'ERR_WORKER' // a session worker crashed or hung
  | 'ERR_TIMEOUT' // a request ran out of time and was not applied
  | 'ERR_MULTICAST_JOIN' // the kernel refused to join a relay's multicast group
  | 'ERR_CAPTURE'; // a capture cannot start (one runs already) or its file cannot be written

export class ReflectorError extends Error {
  readonly code: ReflectorErrorCode;

  constructor(code: ReflectorErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReflectorError';
    this.code = code;
  }
}

export function invalidArg(message: string): ReflectorError {
  return new ReflectorError('ERR_INVALID_ARG', message);
}
