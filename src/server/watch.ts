// SPDX-License-Identifier: MIT
// Watch the config file for changes: fs.watch on its folder (editors replace
// files by rename, which a watch on the file itself would miss), debounced.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../log';

export class ConfigWatcher {
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly file: string,
    private readonly onChange: () => void,
    private readonly log: Logger,
    private readonly debounceMs = 200,
  ) {}

  start(): void {
    const dir = path.dirname(this.file);
    const base = path.basename(this.file);
    try {
      this.watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
        if (name !== null && name !== base) return;
        if (this.timer) clearTimeout(this.timer);
        this.timer = setTimeout(() => {
          this.timer = null;
          this.onChange();
        }, this.debounceMs);
      });
      this.watcher.on('error', (err) => this.log.warn('config watch error (reload with SIGHUP)', { file: this.file, err }));
    } catch (err) {
      this.log.warn('cannot watch the config folder (reload with SIGHUP)', { dir, err });
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.watcher?.close();
    this.watcher = null;
  }
}
