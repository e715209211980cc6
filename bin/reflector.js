#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// The `reflector` command; the code is compiled TypeScript in dist/.
'use strict';
let cli;
try {
  cli = require('../dist/src/cli/main.js');
} catch (err) {
  process.stderr.write(`reflector: cannot load dist/src/cli/main.js (run \`npm run build\` first): ${err.message}\n`);
  process.exit(1);
}
cli.main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`reflector: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
