import type { SessionStatus } from '../runtime/types.ts';

/**
 * A session's state as the wire names it (`init_ack.state`, `pong.state`): `created`,
 * `running`, `idle`, `terminated`, or `deleted` for no such session.
 *
 * @example
 * wireState(await runtime.status('s1')); // 'idle'
 */
export function wireState(status: SessionStatus | undefined): string {
  // Any kind whose state carries the `busy` tag is running, whatever it calls the state.
  if (status?.busy) return 'running';
  switch (status?.state) {
    case undefined:
    case 'deleted':
      return 'deleted';
    case 'busy':
      return 'running';
    case 'created':
    case 'terminated':
      return status.state;
    case 'complete':
      return 'terminated';
    default:
      return 'idle';
  }
}
