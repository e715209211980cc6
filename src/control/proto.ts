// SPDX-License-Identifier: MIT
// Where proto/reflector/v1/control.proto is, and its package definition as
// @grpc/proto-loader (protobufjs underneath) loads it: no generated code, the
// .proto is the one schema the server, the client and other languages share.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { ReflectorError } from '../errors';

export const SERVICE = 'reflector.v1.Control';
export const PROTO_FILE = 'reflector/v1/control.proto';

/** How messages look in JavaScript: camelCase fields, 64-bit integers as decimal strings, enums by name. */
export const LOADER_OPTIONS: protoLoader.Options = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };

/** The proto/ folder: beside src/ when run from source, two levels above dist/src/control when compiled. */
export function protoRoot(): string {
  const candidates = [path.resolve(__dirname, '../../proto'), path.resolve(__dirname, '../../../proto')];
  const found = candidates.find((p) => fs.existsSync(path.join(p, PROTO_FILE)));
  if (!found) throw new ReflectorError('ERR_CONTROL', `${PROTO_FILE} not found (looked in ${candidates.join(', ')})`);
  return found;
}

/** The path of control.proto (for docs, tests and other languages' compilers). */
export function protoPath(): string {
  return path.join(protoRoot(), PROTO_FILE);
}

let loaded: protoLoader.PackageDefinition | null = null;

export function packageDefinition(): protoLoader.PackageDefinition {
  if (!loaded) loaded = protoLoader.loadSync(PROTO_FILE, { ...LOADER_OPTIONS, includeDirs: [protoRoot()] });
  return loaded;
}

export function serviceDefinition(): ServiceDefinition {
  return packageDefinition()[SERVICE] as ServiceDefinition;
}

/** The method names of the service, as in the .proto (List, AddRelay, ..., Watch). */
export function methodNames(): string[] {
  return Object.values(serviceDefinition()).map((m) => (m as { originalName?: string; path: string }).path.split('/').pop()!);
}
