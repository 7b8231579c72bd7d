import type { PermissionRequestData } from '../../../machines/events.ts';
import type { Runtime } from '../../runtime/runtime.ts';

/** A tool call waiting for the user's decision, as the inspector shows it (C19). */
export interface PendingApproval {
  /** The call's id: what `permission_response` names. */
  readonly id: string;
  /** The tool's name; `null` once the store no longer holds the call's `permission_request`. */
  readonly tool: string | null;
  /** When it is denied unless decided (ms since the epoch); `null` as for `tool`. */
  readonly expiresAt: number | null;
}

/**
 * The approvals an agent session waits for (C19). The live actor's `context.approvals` says
 * which calls wait; a passivated session has no actor, so there the calls whose
 * `permission_request` has no `tool_result` yet among the stored events do. The tool and
 * deadline come from those `permission_request` events. Read only for a session whose
 * status says it waits for the user: it costs a read of its stored events.
 *
 * @example
 * const approvals = status.waitingForUser ? await pendingApprovals(runtime, id) : [];
 */
export async function pendingApprovals(runtime: Pick<Runtime, 'snapshot' | 'eventsAfter'>, sessionId: string): Promise<PendingApproval[]> {
  const live = (runtime.snapshot(sessionId) as { context?: { approvals?: unknown } } | undefined)?.context?.approvals;
  if (Array.isArray(live) && live.length === 0) return [];
  const open = new Map<string, PermissionRequestData>();
  for (const event of await runtime.eventsAfter(sessionId, 0)) {
    if (event.type === 'permission_request') open.set(event.data.id, event.data);
    else if (event.type === 'tool_result') open.delete(event.data.id);
  }
  const ids = Array.isArray(live) ? live.map((a: { id?: unknown }) => String(a?.id)) : [...open.keys()];
  return ids.map((id) => {
    const request = open.get(id);
    return { id, tool: request?.tool_name ?? null, expiresAt: request?.expires_at ?? null };
  });
}
