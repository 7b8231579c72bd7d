import { describe, expect, it } from 'vitest';
import type { AnyMachineSnapshot } from 'xstate';
import { connectionMachine, type ConnectionEvent } from '../../src/index.ts';
import { checkMachine, formatPath, type ModelCheckReport } from '../../src/testing/index.ts';
import { expectReadmeShows } from './readme.ts';

const writes = (emitted: readonly { type: string }[]) =>
  emitted.flatMap((e) => (e.type === 'write' ? [(e as unknown as { frame: { type: string } }).frame.type] : []));

const events: ConnectionEvent[] = [
  { type: 'init' },
  { type: 'attached', ack: { type: 'init_ack', seq: 0, data: { session_id: 's', seq: 0 } } },
  { type: 'reject', failure: { code: 'UNAUTHORIZED', message: 'wrong token' } },
  { type: 'outbound', frames: [{ type: 'state', seq: 1, data: { state: 'created' } }] },
  { type: 'outbound', frames: [{ type: 'control', seq: 0, data: { action: 'reconnect' } }] },
  { type: 'close' },
];

function check(): ModelCheckReport {
  return checkMachine(connectionMachine, {
    name: 'connection',
    inputs: [{ initTimeoutMs: 1000 }],
    events,
    // Held frames only accumulate; two are as good as many.
    serializeState: (s: AnyMachineSnapshot) => JSON.stringify({ value: s.value, held: Math.min((s.context as { held: unknown[] }).held.length, 2) }),
    invariants: {
      'nothing held once open': (s) => s.value !== 'open' || (s.context as { held: unknown[] }).held.length === 0,
    },
    stepInvariants: {
      'nothing before init_ack': ({ from, emitted }) => {
        const types = writes(emitted);
        if (from.value === 'open') return true;
        return types.length === 0 || types[0] === 'init_ack';
      },
      'every held frame is written after init_ack, in order': ({ from, event, emitted }) => {
        if (event.type !== 'attached' || from.value !== 'handshaking') return true;
        const held = (from.context as { held: { type: string }[] }).held.map((f) => f.type);
        return JSON.stringify(writes(emitted)) === JSON.stringify(['init_ack', ...held]);
      },
    },
  });
}

describe('model check: connection machine', () => {
  // Run once, read by both tests below.
  let checked: ModelCheckReport | undefined;
  const connectionReport = () => (checked ??= check());

  it('reaches every state and transition; nothing leaves the connection before init_ack', () => {
    const report = connectionReport();
    console.log(report.summary);
    expect(report.violations.map(formatPath)).toEqual([]);
    expect(report.transitions.missing).toEqual([]);
    expect(report.states.missing).toEqual([]);
  });

  it('is reported in the README exactly as printed', () => {
    expectReadmeShows(connectionReport());
  });
});
