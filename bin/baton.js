#!/usr/bin/env node
// The `baton` command (package baton-runtime). Runs the TypeScript sources through tsx,
// so a fresh clone needs no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
