import type { SessionInput } from '../../machines/session.ts';
import type { InboxEntry } from './store.ts';

/**
 * A schedule fires as an input (C20) whose id is `timer:<schedule id>:<due time>`: one id per
 * due time, so the durable inbox and the idempotency window (C10) make it fire once per due
 * time, whatever crashes. The prefix is the runtime's: a client's input id may not use it.
 */
export const TIMER_ID_PREFIX = 'timer:';

/** Where a timer input's inbox entry carries its schedule (trusted only under the prefix above). */
const TIMER_KEY = 'baton:timer';

export interface TimerFire {
  readonly id: string;
  readonly dueAt: number;
  readonly payload?: unknown;
}

/** The inbox entry of one fire: the payload as content (text as is, anything else as JSON). */
export function timerEntry(fire: TimerFire): InboxEntry {
  const { payload } = fire;
  const content = payload === undefined ? '' : typeof payload === 'string' ? payload : JSON.stringify(payload);
  return { id: `${TIMER_ID_PREFIX}${fire.id}:${fire.dueAt}`, content, metadata: { [TIMER_KEY]: fire } };
}

/** What the agent sees of an inbox entry: a timer input is typed (`kind: 'timer'`, its schedule beside it). */
export function sessionInput(entry: InboxEntry): SessionInput {
  const fire = entry.id.startsWith(TIMER_ID_PREFIX) ? (entry.metadata?.[TIMER_KEY] as TimerFire | undefined) : undefined;
  if (!fire) return entry;
  return { id: entry.id, content: entry.content, kind: 'timer', schedule: fire };
}
