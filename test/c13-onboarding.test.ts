import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ConversationAlreadyCompleteError,
  ConversationNotStartedError,
  InvalidMessageError,
  demoAnalyzer,
  defaultQuestions,
  type Analysis,
  type AnalyzerInput,
  type Receipt,
} from '../src/index.ts';
import { runScheduled, seqGaps, settle, testRuntime } from './helpers.ts';

/** An analyzer the test finishes by hand; records every call. */
function controlledAnalyzer() {
  const calls: { input: AnalyzerInput; signal: AbortSignal; resolve(a: Analysis): void; reject(e: unknown): void }[] = [];
  const analyzer = (input: AnalyzerInput, signal: AbortSignal) =>
    new Promise<Analysis>((resolve, reject) => calls.push({ input, signal, resolve, reject }));
  return { analyzer, calls };
}

const questionIds = (t: ReturnType<typeof testRuntime>, id: string) =>
  t.of(id).flatMap((e) => (e.type === 'question_request' ? [e.data.id] : []));

async function onboarding(analyzer = controlledAnalyzer().analyzer) {
  const t = testRuntime({ agent: async () => undefined, onboarding: { analyzer } });
  await t.runtime.open('o', { kind: 'onboarding' });
  await t.runtime.control('o', 'start');
  return t;
}

describe('C13 onboarding order', () => {
  it('asks q1, q2, q3 in order with answers sent back to back while the analyzer is slow', async () => {
    const a = controlledAnalyzer();
    const t = await onboarding(a.analyzer);
    const receipts = await Promise.all([
      t.runtime.send('o', { id: 'a1', content: 'I build chat tools' }),
      t.runtime.send('o', { id: 'a2', content: 'ship a bot' }),
      t.runtime.send('o', { id: 'a3', content: 'brief please' }),
    ]);
    expect(receipts).toEqual([
      { status: 'accepted', mode: 'primary', durability: 'volatile' },
      { status: 'accepted', mode: 'queued', durability: 'volatile' },
      { status: 'accepted', mode: 'queued', durability: 'volatile' },
    ]);
    await settle();
    expect(a.calls).toHaveLength(1); // one analysis at a time
    for (let i = 0; i < 3; i++) {
      a.calls[i]!.resolve({ reflection: `reflection ${i + 1}`, profile: { [`k${i}`]: `v${i}` } });
      await settle();
    }
    expect(questionIds(t, 'o')).toEqual(['q1', 'q2', 'q3']);
    expect(a.calls.map((c) => [c.input.questionId, c.input.answer])).toEqual([
      ['q1', 'I build chat tools'],
      ['q2', 'ship a bot'],
      ['q3', 'brief please'],
    ]);
    const flow = t.of('o').map((e) =>
      e.type === 'question_request' ? e.data.id : e.type === 'message' ? e.data.content : e.type === 'state' ? `state:${e.data.state}` : e.type,
    );
    expect(flow).toEqual([
      'state:created',
      'q1',
      'reflection 1',
      'done',
      'q2',
      'reflection 2',
      'done',
      'q3',
      'reflection 3',
      'done',
      'state:terminated',
    ]);
    // Each analysis closes like a turn, naming the answer it consumed.
    expect(t.dones('o').map((d) => [d.success, d.input_ids])).toEqual([
      [true, ['a1']],
      [true, ['a2']],
      [true, ['a3']],
    ]);
    expect(t.of('o').at(-1)?.data).toEqual({ state: 'terminated', message: 'onboarding_complete' });
    expect(await t.runtime.status('o')).toMatchObject({ state: 'complete', turns: 3 });
    const snapshot = t.runtime.snapshot('o') as { context: { profile: Record<string, string> } };
    expect(snapshot.context.profile).toEqual({ k0: 'v0', k1: 'v1', k2: 'v2' });
    expect(seqGaps(t.events)).toEqual([]);
  });

  it('gives the same result for every interleaving of answers and analyses (fast-check scheduler)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.integer({ min: 3, max: 5 }), async (s, answers) => {
        const calls: string[] = [];
        const analyzer = async (input: AnalyzerInput) => {
          calls.push(input.questionId);
          await s.schedule(Promise.resolve(), `analyze ${input.questionId}`);
          return { reflection: `on ${input.answer}` };
        };
        const t = await onboarding(analyzer);
        const sent: Promise<Receipt>[] = [];
        const arrived: number[] = [];
        for (let i = 1; i <= answers; i++) {
          void s.schedule(Promise.resolve(), `answer ${i}`).then(() => {
            arrived.push(i);
            sent.push(t.runtime.send('o', { id: `a${i}`, content: `answer ${i}` }));
          });
        }
        await runScheduled(s);
        const receipts = (await Promise.all(sent)).map((r) => r.code ?? 'ok');
        expect(questionIds(t, 'o')).toEqual(['q1', 'q2', 'q3']);
        expect(calls).toEqual(['q1', 'q2', 'q3']);
        // Answers apply in arrival order; those beyond the third are refused, never applied.
        const reflections = t.of('o').flatMap((e) => (e.type === 'message' ? [e.data.content] : []));
        expect(reflections).toEqual(arrived.slice(0, 3).map((i) => `on answer ${i}`));
        expect(receipts.slice(0, 3)).toEqual(['ok', 'ok', 'ok']);
        expect(receipts.filter((r) => r === 'CONVERSATION_ALREADY_COMPLETE')).toHaveLength(answers - 3);
        expect((await t.runtime.status('o'))?.state).toBe('complete');
      }),
    );
  });

  it('rejects an answer before start with ConversationNotStartedError, as a receipt and an error event naming it', async () => {
    const t = testRuntime({ agent: async () => undefined });
    await t.runtime.open('o', { kind: 'onboarding' });
    const receipt = await t.runtime.send('o', { id: 'a1', content: 'too early' });
    expect(receipt.error).toBeInstanceOf(ConversationNotStartedError);
    expect(receipt.code).toBe('CONVERSATION_NOT_STARTED');
    expect(t.of('o').at(-1)).toMatchObject({ type: 'error', data: { code: 'CONVERSATION_NOT_STARTED', event_id: 'a1' } });
    // Not remembered as accepted: the same id works once started.
    await t.runtime.control('o', 'start');
    expect((await t.runtime.send('o', { id: 'a1', content: 'too early' })).status).toBe('accepted');
  });

  it('rejects a fourth answer with ConversationAlreadyCompleteError and stays usable', async () => {
    const t = await onboarding(demoAnalyzer);
    for (let i = 1; i <= 3; i++) {
      await t.runtime.send('o', { id: `a${i}`, content: `answer number ${i}` });
      await settle();
    }
    expect((await t.runtime.status('o'))?.state).toBe('complete');
    const fourth = await t.runtime.send('o', { id: 'a4', content: 'one more thing' });
    expect(fourth.error).toBeInstanceOf(ConversationAlreadyCompleteError);
    const late = await t.runtime.respond('o', { id: 'a5', questionId: 'q3', answers: { x: 'again' } });
    expect(late.code).toBe('CONVERSATION_ALREADY_COMPLETE');
    expect(t.of('o').filter((e) => e.type === 'error').map((e) => e.data.code)).toEqual([
      'CONVERSATION_ALREADY_COMPLETE',
      'CONVERSATION_ALREADY_COMPLETE',
    ]);
    // The session still answers other requests.
    expect(await t.runtime.status('o')).toMatchObject({ kind: 'onboarding', state: 'complete' });
    await t.runtime.control('o', 'delete');
    await settle();
    expect(await t.runtime.status('o')).toBeUndefined();
  });

  it('rejects a question_response for an answered question with INVALID_MESSAGE and changes nothing', async () => {
    const a = controlledAnalyzer();
    const t = await onboarding(a.analyzer);
    // The double click: same question, a new envelope id, in the same tick, while q1 is analyzed.
    const [first, twice] = await Promise.all([
      t.runtime.respond('o', { id: 'r1', questionId: 'q1', answers: { [defaultQuestions[0]]: 'first' } }),
      t.runtime.respond('o', { id: 'r2', questionId: 'q1', answers: { [defaultQuestions[0]]: 'first' } }),
    ]);
    expect(first.status).toBe('accepted');
    expect(twice.code).toBe('INVALID_MESSAGE');
    expect(twice.error?.message).toBe('question q1 has already been answered');
    await settle();
    expect(a.calls).toHaveLength(1);
    a.calls[0]!.resolve({ reflection: 'ok' });
    await settle();
    expect((await t.runtime.respond('o', { id: 'r3', questionId: 'q1', answers: { q: 'again' } })).code).toBe('INVALID_MESSAGE');
    expect((await t.runtime.respond('o', { id: 'r4', questionId: 'q3', answers: { q: 'skipping ahead' } })).code).toBe('INVALID_MESSAGE');
    expect((await t.runtime.respond('o', { id: 'r5', questionId: 'q2', answers: { q: 'second' } })).status).toBe('accepted');
    await settle();
    expect(a.calls.map((c) => [c.input.questionId, c.input.answer])).toEqual([
      ['q1', 'first'],
      ['q2', 'second'],
    ]);
    // A resend of the same envelope is a duplicate, not a second answer (C10).
    expect((await t.runtime.respond('o', { id: 'r5', questionId: 'q2', answers: { q: 'second' } })).status).toBe('duplicate');
  });

  it('asks the question again when the analyzer throws, and carries on', async () => {
    const a = controlledAnalyzer();
    const t = await onboarding(a.analyzer);
    await t.runtime.send('o', { id: 'a1', content: 'first try' });
    await settle();
    a.calls[0]!.reject(new Error('model unavailable'));
    await settle();
    expect(t.of('o').find((e) => e.type === 'error')?.data).toMatchObject({ code: 'WORKER_CRASH' });
    expect(questionIds(t, 'o')).toEqual(['q1', 'q1']);
    await t.runtime.send('o', { id: 'a2', content: 'second try' });
    await settle();
    a.calls[1]!.resolve({ reflection: 'got it' });
    await settle();
    expect(questionIds(t, 'o')).toEqual(['q1', 'q1', 'q2']);
    expect(a.calls.map((c) => c.input.questionId)).toEqual(['q1', 'q1']);
  });

  it('aborts the analysis when the session is terminated', async () => {
    const a = controlledAnalyzer();
    const t = await onboarding(a.analyzer);
    await t.runtime.send('o', { id: 'a1', content: 'an answer' });
    await settle();
    expect(a.calls[0]!.signal.aborted).toBe(false);
    await t.runtime.control('o', 'terminate');
    await settle();
    expect(a.calls[0]!.signal.aborted).toBe(true);
    expect((await t.runtime.send('o', { id: 'a2', content: 'x' })).code).toBe('SESSION_TERMINATED');
  });

  it('runs two onboarding sessions side by side without touching each other', async () => {
    const a = controlledAnalyzer();
    const t = testRuntime({ agent: async () => undefined, onboarding: { analyzer: a.analyzer } });
    for (const id of ['x', 'y']) {
      await t.runtime.open(id, { kind: 'onboarding' });
      await t.runtime.control(id, 'start');
    }
    await Promise.all([
      t.runtime.send('x', { id: 'a1', content: 'x one' }),
      t.runtime.send('y', { id: 'a1', content: 'y one' }),
      t.runtime.send('x', { id: 'a2', content: 'x two' }),
    ]);
    await settle();
    a.calls.find((c) => c.input.answer === 'y one')!.resolve({ reflection: 'y1' });
    await settle();
    expect(questionIds(t, 'y')).toEqual(['q1', 'q2']);
    expect(questionIds(t, 'x')).toEqual(['q1']);
    a.calls.find((c) => c.input.answer === 'x one')!.resolve({ reflection: 'x1' });
    await settle();
    expect(a.calls.map((c) => c.input.answer)).toEqual(['x one', 'y one', 'x two']);
    expect(await t.runtime.status('x')).toMatchObject({ state: 'busy', turns: 1 });
    expect(await t.runtime.status('y')).toMatchObject({ state: 'idle', turns: 1 });
    expect(seqGaps(t.events)).toEqual([]);
  });

  it('treats a command-looking answer as an answer, and keeps kinds apart', async () => {
    const t = await onboarding();
    expect((await t.runtime.send('o', { id: 'a1', content: '/status is what I do' })).mode).toBe('primary');
    expect((await t.runtime.send('o', { id: 'a2', content: 'x' }, { kind: 'agent' })).code).toBe('INVALID_MESSAGE');
    await t.runtime.open('plain');
    expect((await t.runtime.respond('plain', { id: 'r', questionId: 'q1', answers: { q: 'a' } })).code).toBe('INVALID_MESSAGE');
    expect((await t.runtime.respond('missing', { id: 'r', questionId: 'q1', answers: { q: 'a' } })).code).toBe('SESSION_NOT_FOUND');
    const unknown = t.runtime.open('n', { kind: 'nope' });
    await expect(unknown).rejects.toBeInstanceOf(InvalidMessageError);
    await expect(unknown).rejects.toThrow(/unknown session kind "nope"/);
  });

  it('reports waiting answers as cancelled at shutdown', async () => {
    const a = controlledAnalyzer();
    const t = await onboarding(a.analyzer);
    await Promise.all([t.runtime.send('o', { id: 'a1', content: 'one' }), t.runtime.send('o', { id: 'a2', content: 'two' })]);
    await settle(); // a1 is being analyzed, a2 waits
    await t.runtime.shutdown({ drainMs: 0 });
    expect(t.dones('o')).toEqual([expect.objectContaining({ reason: 'shutdown', cancelled_input_ids: ['a1', 'a2'] })]);
  });
});

describe('demo analyzer', () => {
  const question = { question: defaultQuestions[0], header: 'role', options: [], multi_select: false };

  it('gives a fixed brief reflection for an answer under three words and leaves the profile alone', async () => {
    expect(await demoAnalyzer({ questionId: 'q1', question, answer: 'just me', profile: {} })).toEqual({
      reflection: 'Short and sweet — noted. Tell me more any time.',
    });
  });

  it("quotes the answer's key phrase and stores it under the question's header", async () => {
    const result = await demoAnalyzer({
      questionId: 'q1',
      question,
      answer: 'I run support for a small clinic, mostly scheduling. Also billing.',
      profile: {},
    });
    expect(result).toEqual({
      reflection: 'You said "I run support for a small clinic" — noted.',
      profile: { role: 'I run support for a small clinic' },
    });
  });
});
