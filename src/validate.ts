import type { z } from 'zod';

/**
 * Validates options at a boundary: a `TypeError` names the option and quotes the bad value,
 * e.g. `createRuntime: option "debounceMs" too small: expected number to be >=0, got -1`.
 */
export function validateOptions<T>(where: string, schema: z.ZodType, value: T): T {
  const result = schema.safeParse(value);
  if (result.success) return value;
  const issue = result.error.issues[0];
  if (!issue) throw new TypeError(`${where}: invalid options`);
  if (issue.code === 'unrecognized_keys') {
    throw new TypeError(`${where}: unknown option ${issue.keys.map((k) => `"${k}"`).join(', ')}`);
  }
  const path = issue.path.join('.');
  const bad = issue.path.reduce<unknown>((v, k) => (v as Record<PropertyKey, unknown> | undefined)?.[k], value);
  throw new TypeError(`${where}: option "${path}" ${issue.message.toLowerCase()}, got ${quote(bad)}`);
}

function quote(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
