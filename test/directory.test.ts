import { describe, expect, it } from 'vitest';
import { createCounter, createDirectory, lastErrorOf, LAST_ERRORS_KEPT } from '../src/runtime/directory.ts';

describe('the runtime directory', () => {
  it('keeps the last error of the most recently failed sessions only, newest per session', () => {
    const directory = createDirectory();
    for (let i = 0; i < LAST_ERRORS_KEPT + 100; i++) {
      directory.trigger.errorSeen({ sessionId: `s${i}`, error: { code: 'WORKER_CRASH', message: `boom ${i}`, at: i } });
    }
    directory.trigger.errorSeen({ sessionId: 's200', error: { code: 'TURN_TIMEOUT', message: 'late', at: 1 } });
    const { lastErrors, errors } = directory.get().context;
    expect(errors).toBe(LAST_ERRORS_KEPT + 101);
    expect(lastErrors).toHaveLength(LAST_ERRORS_KEPT);
    expect(lastErrorOf(directory, 's0')).toBeUndefined(); // the oldest went first
    expect(lastErrorOf(directory, 's200')?.code).toBe('TURN_TIMEOUT');
    directory.trigger.sessionDeleted({ sessionId: 's200' });
    expect(lastErrorOf(directory, 's200')).toBeUndefined();
  });

  it('counts attached clients and, in bulk, turns and inputs', async () => {
    const directory = createDirectory();
    const count = createCounter(directory);
    directory.trigger.clientAttached();
    directory.trigger.clientAttached();
    directory.trigger.clientDetached();
    count.input();
    count.input();
    count.turn();
    await Promise.resolve();
    expect(directory.get().context).toMatchObject({ clients: 1, inputs: 2, turns: 1 });
  });
});
