// SPDX-License-Identifier: MIT
// Watch the config file for changes: fs.watch on its folder (editors replace
// files by rename, which a watch on the file itself would miss), debounced.
// An event naming the file is a change; any other event in the folder leads
// to a look at what the file's path resolves to now (the target's real path,
// inode, size, mtime), and a difference there is a change of the config. That is how a Kubernetes ConfigMap update shows:
// reflector.yaml -> ..data/reflector.yaml stays, and the kubelet swaps the
// `..data` symlink to a new timestamped folder in one rename (no event names
// reflector.yaml).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../log';

/** What the config path resolves to now, or null while it does not exist (mid-swap). */
function identity(file: string): string | null {
  try {
    const real = fs.realpathSync(file);
    const st = fs.statSync(real);
    return `${real}\0${st.dev}:${st.ino}\0${st.size}\0${st.mtimeMs}`;
  } catch {
    return null;
  }
}

export class ConfigWatcher {
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private last: string | null = null;

  constructor(
    private readonly file: string,
    private readonly onChange: () => void,
    private readonly log: Logger,
    private readonly debounceMs = 200,
  ) {}

  start(): void {
    const dir = path.dirname(this.file);
    const base = path.basename(this.file);
    this.last = identity(this.file);
    let named = false;
    try {
      this.watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
        // an event naming the file is a change whatever its identity says (file times are coarse)
        if (name === null || name === base) named = true;
        if (this.timer) clearTimeout(this.timer);
        this.timer = setTimeout(() => {
          const force = named;
          named = false;
          this.check(force);
        }, this.debounceMs);
      });
      this.watcher.on('error', (err) => this.log.warn('config watch error (reload with SIGHUP)', { file: this.file, err }));
    } catch (err) {
      this.log.warn('cannot watch the config folder (reload with SIGHUP)', { dir, err });
    }
  }

  private check(named: boolean): void {
    this.timer = null;
    const now = identity(this.file);
    // gone for a moment (a swap in progress): the event that completes it comes next
    if (now === null || (now === this.last && !named)) return;
    const swapped = this.last !== null && now.split('\0')[0] !== this.last.split('\0')[0];
    this.last = now;
    if (swapped) this.log.info('config file now resolves elsewhere (symlink swap, e.g. a ConfigMap update)', { file: this.file, target: now.split('\0')[0] });
    this.onChange();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.watcher?.close();
    this.watcher = null;
  }
}
