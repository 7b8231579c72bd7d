/**
 * The onboarding machine: three questions, each answer reflected on by an analyzer.
 *
 *   notStarted → conversation{ q1 → analyzing1 → q2 → analyzing2 → q3 → analyzing3 → complete }
 *
 * The order is the chain of states, not a counter (C13). An answer that arrives while
 * the previous one is analyzed waits in `context.pending` (XState has no postpone) and is
 * applied on entering the next question: never lost, never applied twice. `complete` is
 * final for the conversation, while the session itself stays up to reject late answers
 * with `CONVERSATION_ALREADY_COMPLETE`, and to be terminated or deleted.
 *
 * State tags tell the runtime what the session is doing, so it never reads state names:
 * `waiting-for-user` and `quiescent` on q1–q3 (a question is asked; an answer labelled for a
 * later question waits on the user too), `busy` while an answer is analyzed, `quiescent` on
 * `complete` and `terminated`.
 *
 * The analyzer is injected with `.provide({ actors: { analyzer } })`; it gets an
 * AbortSignal that aborts when its state is left. Pure: imports only from xstate.
 */
import { setup, assign, emit, enqueueActions, fromPromise } from 'xstate';
import type { MachineOutput, MachineReceipt, Question } from './events.ts';

export type QuestionId = 'q1' | 'q2' | 'q3';

export interface Answer {
  /** The client message id of the input that carried the answer. */
  readonly id: string;
  readonly content: string;
  /** Set by a `question_response`; a plain input answers the current question. */
  readonly questionId?: string;
}

/**
 * Only what the machine needs of an answer enters the context: its id, its text (the
 * analyzer's input, re-invoked on restore) and the question it names. Anything else an
 * input carries (metadata) stays out: XState's snapshot persistence turns context values
 * shaped like actor references into actors on restore.
 */
const answerOf = (input: Answer, questionId: string | undefined = input.questionId): Answer => ({
  id: input.id,
  content: input.content,
  ...(questionId !== undefined && { questionId }),
});

/** The profile built from the answers, keyed by each question's `header`. */
export type Profile = Readonly<Record<string, string>>;

export interface AnalyzerInput {
  readonly questionId: QuestionId;
  readonly question: Question;
  readonly answer: string;
  readonly profile: Profile;
}

export interface Analysis {
  /** Sent to the user as `message{role:'assistant'}`. */
  readonly reflection: string;
  /** Entries to merge into the profile; omit to leave it unchanged. */
  readonly profile?: Profile;
}

export interface OnboardingContext {
  readonly sessionId: string;
  readonly questions: readonly [Question, Question, Question];
  readonly profile: Profile;
  /** Answers received but not yet applied, in arrival order. */
  readonly pending: readonly Answer[];
  /** The answer being analyzed. */
  readonly current: Answer | null;
  readonly answered: readonly QuestionId[];
}

export type OnboardingEvent =
  | { type: 'activate' }
  | { type: 'start' }
  | { type: 'input'; input: Answer }
  | { type: 'terminate' }
  | { type: 'delete' }
  | { type: 'shutdown' }
  | { type: 'shutdown.abort' };

export type OnboardingEffect =
  | { type: 'output'; event: MachineOutput }
  | { type: 'receipt'; receipt: MachineReceipt }
  | { type: 'drained' };

type Enqueue = { emit: (effect: OnboardingEffect) => void };
const IDS = ['q1', 'q2', 'q3'] as const;
const out = (enqueue: Enqueue, event: MachineOutput) => enqueue.emit({ type: 'output', event });

type RejectCode = 'CONVERSATION_NOT_STARTED' | 'CONVERSATION_ALREADY_COMPLETE' | 'INVALID_MESSAGE' | 'SESSION_TERMINATED';

/**
 * Rejects in both vocabularies: a receipt for the sender, an `error` event for the stream.
 * The event names the input (`event_id`): it is the only answer the sender gets, and a
 * client must be able to settle what it sent.
 */
function reject(enqueue: Enqueue, event: OnboardingEvent, code: RejectCode, message: string) {
  enqueue.emit({ type: 'receipt', receipt: { status: 'rejected', code, message, announced: true } });
  const eventId = event.type === 'input' ? event.input.id : undefined;
  out(enqueue, { type: 'error', data: { code, message, ...(eventId !== undefined && { event_id: eventId }) } });
}

export const onboardingMachine = setup({
  types: {
    context: {} as OnboardingContext,
    events: {} as OnboardingEvent,
    input: {} as { sessionId: string; questions: readonly [Question, Question, Question] },
    emitted: {} as OnboardingEffect,
  },
  actors: {
    // Replaced by the runtime with `.provide`; this default only says so.
    analyzer: fromPromise<Analysis, AnalyzerInput>(async () => {
      throw new Error('no analyzer provided');
    }),
  },
  guards: {
    /** The oldest waiting answer is for this question (a plain input answers whatever is asked). */
    hasPending: ({ context }, params: { n: 0 | 1 | 2 }) => {
      const next = context.pending[0];
      return next !== undefined && (next.questionId === undefined || next.questionId === IDS[params.n]);
    },
    /** A `question_response` for a question that already has its answer. */
    alreadyAnswered: ({ context, event }) =>
      event.type === 'input' &&
      event.input.questionId !== undefined &&
      (context.answered.includes(event.input.questionId as QuestionId) || context.current?.questionId === event.input.questionId),
    /** More answers than questions left: the conversation has no place for this one. */
    noQuestionLeft: ({ context }) => context.answered.length + (context.current ? 1 : 0) + context.pending.length >= 3,
    /** A `question_response` naming a question that does not come next. */
    notNext: ({ context, event }) => {
      if (event.type !== 'input' || event.input.questionId === undefined) return false;
      const next = IDS[context.answered.length + (context.current ? 1 : 0) + context.pending.length];
      return event.input.questionId !== next;
    },
  },
  actions: {
    ask: enqueueActions(({ context, enqueue }, params: { n: 0 | 1 | 2 }) => {
      out(enqueue, { type: 'question_request', data: { id: IDS[params.n], questions: [context.questions[params.n]] } });
    }),
    /** In `qN`: the answer just received is analyzed at once. */
    takeNow: enqueueActions(({ event, enqueue }, params: { n: 0 | 1 | 2 }) => {
      if (event.type !== 'input') return;
      enqueue.emit({ type: 'receipt', receipt: { status: 'accepted', mode: 'primary' } });
      enqueue.assign({ current: answerOf(event.input, IDS[params.n]) });
    }),
    /** On entering `qN`: the oldest waiting answer is applied to it. */
    takePending: assign(({ context }, params: { n: 0 | 1 | 2 }) => {
      const [answer, ...rest] = context.pending;
      return answer ? { current: { ...answer, questionId: IDS[params.n] }, pending: rest } : {};
    }),
    wait: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'input') return;
      enqueue.assign({ pending: [...context.pending, answerOf(event.input)] });
      enqueue.emit({ type: 'receipt', receipt: { status: 'accepted', mode: 'queued' } });
    }),
    reflect: enqueueActions(({ context, event, enqueue }, params: { n: 0 | 1 | 2 }) => {
      const analysis = (event as unknown as { output: Analysis }).output;
      out(enqueue, {
        type: 'message',
        data: { id: `${IDS[params.n]}:reflection`, role: 'assistant', content: analysis.reflection },
      });
      // Each analysis is a turn on the wire, closed by its done (and its answer consumed).
      const ids = context.current ? [context.current.id] : [];
      out(enqueue, { type: 'done', data: { success: true, dropped: false, input_ids: ids } });
      enqueue.assign({
        profile: { ...context.profile, ...analysis.profile },
        answered: [...context.answered, IDS[params.n]],
        current: null,
      });
    }),
    analyzerFailed: enqueueActions(({ context, event, enqueue }) => {
      const error = (event as unknown as { error: unknown }).error;
      const message = `the analyzer failed: ${error instanceof Error ? error.message : String(error)}; please answer again`;
      out(enqueue, { type: 'error', data: { code: 'WORKER_CRASH', message } });
      const ids = context.current ? [context.current.id] : [];
      out(enqueue, { type: 'done', data: { success: false, dropped: false, reason: 'failed', input_ids: ids } });
      // The failed answer is consumed; the question is asked again.
      enqueue.assign({ current: null });
    }),
    rejectNotStarted: enqueueActions(({ event, enqueue }) =>
      reject(enqueue, event, 'CONVERSATION_NOT_STARTED', 'the onboarding has not started yet'),
    ),
    rejectComplete: enqueueActions(({ event, enqueue }) =>
      reject(enqueue, event, 'CONVERSATION_ALREADY_COMPLETE', 'the onboarding is already complete'),
    ),
    rejectAnswered: enqueueActions(({ event, enqueue }) => {
      const id = event.type === 'input' ? event.input.questionId : undefined;
      reject(enqueue, event, 'INVALID_MESSAGE', `question ${id} has already been answered`);
    }),
    rejectNotNext: enqueueActions(({ event, enqueue }) => {
      const id = event.type === 'input' ? event.input.questionId : undefined;
      reject(enqueue, event, 'INVALID_MESSAGE', `question ${id} is not the next one to answer`);
    }),
    rejectTerminated: enqueueActions(({ event, enqueue }) => reject(enqueue, event, 'SESSION_TERMINATED', 'the session is terminated')),
    announceCreated: emit({ type: 'output', event: { type: 'state', data: { state: 'created' } } }),
    announceComplete: emit({
      type: 'output',
      event: { type: 'state', data: { state: 'terminated', message: 'onboarding_complete' } },
    }),
    announceTerminated: emit({ type: 'output', event: { type: 'state', data: { state: 'terminated' } } }),
    announceDeleted: emit({ type: 'output', event: { type: 'state', data: { state: 'deleted' } } }),
    /**
     * Shutdown: the answers not yet reflected on are reported, and left in place — the
     * runtime stops the actor next, and a durable store would resume them.
     */
    drain: enqueueActions(({ context, enqueue }) => {
      const cancelled = [...(context.current ? [context.current.id] : []), ...context.pending.map((a) => a.id)];
      if (cancelled.length > 0) {
        out(enqueue, {
          type: 'done',
          data: { success: false, dropped: false, reason: 'shutdown', input_ids: [], cancelled_input_ids: cancelled },
        });
      }
      enqueue.emit({ type: 'drained' });
    }),
  },
}).createMachine({
  id: 'onboarding',
  context: ({ input }) => ({
    sessionId: input.sessionId,
    questions: input.questions,
    profile: {},
    pending: [],
    current: null,
    answered: [],
  }),
  initial: 'notStarted',
  on: {
    terminate: '.terminated',
    delete: '.deleted',
    shutdown: { actions: 'drain' },
  },
  states: {
    notStarted: {
      entry: 'announceCreated',
      on: {
        start: 'conversation',
        input: { actions: 'rejectNotStarted' },
      },
    },
    conversation: {
      initial: 'q1',
      on: {
        // Checked before any state below handles the answer: these are never applied.
        input: [
          { guard: 'alreadyAnswered', actions: 'rejectAnswered' },
          { guard: 'noQuestionLeft', actions: 'rejectComplete' },
          { guard: 'notNext', actions: 'rejectNotNext' },
          { actions: 'wait' },
        ],
      },
      states: {
        q1: {
          tags: ['waiting-for-user', 'quiescent'],
          entry: { type: 'ask', params: { n: 0 } },
          always: { guard: { type: 'hasPending', params: { n: 0 } }, target: 'analyzing1', actions: { type: 'takePending', params: { n: 0 } } },
          on: {
            input: [
              { guard: 'notNext', actions: 'rejectNotNext' },
              { target: 'analyzing1', actions: { type: 'takeNow', params: { n: 0 } } },
            ],
          },
        },
        analyzing1: {
          tags: ['busy'],
          invoke: {
            id: 'analyzer1',
            src: 'analyzer',
            input: ({ context }) => analyzerInput(context, 0),
            onDone: { target: 'q2', actions: { type: 'reflect', params: { n: 0 } } },
            onError: { target: 'q1', actions: 'analyzerFailed' },
          },
        },
        q2: {
          tags: ['waiting-for-user', 'quiescent'],
          entry: { type: 'ask', params: { n: 1 } },
          always: { guard: { type: 'hasPending', params: { n: 1 } }, target: 'analyzing2', actions: { type: 'takePending', params: { n: 1 } } },
          on: {
            input: [
              { guard: 'alreadyAnswered', actions: 'rejectAnswered' },
              // A labelled answer may wait while its question is asked again after a failure.
              { guard: 'noQuestionLeft', actions: 'rejectComplete' },
              { guard: 'notNext', actions: 'rejectNotNext' },
              { target: 'analyzing2', actions: { type: 'takeNow', params: { n: 1 } } },
            ],
          },
        },
        analyzing2: {
          tags: ['busy'],
          invoke: {
            id: 'analyzer2',
            src: 'analyzer',
            input: ({ context }) => analyzerInput(context, 1),
            onDone: { target: 'q3', actions: { type: 'reflect', params: { n: 1 } } },
            onError: { target: 'q2', actions: 'analyzerFailed' },
          },
        },
        q3: {
          tags: ['waiting-for-user', 'quiescent'],
          entry: { type: 'ask', params: { n: 2 } },
          always: { guard: { type: 'hasPending', params: { n: 2 } }, target: 'analyzing3', actions: { type: 'takePending', params: { n: 2 } } },
          on: {
            input: [
              { guard: 'alreadyAnswered', actions: 'rejectAnswered' },
              { guard: 'notNext', actions: 'rejectNotNext' },
              { target: 'analyzing3', actions: { type: 'takeNow', params: { n: 2 } } },
            ],
          },
        },
        analyzing3: {
          tags: ['busy'],
          invoke: {
            id: 'analyzer3',
            src: 'analyzer',
            input: ({ context }) => analyzerInput(context, 2),
            onDone: { target: 'complete', actions: { type: 'reflect', params: { n: 2 } } },
            onError: { target: 'q3', actions: 'analyzerFailed' },
          },
        },
        complete: {
          type: 'final',
          tags: ['quiescent'],
          entry: 'announceComplete',
          on: { input: { actions: 'rejectComplete' } },
        },
      },
    },
    terminated: {
      tags: ['quiescent'],
      entry: 'announceTerminated',
      on: { input: { actions: 'rejectTerminated' }, terminate: {} },
    },
    deleted: { type: 'final', entry: 'announceDeleted' },
  },
});

function analyzerInput(context: OnboardingContext, n: 0 | 1 | 2): AnalyzerInput {
  return { questionId: IDS[n], question: context.questions[n], answer: context.current?.content ?? '', profile: context.profile };
}
