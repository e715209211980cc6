// SPDX-License-Identifier: MIT
// Files the package ships beside its code (the .proto, the addon, the shipped
// config), found from the package root rather than from a source-tree
// layout: the same path works in the repository (dist/src/...) and in
// node_modules/reflector after `npm install reflector-<version>.tgz`.
import { existsSync } from 'node:fs';
import * as path from 'node:path';

function findRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'binding.gyp'))) return dir;
    if (path.dirname(dir) === dir) break;
  }
  // dist/src/paths.js -> the root, when a bundler moved package.json away
  return path.resolve(__dirname, '..', '..');
}

/** The folder holding reflector's package.json (the repository, or node_modules/reflector). */
export const PACKAGE_ROOT = findRoot(__dirname);

/** A file the package ships, by its path inside the package: packagePath('proto', 'reflector', 'v1', 'control.proto'). */
export function packagePath(...parts: string[]): string {
  return path.join(PACKAGE_ROOT, ...parts);
}
