/**
 * Type-level tests of the public API (checked by `npm run typecheck`, which `npm test` runs
 * first): what a TypeScript user gets from each entry point — receipts, events narrowed by
 * `type`, options. `expectTypeOf` is a no-op at run time; a wrong type fails the compile.
 */
import { describe, expectTypeOf, it } from 'vitest';
import {
  BatonError,
  createRuntime,
  MemoryStore,
  MissingPeerDependencyError,
  type ControlAction,
  type ErrorCode,
  type Receipt,
  type Runtime,
  type RuntimeHealth,
  type RuntimeOptions,
  type SessionEvent,
  type SessionStatus,
  type Store,
  type Turn,
} from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { createGateway, type Gateway, type GatewayOptions } from '../src/gateway/index.ts';
import { openaiAgent, type OpenAIAgentOptions } from '../src/openai.ts';
import { checkMachine, type ModelCheckReport } from '../src/testing/index.ts';
import { setup, type EventObject } from 'xstate';
import type { SessionKind, KindDriver, DriverContext } from '../src/index.ts';

const pingMachine = setup({
  types: { events: {} as { type: 'input'; input: { id: string } } | { type: 'pong'; n: number }, emitted: {} as { type: 'ping.sent'; n: number } },
}).createMachine({ id: 'ping', initial: 'idle', states: { idle: { tags: ['quiescent'] } } });

type EventOf<T extends SessionEvent['type']> = Extract<SessionEvent, { type: T }>;

describe('public types (issue 14)', () => {
  it('receipts: a status, a mode for accepted inputs, a typed error for rejections', () => {
    expectTypeOf<Receipt['status']>().toEqualTypeOf<'accepted' | 'duplicate' | 'rejected'>();
    expectTypeOf<Receipt['mode']>().toEqualTypeOf<'primary' | 'queued' | 'injected' | 'command' | undefined>();
    expectTypeOf<Receipt['durability']>().toEqualTypeOf<'durable' | 'volatile' | undefined>();
    expectTypeOf<Receipt['error']>().toEqualTypeOf<BatonError | undefined>();
    expectTypeOf<Receipt['code']>().toEqualTypeOf<ErrorCode | undefined>();
    expectTypeOf<Runtime['send']>().returns.toEqualTypeOf<Promise<Receipt>>();
    expectTypeOf<Runtime['respond']>().returns.toEqualTypeOf<Promise<Receipt>>();
  });

  it('the runtime: what touches the store returns a promise; snapshots, live ids, streams and health are read at once', () => {
    expectTypeOf<Runtime['control']>().returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf<Runtime['control']>().parameter(1).toEqualTypeOf<ControlAction>();
    expectTypeOf<Runtime['open']>().returns.toEqualTypeOf<Promise<SessionStatus>>();
    expectTypeOf<Runtime['status']>().returns.toEqualTypeOf<Promise<SessionStatus | undefined>>();
    expectTypeOf<Runtime['eventsAfter']>().returns.toEqualTypeOf<Promise<SessionEvent[]>>();
    expectTypeOf<Runtime['snapshot']>().returns.toEqualTypeOf<unknown>();
    expectTypeOf<Runtime['sessionIds']>().returns.toEqualTypeOf<string[]>();
    expectTypeOf<Runtime['health']>().returns.toEqualTypeOf<RuntimeHealth>();
    expectTypeOf<Runtime['shutdown']>().returns.toEqualTypeOf<Promise<void>>();
  });

  it('events narrow by type to their wire data, with session id and seq', () => {
    expectTypeOf<SessionEvent['seq']>().toEqualTypeOf<number>();
    expectTypeOf<SessionEvent['sessionId']>().toEqualTypeOf<string>();
    expectTypeOf<EventOf<'message.delta'>['data']['content']>().toEqualTypeOf<string>();
    expectTypeOf<EventOf<'done'>['data']['success']>().toEqualTypeOf<boolean>();
    expectTypeOf<EventOf<'done'>['data']['input_ids']>().toEqualTypeOf<readonly string[]>();
    expectTypeOf<EventOf<'error'>['data']['code']>().toEqualTypeOf<ErrorCode>();
    expectTypeOf<EventOf<'error'>['data']['event_id']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<EventOf<'state'>['data']>().toHaveProperty('state');
    // A type that is not an event narrows to nothing.
    expectTypeOf<EventOf<'nonsense' & SessionEvent['type']>>().toBeNever();
    expectTypeOf<Parameters<Runtime['eventsOf']>>().toEqualTypeOf<[sessionId: string]>();
  });

  it('options: the agent is required, everything else optional, policies are a closed set', () => {
    expectTypeOf<{ agent: (turn: Turn) => Promise<void> }>().toExtend<RuntimeOptions>();
    expectTypeOf<{ busyPolicy: 'reject' }>().not.toExtend<RuntimeOptions>();
    expectTypeOf<RuntimeOptions['busyPolicy']>().toEqualTypeOf<'collect' | 'followup' | 'interrupt' | 'reject' | 'steer' | undefined>();
    expectTypeOf<RuntimeOptions['store']>().toEqualTypeOf<Store | undefined>();
    expectTypeOf(createRuntime).parameter(0).toEqualTypeOf<RuntimeOptions>();
    expectTypeOf(createRuntime).returns.toEqualTypeOf<Runtime>();
    expectTypeOf<OpenAIAgentOptions['model']>().toEqualTypeOf<string>();
    expectTypeOf(openaiAgent).parameter(0).toEqualTypeOf<OpenAIAgentOptions>();
    expectTypeOf<GatewayOptions['runtime']>().toEqualTypeOf<Runtime>();
    expectTypeOf(createGateway).returns.toEqualTypeOf<Gateway>();
  });

  it('stores share one interface; errors carry their code', () => {
    expectTypeOf<MemoryStore>().toExtend<Store>();
    expectTypeOf<SqliteStore>().toExtend<Store>();
    expectTypeOf<BatonError['code']>().toEqualTypeOf<ErrorCode>();
    expectTypeOf<MissingPeerDependencyError['packageName']>().toEqualTypeOf<string>();
    expectTypeOf(checkMachine).returns.toEqualTypeOf<ModelCheckReport>();
  });

  it('kinds are typed by their machine: the driver sees its emitted effects and dispatches only its events', () => {
    type Ping = SessionKind<typeof pingMachine>;
    type Driver = ReturnType<NonNullable<Ping['driver']>>;
    expectTypeOf<Parameters<Driver['effect']>[0]>().toEqualTypeOf<{ type: 'ping.sent'; n: number }>();
    type Context = Parameters<NonNullable<Ping['driver']>>[0];
    expectTypeOf<Parameters<Context['dispatch']>[0]>().toEqualTypeOf<{ type: 'input'; input: { id: string } } | { type: 'pong'; n: number }>();
    expectTypeOf<{ type: 'nonsense' }>().not.toExtend<Parameters<Context['dispatch']>[0]>();
    // A typed kind is still a kind the runtime takes.
    expectTypeOf<Ping>().toExtend<SessionKind>();
    expectTypeOf<KindDriver>().toEqualTypeOf<KindDriver<EventObject>>();
    expectTypeOf<DriverContext['dispatch']>().parameter(0).toEqualTypeOf<EventObject>();
  });
});
