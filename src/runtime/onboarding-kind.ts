import { fromPromise, type AnyMachineSnapshot } from 'xstate';
import { onboardingMachine, type Analysis, type AnalyzerInput, type OnboardingContext } from '../../machines/onboarding.ts';
import type { Question } from '../../machines/events.ts';
import { demoAnalyzer } from '../agents/demo-analyzer.ts';
import { SessionTags, whenCommitted, withContext, type SessionKind } from './kind.ts';

/** Reflects on one answer. Gets an AbortSignal that aborts if the session is stopped or terminated. */
export type Analyzer = (input: AnalyzerInput, signal: AbortSignal) => Promise<Analysis>;

export interface OnboardingOptions {
  /**
   * Reflects on each answer (often an LLM call).
   * @default the deterministic demo analyzer
   */
  analyzer?: Analyzer;
  /**
   * The three question texts, in order.
   * @default the texts in `defaultQuestions`
   */
  questions?: readonly [string, string, string];
}

export const defaultQuestions = [
  'What do you do, and what brings you here?',
  'What would you like to get done in your first week?',
  'How should I talk to you: brief and direct, or detailed?',
] as const;

const HEADERS = ['role', 'goal', 'style'] as const;

/** The onboarding kind: `worker_type: "onboarding"` on the wire. */
export function onboardingKind(options: OnboardingOptions = {}): SessionKind {
  const analyzer = options.analyzer ?? demoAnalyzer;
  const texts = options.questions ?? defaultQuestions;
  const questions = texts.map((question, i) => ({
    question,
    header: HEADERS[i] ?? `q${i + 1}`,
    options: [],
    multi_select: false,
  })) as unknown as readonly [Question, Question, Question];
  const machine = onboardingMachine.provide({
    // The analyzer (often an LLM call) runs only for an answer whose step is committed (C16).
    actors: {
      analyzer: fromPromise<Analysis, AnalyzerInput>(async ({ input, signal, system }) => {
        if (!(await whenCommitted(system))) throw new Error('the answer was not stored');
        if (signal.aborted) throw signal.reason;
        return analyzer(input, signal);
      }),
    },
  });
  return {
    machine,
    input: (sessionId) => ({ sessionId, questions }),
    // 2: states gained tags; their names and the context are as in version 1.
    version: 2,
    migrate: (snapshot, from) => (from === 1 ? snapshot : undefined),
    // The question texts are configuration: from the runtime at every activation.
    persist: (snapshot) => withContext(snapshot, { questions: undefined }),
    restore: (snapshot, input) => withContext(snapshot, { questions: (input as { questions: unknown }).questions }),
    answers: true,
    holds: (snapshot: AnyMachineSnapshot) => {
      const c = snapshot.context as OnboardingContext;
      return [...(c.current ? [c.current.id] : []), ...c.pending.map((a) => a.id)];
    },
    status: (snapshot: AnyMachineSnapshot) => {
      const c = (snapshot as unknown as { context: { pending: unknown[]; answered: unknown[] } }).context;
      const state = snapshot.matches('notStarted')
        ? 'created'
        : snapshot.matches({ conversation: 'complete' })
          ? 'complete'
          : snapshot.matches('terminated')
            ? 'terminated'
            : snapshot.matches('deleted')
              ? 'deleted'
              : snapshot.hasTag(SessionTags.busy)
                ? 'busy'
                : 'idle';
      return { state, backlog: c.pending.length, turns: c.answered.length };
    },
  };
}
