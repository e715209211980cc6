// SPDX-License-Identifier: MIT
// Policy message bodies of engine/src/relay.h, byte for byte: the ops, the
// flags, the limits and every body's field offsets (relay.h pins its side
// with _Static_assert, test/relay/policy.test.ts pins this one to the same
// numbers). Ports and addresses are written as on the wire (network byte
// order); ids in little-endian, the engine's host order.
import { invalidArg } from '../errors';
import { addressBytes, type Family } from '../net/address';
import { POLICY_MSG } from '../region/layout';

export const OP = {
  RELAY_ADD: 1,
  RELAY_REMOVE: 2,
  RELAY_ALLOW: 3,
  OUTPUT_ADD: 4,
  OUTPUT_REMOVE: 5,
  OUTPUT_SET_MAC: 6,
  RELAY_LIMIT: 7,
  /** no body: the table is complete; the kernel tier replaces what a previous server left (docs/kernel-tier.md) */
  KERNEL_COMMIT: 8,
  CAPTURE: 9,
} as const;
export type PolicyOp = (typeof OP)[keyof typeof OP];

export const OUT_F_MAC_VALID = 0x01;
export const OUT_F_DSCP = 0x02;
export const OUT_F_TTL = 0x04;

export const MAX_RELAYS = 64;
export const MAX_OUTPUTS = 1024;
export const MAX_PREFIXES = 16;
export const NAME_LEN = 32;
/** RF_RELAY_NONE: no counter slot. */
export const NONE = 0xffffffff;

/** struct rf_policy_relay_add */
export const RELAY_ADD = { size: 60, relayId: 0, counter: 4, family: 8, port: 10, addr: 12, name: 28 } as const;
/** struct rf_policy_relay_ref */
export const RELAY_REF = { size: 4, relayId: 0 } as const;
/** struct rf_policy_relay_allow */
export const RELAY_ALLOW = { size: 24, relayId: 0, family: 4, length: 5, addr: 8 } as const;
/** struct rf_policy_output_add */
export const OUTPUT_ADD = {
  size: 56, relayId: 0, outputId: 4, family: 8, flags: 9, ttl: 10, dscp: 11,
  srcPort: 12, dstPort: 14, dstMac: 16, srcAddr: 24, dstAddr: 40,
} as const;
/** struct rf_policy_output_ref */
export const OUTPUT_REF = { size: 8, relayId: 0, outputId: 4 } as const;
/** struct rf_policy_output_mac */
export const OUTPUT_MAC = { size: 16, relayId: 0, outputId: 4, dstMac: 8, valid: 14 } as const;
/** struct rf_policy_relay_limit (0 = no limit) */
export const RELAY_LIMIT = { size: 16, relayId: 0, pps: 4, bytesPerS: 8 } as const;
/** struct rf_policy_capture: arm (relay, one output or NONE = all, ingress) or disarm (relayId NONE) */
export const CAPTURE = { size: 12, relayId: 0, outputId: 4, ingress: 8 } as const;
/** RF_RELAY_LIMIT_BURST_NS: the token buckets hold this much of each rate (at least one packet). */
export const LIMIT_BURST_MS = 100;

/** errno values the engine acks with (relay.h "Status of a message"), Linux numbering. */
export const ERRNO: Readonly<Record<number, string>> = {
  22: 'EINVAL (bad family, port, prefix length, flags, ttl or dscp)',
  95: 'EOPNOTSUPP (unknown op)',
  17: 'EEXIST (relay id, relay key or output id already used)',
  2: 'ENOENT (no such relay or output)',
  34: 'ERANGE (counter or output id >= the region\'s maxOutputs)',
  28: 'ENOSPC (table full)',
  97: 'EAFNOSUPPORT (output family differs from the relay\'s)',
  40: 'ELOOP (an output would send to a relay\'s own listen address)',
  16: 'EBUSY (no free table copy)',
  38: 'ENOSYS (this engine has no relay)',
  19: 'ENODEV (this engine has no capture ring: a region older than 2.1)',
};

export interface RelayAddBody {
  relayId: number;
  counter: number; // output counter slot, or NONE
  family: Family;
  port: number;
  addr: string;
  name: string;
}
export interface RelayAllowBody {
  relayId: number;
  family: Family;
  length: number;
  addr: string;
}
export interface OutputAddBody {
  relayId: number;
  outputId: number;
  family: Family;
  flags: number;
  ttl: number;
  dscp: number;
  srcPort: number;
  dstPort: number;
  dstMac: string;
  srcAddr: string;
  dstAddr: string;
}
export interface OutputMacBody {
  relayId: number;
  outputId: number;
  dstMac: string;
  valid: boolean;
}

export interface RelayLimitBody {
  relayId: number;
  pps: number;
  bytesPerS: number;
}

export function macBytes(mac: string): Uint8Array {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) throw invalidArg(`mac: "${mac}" is not a MAC address (expected "aa:bb:cc:dd:ee:ff")`);
  return Uint8Array.from(mac.split(':').map((h) => parseInt(h, 16)));
}

/** Writes message bodies into a policy ring entry (a view over the region). */
export class PolicyWriter {
  private readonly u8: Uint8Array;
  private readonly dv: DataView;

  constructor(sab: SharedArrayBuffer) {
    this.u8 = new Uint8Array(sab);
    this.dv = new DataView(sab);
  }

  /** Write op and seq at `entry` (byte offset of an rf_policy_msg) and zero the body. */
  header(entry: number, op: PolicyOp, seq: number): number {
    this.dv.setUint32(entry + POLICY_MSG.op, op, true);
    this.dv.setUint32(entry + POLICY_MSG.seq, seq >>> 0, true);
    this.u8.fill(0, entry + POLICY_MSG.body, entry + POLICY_MSG.size);
    return entry + POLICY_MSG.body;
  }

  relayAdd(b0: number, m: RelayAddBody): void {
    this.dv.setUint32(b0 + RELAY_ADD.relayId, m.relayId, true);
    this.dv.setUint32(b0 + RELAY_ADD.counter, m.counter, true);
    this.u8[b0 + RELAY_ADD.family] = m.family;
    this.dv.setUint16(b0 + RELAY_ADD.port, m.port, false);
    this.u8.set(addressBytes(m.addr), b0 + RELAY_ADD.addr);
    const name = Buffer.from(m.name, 'utf8').subarray(0, NAME_LEN);
    this.u8.set(name, b0 + RELAY_ADD.name);
  }

  relayRef(b0: number, relayId: number): void {
    this.dv.setUint32(b0 + RELAY_REF.relayId, relayId, true);
  }

  relayAllow(b0: number, m: RelayAllowBody): void {
    this.dv.setUint32(b0 + RELAY_ALLOW.relayId, m.relayId, true);
    this.u8[b0 + RELAY_ALLOW.family] = m.family;
    this.u8[b0 + RELAY_ALLOW.length] = m.length;
    this.u8.set(addressBytes(m.addr), b0 + RELAY_ALLOW.addr);
  }

  outputAdd(b0: number, m: OutputAddBody): void {
    const O = OUTPUT_ADD;
    this.dv.setUint32(b0 + O.relayId, m.relayId, true);
    this.dv.setUint32(b0 + O.outputId, m.outputId, true);
    this.u8[b0 + O.family] = m.family;
    this.u8[b0 + O.flags] = m.flags;
    this.u8[b0 + O.ttl] = m.ttl;
    this.u8[b0 + O.dscp] = m.dscp;
    this.dv.setUint16(b0 + O.srcPort, m.srcPort, false);
    this.dv.setUint16(b0 + O.dstPort, m.dstPort, false);
    this.u8.set(macBytes(m.dstMac), b0 + O.dstMac);
    this.u8.set(addressBytes(m.srcAddr), b0 + O.srcAddr);
    this.u8.set(addressBytes(m.dstAddr), b0 + O.dstAddr);
  }

  outputRef(b0: number, relayId: number, outputId: number): void {
    this.dv.setUint32(b0 + OUTPUT_REF.relayId, relayId, true);
    this.dv.setUint32(b0 + OUTPUT_REF.outputId, outputId, true);
  }

  relayLimit(b0: number, m: RelayLimitBody): void {
    this.dv.setUint32(b0 + RELAY_LIMIT.relayId, m.relayId, true);
    this.dv.setUint32(b0 + RELAY_LIMIT.pps, m.pps, true);
    this.dv.setBigUint64(b0 + RELAY_LIMIT.bytesPerS, BigInt(m.bytesPerS), true);
  }

  capture(b0: number, m: { relayId: number; outputId: number; ingress: boolean }): void {
    this.dv.setUint32(b0 + CAPTURE.relayId, m.relayId, true);
    this.dv.setUint32(b0 + CAPTURE.outputId, m.outputId, true);
    this.u8[b0 + CAPTURE.ingress] = m.ingress ? 1 : 0;
  }

  outputMac(b0: number, m: OutputMacBody): void {
    this.dv.setUint32(b0 + OUTPUT_MAC.relayId, m.relayId, true);
    this.dv.setUint32(b0 + OUTPUT_MAC.outputId, m.outputId, true);
    this.u8.set(macBytes(m.dstMac), b0 + OUTPUT_MAC.dstMac);
    this.u8[b0 + OUTPUT_MAC.valid] = m.valid ? 1 : 0;
  }
}
