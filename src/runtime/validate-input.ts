import { InputLimitError, InvalidMessageError, type BatonError, type InputLimitName } from '../errors.ts';
import type { AnswerMessage } from './types.ts';
import { TIMER_ID_PREFIX } from './timer-input.ts';

/** AEP's `answers` (question text → answer) as one text, answers in their given order. */
export function answerText(answer: AnswerMessage | undefined): string | undefined {
  const answers = answer?.answers;
  if (typeof answers !== 'object' || answers === null) return undefined;
  const parts = Object.values(answers).map((a) => (Array.isArray(a) ? a.join(', ') : a));
  return parts.every((p) => typeof p === 'string') ? parts.join('\n') : undefined;
}

/** The sizes an input may have (`createRuntime`'s limit options, see `RuntimeOptions`). */
export type InputLimits = Readonly<Record<InputLimitName, number>>;

/**
 * Metadata nested deeper than the default `maxMetadataDepth` is refused: stores and
 * snapshots serialize it recursively, and too deep a value would throw there (a stack
 * overflow) instead of being refused here.
 */
export const MAX_METADATA_DEPTH = 32;

/**
 * Why an input cannot be taken — a typed error naming it — or `undefined`. Never throws: an
 * input that throws when read (a getter) is refused too.
 */
export function validate(sessionId: unknown, input: unknown, limits: InputLimits): BatonError | undefined {
  try {
    return problem(sessionId, input, limits);
  } catch (error) {
    return new InvalidMessageError(`input must be plain data: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * Metadata as it will be stored and read back: a JSON copy. What JSON cannot hold (a BigInt,
 * a `toJSON` that throws) is refused here, naming the input, instead of failing the store's
 * commit later; and the agent sees now exactly what it would see after a restart. Past
 * `maxMetadataBytes` of JSON it is refused too.
 */
export function plainMetadata(inputId: string, metadata: Readonly<Record<string, unknown>>, limits: InputLimits): Record<string, unknown> | BatonError {
  let json: string;
  let copy: unknown;
  try {
    json = JSON.stringify(metadata);
    copy = JSON.parse(json);
  } catch (error) {
    return new InvalidMessageError(`input "${inputId}": input.metadata must be JSON data: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof copy !== 'object' || copy === null || Array.isArray(copy)) return new InvalidMessageError(`input "${inputId}": input.metadata must be a JSON object`);
  const bytes = utf8Bytes(json, limits.maxMetadataBytes);
  if (bytes > limits.maxMetadataBytes) return new InputLimitError(inputId, 'maxMetadataBytes', limits.maxMetadataBytes, `input.metadata is ${bytes} bytes of JSON`);
  return copy as Record<string, unknown>;
}

function problem(sessionId: unknown, input: unknown, limits: InputLimits): BatonError | undefined {
  if (typeof input !== 'object' || input === null) return new InvalidMessageError('input must be an object { id, content }');
  const { id, content, metadata } = input as Record<string, unknown>;
  if (typeof id !== 'string' || id === '') return new InvalidMessageError('input.id must be a non-empty string');
  // The id is checked first: every later refusal names the input by it.
  if (id.length > limits.maxInputIdLength) return new InputLimitError(id.slice(0, 64) + '…', 'maxInputIdLength', limits.maxInputIdLength, `input.id is ${id.length} characters`);
  if (id.startsWith(TIMER_ID_PREFIX)) return new InvalidMessageError(`input "${id}": ids starting with "${TIMER_ID_PREFIX}" are the runtime's (schedules fire as such inputs, C20)`);
  if (typeof sessionId !== 'string' || sessionId === '') return new InvalidMessageError(`input "${id}": sessionId must be a non-empty string`);
  if (sessionId.length > limits.maxSessionIdLength) {
    return new InputLimitError(id, 'maxSessionIdLength', limits.maxSessionIdLength, `the session id is ${sessionId.length} characters`);
  }
  if (typeof content !== 'string') return new InvalidMessageError(`input "${id}": input.content must be a string`);
  const bytes = utf8Bytes(content, limits.maxContentBytes);
  if (bytes > limits.maxContentBytes) return new InputLimitError(id, 'maxContentBytes', limits.maxContentBytes, `input.content is ${bytes} bytes`);
  if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null)) return new InvalidMessageError(`input "${id}": input.metadata must be an object`);
  if (deeperThan(metadata, limits.maxMetadataDepth)) {
    return new InputLimitError(id, 'maxMetadataDepth', limits.maxMetadataDepth, `input.metadata must not nest more than ${limits.maxMetadataDepth} levels deep`);
  }
  return undefined;
}

/** UTF-8 bytes of `text`, without encoding it when it cannot exceed `max` (3 bytes per UTF-16 unit at most). */
function utf8Bytes(text: string, max: number): number {
  return text.length * 3 <= max ? text.length : Buffer.byteLength(text, 'utf8');
}

/** Objects and arrays nested more than `levels` deep (a cycle counts as too deep); stops looking past it. */
function deeperThan(value: unknown, levels: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (levels === 0) return true;
  for (const child of Object.values(value)) if (deeperThan(child, levels - 1)) return true;
  return false;
}

/** A `runtime.decide` decision as the runtime takes it (C19): the checks of an input, on `{ id, allowed, reason? }`. */
export function validateDecision(sessionId: unknown, decision: unknown, limits: InputLimits): BatonError | undefined {
  if (typeof decision !== 'object' || decision === null) return new InvalidMessageError('a decision must be an object { id, allowed, reason? }');
  const { id, allowed, reason } = decision as Record<string, unknown>;
  const base = validate(sessionId, { id, content: typeof reason === 'string' ? reason : '' }, limits);
  if (base) return base;
  if (typeof allowed !== 'boolean') return new InvalidMessageError(`permission "${String(id)}": allowed must be true or false`);
  if (reason !== undefined && typeof reason !== 'string') return new InvalidMessageError(`permission "${String(id)}": reason must be a string`);
  return undefined;
}
