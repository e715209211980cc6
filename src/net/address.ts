// SPDX-License-Identifier: MIT
// Parsing of the address forms users type: "ADDR:PORT" ("[v6]:PORT" for
// IPv6) and "ADDR/LEN" prefixes, to byte arrays the engine understands.
import { isIPv4, isIPv6 } from 'node:net';
import { invalidArg } from '../errors';

export type Family = 4 | 6;

export interface Endpoint {
  readonly family: Family;
  readonly address: string; // canonical text form, no brackets
  readonly port: number;
}

export interface Prefix {
  readonly family: Family;
  readonly address: string;
  readonly length: number;
}

/** Parse "1.2.3.4:5000" or "[2001:db8::1]:5000". `what` names the value in errors. */
export function parseEndpoint(text: string, what = 'address'): Endpoint {
  if (typeof text !== 'string') throw invalidArg(`${what}: expected "ADDR:PORT", got ${typeof text}`);
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (v6) {
    host = v6[1];
    portText = v6[2];
  } else {
    const i = text.lastIndexOf(':');
    if (i < 0 || text.indexOf(':') !== i) {
      throw invalidArg(`${what}: "${text}" is not ADDR:PORT (write IPv6 as [ADDR]:PORT)`);
    }
    host = text.slice(0, i);
    portText = text.slice(i + 1);
  }
  const family = addressFamily(host, text, what);
  if (!/^\d+$/.test(portText)) throw invalidArg(`${what}: port "${portText}" in "${text}" is not a number`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw invalidArg(`${what}: port ${port} in "${text}" is outside 1..65535`);
  return { family, address: canonical(host, family), port };
}

/** Parse "198.18.0.0/15" or "2001:db8::/32"; a bare address is a host prefix. */
export function parsePrefix(text: string, what = 'prefix'): Prefix {
  if (typeof text !== 'string') throw invalidArg(`${what}: expected "ADDR/LEN", got ${typeof text}`);
  const [host, lenText, extra] = text.split('/');
  if (extra !== undefined) throw invalidArg(`${what}: "${text}" is not ADDR/LEN`);
  const family = addressFamily(host, text, what);
  const max = family === 4 ? 32 : 128;
  let length = max;
  if (lenText !== undefined) {
    if (!/^\d+$/.test(lenText) || Number(lenText) > max) {
      throw invalidArg(`${what}: prefix length "${lenText}" in "${text}" is outside 0..${max}`);
    }
    length = Number(lenText);
  }
  return { family, address: canonical(host, family), length };
}

/**
 * The family of `host`, refusing what the engine cannot use. A zone id
 * ("fe80::1%eth0") names an interface of the host that parses it, not of the
 * engine, and the engine keys relays by address bytes only: it is refused
 * rather than dropped (Node's isIPv6 accepts it, the URL parser would throw).
 */
function addressFamily(host: string, text: string, what: string): Family {
  const zone = host.indexOf('%');
  if (zone >= 0) {
    throw invalidArg(`${what}: "${text}" has a zone id ("${host.slice(zone)}"); write the address without it (the engine's interface is the link)`);
  }
  if (isIPv4(host)) return 4;
  if (isIPv6(host)) return 6;
  throw invalidArg(`${what}: "${host}" in "${text}" is not an IPv4 or IPv6 address`);
}

/** Address bytes: 4 for IPv4, 16 for IPv6. */
export function addressBytes(address: string): Uint8Array {
  if (isIPv4(address)) return Uint8Array.from(address.split('.').map(Number));
  if (!isIPv6(address) || address.includes('%')) throw invalidArg(`"${address}" is not an IPv4 or IPv6 address (without a zone id)`);
  let text = address;
  // an embedded IPv4 tail ("::ffff:1.2.3.4") becomes two hex groups
  const v4tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4tail) {
    const b = v4tail[1].split('.').map(Number);
    text = text.slice(0, -v4tail[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** Text form of 4 or 16 address bytes (IPv6 compressed as Node prints it). */
export function addressText(bytes: Uint8Array, family: Family): string {
  if (family === 4) return Array.from(bytes.subarray(0, 4)).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return canonical(groups.join(':'), 6);
}

export function formatEndpoint(e: Endpoint): string {
  return e.family === 6 ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

function canonical(host: string, family: Family): string {
  if (family === 4) return host;
  // let the URL parser compress and lower-case IPv6 the standard way (RFC 5952)
  return new URL(`http://[${host}]/`).hostname.slice(1, -1);
}
