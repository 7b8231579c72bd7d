import type { AnswerMessage } from './types.ts';

/** AEP's `answers` (question text → answer) as one text, answers in their given order. */
export function answerText(answer: AnswerMessage | undefined): string | undefined {
  const answers = answer?.answers;
  if (typeof answers !== 'object' || answers === null) return undefined;
  const parts = Object.values(answers).map((a) => (Array.isArray(a) ? a.join(', ') : a));
  return parts.every((p) => typeof p === 'string') ? parts.join('\n') : undefined;
}

/**
 * Metadata nested deeper is refused: stores and snapshots serialize it recursively, and
 * too deep a value would throw there (a stack overflow) instead of being refused here.
 */
export const MAX_METADATA_DEPTH = 32;

/** Why an input cannot be taken, or `undefined`. Never throws: an input that throws when read (a getter) is refused too. */
export function validate(sessionId: unknown, input: unknown): string | undefined {
  try {
    return problem(sessionId, input);
  } catch (error) {
    return `input must be plain data: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * Metadata as it will be stored and read back: a JSON copy. What JSON cannot hold (a BigInt,
 * a `toJSON` that throws) is refused here, naming the input, instead of failing the store's
 * commit later; and the agent sees now exactly what it would see after a restart.
 */
export function plainMetadata(metadata: Readonly<Record<string, unknown>>): Record<string, unknown> | string {
  try {
    const copy: unknown = JSON.parse(JSON.stringify(metadata));
    if (typeof copy !== 'object' || copy === null || Array.isArray(copy)) return 'input.metadata must be a JSON object';
    return copy as Record<string, unknown>;
  } catch (error) {
    return `input.metadata must be JSON data: ${error instanceof Error ? error.message : String(error)}`;
  }
}

function problem(sessionId: unknown, input: unknown): string | undefined {
  if (typeof sessionId !== 'string' || sessionId === '') return 'sessionId must be a non-empty string';
  if (typeof input !== 'object' || input === null) return 'input must be an object { id, content }';
  const { id, content, metadata } = input as Record<string, unknown>;
  if (typeof id !== 'string' || id === '') return 'input.id must be a non-empty string';
  if (typeof content !== 'string') return 'input.content must be a string';
  if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null)) return 'input.metadata must be an object';
  if (deeperThan(metadata, MAX_METADATA_DEPTH)) return `input.metadata must not nest more than ${MAX_METADATA_DEPTH} levels deep`;
  return undefined;
}

/** Objects and arrays nested more than `levels` deep (a cycle counts as too deep); stops looking past it. */
function deeperThan(value: unknown, levels: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (levels === 0) return true;
  for (const child of Object.values(value)) if (deeperThan(child, levels - 1)) return true;
  return false;
}
