import type { Analysis, AnalyzerInput } from '../../machines/onboarding.ts';

/**
 * The built-in onboarding analyzer: deterministic, no network, so the gateway can run
 * onboarding out of the box. An answer under three words gets a fixed "brief" reflection
 * and leaves the profile unchanged; a longer one is reflected by quoting its key phrase
 * (its first clause, at most eight words), which is stored in the profile under the
 * question's header.
 *
 * @example
 * await demoAnalyzer({ questionId: 'q1', question, answer: 'I build chat tools for clinics', profile: {} });
 * // { reflection: 'You said "I build chat tools for clinics" — noted.', profile: { role: 'I build chat tools for clinics' } }
 */
export async function demoAnalyzer(input: AnalyzerInput): Promise<Analysis> {
  const words = input.answer.trim().split(/\s+/).filter(Boolean);
  if (words.length < 3) return { reflection: 'Short and sweet — noted. Tell me more any time.' };
  const phrase = keyPhrase(input.answer);
  return { reflection: `You said "${phrase}" — noted.`, profile: { [input.question.header]: phrase } };
}

function keyPhrase(answer: string): string {
  const clause = answer.trim().split(/[,.;:!?\n]/)[0] ?? answer;
  const words = clause.split(/\s+/).filter(Boolean);
  return words.length > 8 ? `${words.slice(0, 8).join(' ')}…` : words.join(' ');
}
