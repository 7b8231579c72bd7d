import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { OutboundFrame } from '../../machines/connection.ts';

export const PROTOCOL_VERSION = 'aep/v1';

/** A client envelope (PROTOCOL.md): `version`, `id`, `event{type, data}` required; unknown fields ignored. */
const envelopeSchema = z.looseObject({
  version: z.string(),
  id: z.string().min(1).max(256),
  session_id: z.string().optional(),
  seq: z.number().optional(),
  timestamp: z.number().optional(),
  priority: z.enum(['control', 'data']).optional(),
  event: z.looseObject({ type: z.string().min(1), data: z.looseObject({}) }),
});

/**
 * A session id: letters, digits, `_ . : -`; `/` and `@ %` too, for a full key (C18:
 * `<owner>/<id>`, the owner `%`-encoded), which only an admin or an `authorize` hook reaches.
 */
const sessionIdSchema = z.string().max(512).regex(/^[\w.:@%/-]*$/, 'letters, digits, _ . : - only (and / @ % in a full key)');

export const initDataSchema = z.looseObject({
  version: z.string(),
  worker_type: z.string().min(1).max(64).optional(),
  session_id: sessionIdSchema.optional(),
  auth: z.looseObject({ token: z.string().optional() }).optional(),
  /** Extension: resume after the last seq this client saw. */
  last_seq: z.number().int().min(0).optional(),
});

const inputDataSchema = z.looseObject({
  content: z.string(),
  metadata: z.record(z.string(), z.unknown()).optional(),
});
const controlDataSchema = z.looseObject({ action: z.enum(['stop', 'terminate', 'delete']) });
/** Baton's extension (C20): a client schedules a wake-up of its own session. Exactly one of the times. */
const scheduleSchema = z.looseObject({
  id: z.string().min(1).max(256),
  at: z.number().optional(),
  after_ms: z.number().optional(),
  every_ms: z.number().optional(),
  cron: z.string().optional(),
  payload: z.unknown().optional(),
});
const scheduleCancelSchema = z.looseObject({ id: z.string().min(1).max(256) });
const permissionResponseSchema = z.looseObject({
  id: z.string().min(1),
  allowed: z.boolean(),
  reason: z.string().optional(),
});
const questionResponseSchema = z.looseObject({
  id: z.string().min(1),
  answers: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
});

export type ClientFrame =
  | { type: 'init'; id: string; data: z.infer<typeof initDataSchema> }
  | { type: 'input'; id: string; data: z.infer<typeof inputDataSchema> }
  | { type: 'control'; id: string; data: z.infer<typeof controlDataSchema> }
  | { type: 'question_response'; id: string; data: z.infer<typeof questionResponseSchema> }
  | { type: 'permission_response'; id: string; data: z.infer<typeof permissionResponseSchema> }
  | { type: 'schedule'; id: string; data: z.infer<typeof scheduleSchema> }
  | { type: 'schedule_cancel'; id: string; data: z.infer<typeof scheduleCancelSchema> }
  | { type: 'ping'; id: string };

/** Why a frame was refused: the error code and a message that says what to fix. */
export interface FrameProblem {
  readonly code: 'INVALID_MESSAGE' | 'VERSION_MISMATCH';
  readonly message: string;
  readonly id?: string;
}

const dataSchemas = {
  init: initDataSchema,
  input: inputDataSchema,
  control: controlDataSchema,
  question_response: questionResponseSchema,
  permission_response: permissionResponseSchema,
  schedule: scheduleSchema,
  schedule_cancel: scheduleCancelSchema,
  ping: z.looseObject({}),
} as const;

/** Parses one WebSocket text message into a typed client frame, or says what is wrong with it. */
export function parseFrame(text: string): ClientFrame | FrameProblem {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { code: 'INVALID_MESSAGE', message: 'the frame is not valid JSON' };
  }
  const envelope = envelopeSchema.safeParse(json);
  if (!envelope.success) return { code: 'INVALID_MESSAGE', message: `bad envelope: ${describe(envelope.error)}` };
  const { id, version, event } = envelope.data;
  if (version !== PROTOCOL_VERSION) {
    return { code: 'VERSION_MISMATCH', message: `version must be "${PROTOCOL_VERSION}", got ${JSON.stringify(version)}`, id };
  }
  if (!Object.hasOwn(dataSchemas, event.type)) {
    return { code: 'INVALID_MESSAGE', message: `unknown event type ${JSON.stringify(event.type)}`, id };
  }
  const type = event.type as keyof typeof dataSchemas;
  const data = dataSchemas[type].safeParse(event.data);
  if (!data.success) return { code: 'INVALID_MESSAGE', message: `bad ${type} data: ${describe(data.error)}`, id };
  if (type === 'input' && data.data.metadata !== undefined) {
    // Metadata is the client's data, passed on as JSON.parse made it: zod copies a record key
    // by key, and copying a `__proto__` key sets the copy's prototype instead (C12, C15).
    const metadata = (event.data as { metadata: Record<string, unknown> }).metadata;
    return { type, id, data: { ...data.data, metadata } } as ClientFrame;
  }
  return { type, id, data: data.data } as ClientFrame;
}

export function isProblem(value: ClientFrame | FrameProblem): value is FrameProblem {
  return 'code' in value;
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  return issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message;
}

const CONTROL_TYPES = new Set(['control', 'init_ack', 'error', 'pong', 'input.ack']);

// Envelope ids: unique per process start, then a counter — a UUID per frame costs more
// than the rest of the envelope.
const ID_PREFIX = `evt_${randomUUID().slice(0, 8)}_`;
let nextId = 0;

/** The server envelope for a frame: every field PROTOCOL.md requires. */
export function serverEnvelope(sessionId: string, frame: OutboundFrame): string {
  return JSON.stringify({
    version: PROTOCOL_VERSION,
    id: ID_PREFIX + (nextId++).toString(36),
    seq: frame.seq,
    priority: CONTROL_TYPES.has(frame.type) ? 'control' : 'data',
    session_id: sessionId,
    timestamp: Date.now(),
    event: { type: frame.type, data: frame.data },
  });
}
