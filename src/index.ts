/**
 * `baton-runtime`: the session runtime — createRuntime, the machines, the Store interface and
 * the memory store, typed errors and types. It loads no native addon, server, network client
 * or WebAssembly; those live behind their own entry points: `baton-runtime/sqlite`,
 * `baton-runtime/gateway`, `baton-runtime/openai` and `baton-runtime/testing`.
 */
export { createRuntime } from './runtime/runtime.ts';
export type { Runtime, RuntimeHealth, ControlAction, ShutdownOptions, KindOption } from './runtime/runtime.ts';
export type { SessionKind, SessionTag, DriverContext, KindDriver } from './runtime/kind.ts';
export { SessionTags, whenCommitted } from './runtime/kind.ts';
export { defaultQuestions } from './runtime/onboarding-kind.ts';
export type { Analyzer, OnboardingOptions } from './runtime/onboarding-kind.ts';
export { demoAnalyzer } from './agents/demo-analyzer.ts';
export type { RuntimeOptions, SessionOptions } from './runtime/options.ts';
export { sessionDefaults, runtimeDefaults } from './runtime/options.ts';
export type { Agent, Turn } from './runtime/turn.ts';
export { defineTool, toolSchema } from './runtime/tool.ts';
export type { Tool, ToolContext, ToolResult, ToolError, ToolErrorCode } from './runtime/tool.ts';
export type { Clock } from './runtime/clock.ts';
export type { CommandHandler, CommandSpec, CommandContext } from './runtime/commands.ts';
export type { SessionEvent, Receipt, SessionStatus, InputMessage, AnswerMessage, PermissionDecision, ScheduleSummary } from './runtime/types.ts';
export type { ScheduleSpec } from './runtime/schedule.ts';
export { MAX_SCHEDULES_PER_SESSION, MIN_EVERY_MS } from './runtime/schedule.ts';
export { TIMER_ID_PREFIX } from './runtime/timer-input.ts';
export {
  BatonError,
  InvalidMessageError,
  InputLimitError,
  SessionBusyError,
  SessionNotFoundError,
  AuthRequiredError,
  UnauthorizedError,
  SessionTerminatedError,
  RuntimeShuttingDownError,
  WorkerCrashError,
  TurnTimeoutError,
  RateLimitedError,
  ConversationNotStartedError,
  ConversationAlreadyCompleteError,
  StoreUnavailableError,
} from './errors.ts';
export { MissingPeerDependencyError } from './peer.ts';
export type { ErrorCode, InputLimitName } from './errors.ts';
export { sessionMachine } from '../machines/session.ts';
export type {
  BusyPolicy,
  CommandLane,
  SessionInput,
  SessionCommand,
  SessionSettings,
  SessionContext,
  SessionMachineEvent,
  SessionEffect,
} from '../machines/session.ts';
export type { AepEvent, DoneData, DoneReason, MachineOutput, PermissionRequestData, Question, SessionStateName, ToolCallData, ToolResultData } from '../machines/events.ts';
export { onboardingMachine } from '../machines/onboarding.ts';
export type {
  Analysis,
  AnalyzerInput,
  Answer,
  OnboardingContext,
  OnboardingEvent,
  OnboardingEffect,
  Profile,
  QuestionId,
} from '../machines/onboarding.ts';
export { demoAgent, echoUpper } from './agents/demo.ts';
export type { DemoAgentOptions } from './agents/demo.ts';
export { connectionMachine } from '../machines/connection.ts';
export type { ConnectionContext, ConnectionEvent, ConnectionEffect, OutboundFrame, HandshakeFailure } from '../machines/connection.ts';
export { MemoryStore, StaleEpochError, DEFAULT_KEEP_EVENTS } from './runtime/store.ts';
export type { Store, StoredSession, InboxEntry, TranscriptEntry, StepRecord, LoadedSession, LoadOptions, Awaitable, NodeIdentity, OwnedElsewhere, ScheduleRecord } from './runtime/store.ts';
export type { ClusterStore, ClusterHints, Mail } from './runtime/cluster-store.ts';
export type { Steering } from './runtime/turn.ts';
