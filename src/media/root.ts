// SPDX-License-Identifier: MIT
// media_root: the one folder a session may read files from, whoever asks
// (the config file or a control client). A path is checked twice: as
// written (so "../" never leaves the folder) and with every symbolic link
// resolved (so a link inside the folder cannot point out of it). The
// messages name the path as given and the root, never what a link points
// to, and never say anything about a file outside the root (not even
// whether it exists).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from '../errors';

/** Is `p` (absolute, normalised) strictly inside folder `root`? */
export function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

/**
 * Why `file` (absolute) may not be played under `root`, or null when it may.
 * `exists`: also resolve symbolic links and require a regular file (what a
 * session needs); without it only the path as written is checked.
 */
export function mediaPathProblem(root: string, file: string, exists = true): string | null {
  const shown = JSON.stringify(file);
  if (!isInside(path.resolve(root), path.resolve(file))) return `media file ${shown} is outside media_root ${root}`;
  if (!exists) return null;
  let realRoot: string;
  try {
    realRoot = fs.realpathSync(root);
  } catch {
    return `media_root ${root} does not exist`;
  }
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // a dangling link and a missing file look alike: the link's target is not ours to describe
    return code === 'ENOENT' ? `media file ${shown} does not exist` : `media file ${shown} cannot be read (${code ?? 'error'})`;
  }
  if (!isInside(realRoot, real)) return `media file ${shown} is outside media_root ${root} once symbolic links are resolved`;
  let st: fs.Stats;
  try {
    st = fs.statSync(real);
  } catch (e) {
    return `media file ${shown} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  if (!st.isFile()) return `media file ${shown} is not a regular file`;
  return null;
}

/** mediaPathProblem as an ERR_INVALID_ARG naming `what`; returns the path with links resolved. */
export function checkMediaPath(root: string, file: string, what: string): string {
  const p = mediaPathProblem(root, file, true);
  if (p !== null) throw invalidArg(`${what}: ${p}`);
  return fs.realpathSync(file);
}
