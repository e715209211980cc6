// SPDX-License-Identifier: MIT
// The one shape of a media error: the file, the byte offset, what is wrong.
import { ReflectorError } from '../errors';

export function mediaError(file: string, offset: number, what: string): ReflectorError {
  return new ReflectorError('ERR_MEDIA', `${file}: byte offset ${offset}: ${what}`);
}
