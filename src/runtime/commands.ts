import type { SessionCommand } from '../../machines/session.ts';

/** What a command handler receives. */
export interface CommandContext {
  readonly sessionId: string;
  readonly name: string;
  /** Everything after the command name, trimmed. */
  readonly args: string;
  /** The id of the input that carried the command. */
  readonly inputId: string;
  /** Aborted when the runtime shuts down before the handler finishes. */
  readonly signal: AbortSignal;
}

/**
 * A user command. Its returned text becomes a `message` with role `system`; throwing
 * becomes an `error{INTERNAL_ERROR}`. Commands of one session run one at a time (C5).
 *
 * @example
 * commands: { ping: () => 'pong' }
 */
export type CommandHandler = (ctx: CommandContext) => Promise<string | void> | string | void;

export interface CommandSpec {
  readonly description: string;
  readonly handler: CommandHandler;
}

export const BUILTIN_COMMANDS = ['stop', 'status', 'help'] as const;

const NAME = /^[a-z0-9][a-z0-9_-]*$/i;

/** Normalises the `commands` option; throws `TypeError` on a bad or built-in name. */
export function commandRegistry(commands: Record<string, CommandHandler | CommandSpec> = {}): Map<string, CommandSpec> {
  const registry = new Map<string, CommandSpec>();
  for (const [name, value] of Object.entries(commands)) {
    if (!NAME.test(name)) throw new TypeError(`createRuntime: command name ${JSON.stringify(name)} must match ${NAME}`);
    if ((BUILTIN_COMMANDS as readonly string[]).includes(name)) {
      throw new TypeError(`createRuntime: command "${name}" is built in and cannot be replaced`);
    }
    const spec = typeof value === 'function' ? { description: '', handler: value } : value;
    if (typeof spec?.handler !== 'function') {
      throw new TypeError(`createRuntime: command "${name}" needs a handler function`);
    }
    registry.set(name.toLowerCase(), spec);
  }
  return registry;
}

/** `"/Name  some args"` → `{ name: 'name', args: 'some args' }`, or `undefined` if not a command. */
export function parseCommand(id: string, content: string, prefix: string): SessionCommand | undefined {
  if (!content.startsWith(prefix)) return undefined;
  const rest = content.slice(prefix.length);
  const space = rest.search(/\s/);
  const name = (space === -1 ? rest : rest.slice(0, space)).toLowerCase();
  const args = space === -1 ? '' : rest.slice(space).trim();
  return { id, name, args };
}
