/**
 * `baton-runtime/testing`: model-check any XState machine — Baton's or your own.
 */
export { checkMachine, formatPath } from './model-check.ts';
export type { ModelCheckOptions, ModelCheckReport, Step, Violation } from './model-check.ts';
export { FaultStore } from './fault-store.ts';
export type { FaultStoreOptions } from './fault-store.ts';
