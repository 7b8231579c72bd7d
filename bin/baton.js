#!/usr/bin/env node
// The `baton-runtime` command (bin `baton`): runs the compiled CLI in dist/. `npm install`
// in a checkout and `npm pack` build it (`npm run build`).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('baton: dist/ is missing: run `npm run build` in the package directory\n');
  process.exit(1);
}
await import(cli.href);
