// SPDX-License-Identifier: MIT
// Control API errors on the wire: a gRPC status code chosen from the ERR_*
// code, the message "ERR_CODE: text", and the standard rich error model in
// the `grpc-status-details-bin` trailer (a google.rpc.Status holding one
// google.rpc.ErrorInfo, reason = the ERR_* code, domain = "reflector.v1"),
// so any gRPC client reads the code without parsing text.
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';

export const ERROR_DOMAIN = 'reflector.v1';
export const DETAILS_KEY = 'grpc-status-details-bin';
const ERROR_INFO_URL = 'type.googleapis.com/google.rpc.ErrorInfo';

/** Every ERR_* code a control call can answer and its gRPC status (docs/api.md lists the same table). */
export const STATUS_OF: Readonly<Record<string, grpc.status>> = {
  ERR_INVALID_ARG: grpc.status.INVALID_ARGUMENT,
  ERR_BAD_MESSAGE: grpc.status.INVALID_ARGUMENT,
  ERR_NOT_FOUND: grpc.status.NOT_FOUND,
  ERR_EXISTS: grpc.status.ALREADY_EXISTS,
  ERR_CONFLICT: grpc.status.ABORTED,
  ERR_UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  ERR_TIMEOUT: grpc.status.DEADLINE_EXCEEDED,
  ERR_UNAVAILABLE: grpc.status.UNAVAILABLE,
  ERR_INTERNAL: grpc.status.INTERNAL,
  // the pieces' own codes (src/errors.ts)
  ERR_MEDIA: grpc.status.FAILED_PRECONDITION,
  ERR_POLICY: grpc.status.FAILED_PRECONDITION,
  ERR_ENGINE_STATE: grpc.status.FAILED_PRECONDITION,
  ERR_CONFIG: grpc.status.FAILED_PRECONDITION,
  ERR_NO_NEIGHBOUR: grpc.status.UNAVAILABLE,
  ERR_ENGINE_START: grpc.status.UNAVAILABLE,
  ERR_CLUSTER: grpc.status.UNAVAILABLE,
  ERR_CLOSED: grpc.status.UNAVAILABLE,
  ERR_WORKER: grpc.status.UNAVAILABLE,
  ERR_WOULD_BLOCK: grpc.status.UNAVAILABLE,
  ERR_RING_TIMEOUT: grpc.status.RESOURCE_EXHAUSTED,
  ERR_LAYOUT_MISMATCH: grpc.status.INTERNAL,
  ERR_CONTROL: grpc.status.INTERNAL,
  // a capture cannot start while another runs (one per engine), or the engine refused to arm it
  ERR_CAPTURE: grpc.status.FAILED_PRECONDITION,
  ERR_MULTICAST_JOIN: grpc.status.FAILED_PRECONDITION,
};

/** The status object grpc-js sends for one ERR_* error. */
export function errorStatus(code: string, message: string): Partial<grpc.StatusObject> & { code: grpc.status; details: string } {
  const status = STATUS_OF[code] ?? grpc.status.UNKNOWN;
  const details = `${code}: ${message}`;
  const metadata = new grpc.Metadata();
  metadata.set(DETAILS_KEY, encodeStatus(status, details, code));
  return { code: status, details, metadata };
}

/** The ERR_* code and message of a failed call: from ErrorInfo, else from the "ERR_X: " prefix, else by status. */
export function errorOf(err: grpc.ServiceError): { code: string; message: string } {
  const raw = err.metadata?.get(DETAILS_KEY)[0];
  const text = err.details ?? err.message;
  const m = /^(ERR_[A-Z_]+): ([\s\S]*)$/.exec(text);
  const message = m ? m[2] : text;
  if (Buffer.isBuffer(raw)) {
    const reason = decodeReason(raw);
    if (reason) return { code: reason, message };
  }
  if (m) return { code: m[1], message };
  return { code: grpcCodeName(err.code), message };
}

/** A status code the transport produced itself (no ERR_* code): its name, e.g. "UNIMPLEMENTED". */
export function grpcCodeName(code: number): string {
  return (grpc.status as unknown as Record<number, string>)[code] ?? `STATUS_${code}`;
}

function encodeStatus(code: number, message: string, reason: string): Buffer {
  const info = protobuf.Writer.create().uint32(0x0a).string(reason).uint32(0x12).string(ERROR_DOMAIN).finish();
  const any = protobuf.Writer.create().uint32(0x0a).string(ERROR_INFO_URL).uint32(0x12).bytes(info).finish();
  return Buffer.from(protobuf.Writer.create().uint32(0x08).int32(code).uint32(0x12).string(message).uint32(0x1a).bytes(any).finish());
}

/** google.rpc.Status -> the reason of its first ErrorInfo in our domain, or null. */
export function decodeReason(bytes: Uint8Array): string | null {
  try {
    const anys = fields(bytes).filter((f) => f.no === 3).map((f) => f.bytes!);
    for (const a of anys) {
      const af = fields(a);
      if (af.find((f) => f.no === 1)?.text !== ERROR_INFO_URL) continue;
      const info = fields(af.find((f) => f.no === 2)?.bytes ?? new Uint8Array());
      const domain = info.find((f) => f.no === 2)?.text;
      const reason = info.find((f) => f.no === 1)?.text;
      if (domain === ERROR_DOMAIN && reason) return reason;
    }
  } catch {
    // a trailer we cannot read carries no code
  }
  return null;
}

function fields(bytes: Uint8Array): Array<{ no: number; bytes?: Uint8Array; text?: string }> {
  const r = protobuf.Reader.create(bytes);
  const out: Array<{ no: number; bytes?: Uint8Array; text?: string }> = [];
  while (r.pos < r.len) {
    const tag = r.uint32();
    if ((tag & 7) === 2) {
      const b = r.bytes();
      out.push({ no: tag >>> 3, bytes: b, text: Buffer.from(b).toString('utf8') });
    } else r.skipType(tag & 7);
  }
  return out;
}
