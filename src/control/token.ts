// SPDX-License-Identifier: MIT
// The bearer token check. Both sides are hashed first, so the comparison
// runs over 32 bytes whatever the lengths and timingSafeEqual tells an
// attacker nothing about how long the token is or how much of it matched.
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class BearerToken {
  private readonly hash: Buffer;

  constructor(token: string) {
    this.hash = digest(token);
  }

  /** `value` is the whole `authorization` metadata value ("Bearer TOKEN"). */
  matches(value: string): boolean {
    const m = /^Bearer (.*)$/s.exec(value);
    // hash even a malformed value so every refusal costs the same
    return timingSafeEqual(digest(m ? m[1] : ''), this.hash) && m !== null;
  }
}
