import { describe, expect, it } from 'vitest';
import type { AnyMachineSnapshot } from 'xstate';
import { defaultQuestions, onboardingMachine, type OnboardingContext, type OnboardingEvent } from '../../src/index.ts';
import { checkMachine, formatPath, type ModelCheckReport } from '../../src/testing/index.ts';
import { expectReadmeShows } from './readme.ts';

const ctx = (s: AnyMachineSnapshot) => s.context as OnboardingContext;
const questions = defaultQuestions.map((question, i) => ({ question, header: `h${i}`, options: [], multi_select: false }));
const asked = (emitted: readonly { type: string }[]) =>
  emitted.flatMap((e) => {
    const out = (e as unknown as { event?: { type: string; data: { id: string } } }).event;
    return e.type === 'output' && out?.type === 'question_request' ? [out.data.id] : [];
  });

/** Everything the machine knows; an analyzer's done/error only where that analyzer runs, as in life. */
function onboardingEvents(s: AnyMachineSnapshot): (OnboardingEvent | { type: string; output?: unknown; error?: unknown })[] {
  const running = [1, 2, 3].filter((n) => s.matches({ conversation: `analyzing${n}` }));
  return [
    { type: 'activate' },
    { type: 'start' },
    { type: 'input', input: { id: 'a', content: 'a considered answer' } },
    ...(['q1', 'q2', 'q3', 'q9'] as const).map((questionId) => ({ type: 'input' as const, input: { id: `r-${questionId}`, content: 'answer', questionId } })),
    { type: 'terminate' },
    { type: 'delete' },
    { type: 'shutdown' },
    ...running.flatMap((n) => [
      { type: `xstate.done.actor.analyzer${n}`, output: { reflection: `reflection ${n}`, profile: { [`h${n - 1}`]: 'x' } } },
      { type: `xstate.error.actor.analyzer${n}`, error: new Error('analyzer down') },
    ]),
  ];
}

function check(): ModelCheckReport {
  return checkMachine(onboardingMachine, {
    name: 'onboarding',
    inputs: [{ sessionId: 'o', questions }],
    events: onboardingEvents as never,
    maxDepth: 20,
    invariants: {
      'answered in order, none skipped': (s) => ctx(s).answered.join(',') === ['q1', 'q2', 'q3'].slice(0, ctx(s).answered.length).join(','),
      'never more answers than questions': (s) => ctx(s).answered.length + ctx(s).pending.length + (ctx(s).current ? 1 : 0) <= 3,
      'complete only after three answers': (s) => !s.matches({ conversation: 'complete' }) || ctx(s).answered.length === 3,
      // C11: the runtime reads these tags, never state names.
      'busy (the tag) exactly while an analyzer runs': (s) => s.hasTag('busy') === Object.keys(s.children).length > 0,
      'quiescent (the tag): no analyzer runs, and no answer waits that the machine would take up': (s) =>
        !s.hasTag('quiescent') || (Object.keys(s.children).length === 0 && (s.matches('terminated') || ctx(s).current === null)),
      'waiting for the user exactly while a question is open': (s) =>
        s.hasTag('waiting-for-user') === ['q1', 'q2', 'q3'].some((q) => s.matches({ conversation: q })),
    },
    stepInvariants: {
      'a question is asked only when the previous ones are answered': ({ to, emitted }) =>
        asked(emitted).every((id) => id === `q${ctx(to).answered.length + 1}` || (ctx(to).current !== null && id === `q${ctx(to).answered.length + 1}`)),
      'an answer already given never changes the answers': ({ from, to }) =>
        ctx(from).answered.every((id, i) => ctx(to).answered[i] === id) || to.matches('deleted'),
    },
  });
}

describe('model check: onboarding machine', () => {
  // Run once, read by both tests below.
  let checked: ModelCheckReport | undefined;
  const onboardingReport = () => (checked ??= check());

  it('reaches every state and transition; questions only ever q1, q2, q3 in order, none skipped', () => {
    const report = onboardingReport();
    console.log(report.summary);
    expect(report.violations.map(formatPath)).toEqual([]);
    expect(report.transitions.missing).toEqual([]);
    expect(report.states.missing).toEqual([]);
  });

  it('is reported in the README exactly as printed', () => {
    expectReadmeShows(onboardingReport());
  });
});
