/**
 * Optional peer dependencies: packages only one entry point needs (better-sqlite3 for
 * `baton-runtime/sqlite`, openai for `baton-runtime/openai`, Graphviz for diagrams of custom
 * kinds), loaded on first use so a user who does not need them never installs them.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A package an entry point needs is not installed. The message says what to install. */
export class MissingPeerDependencyError extends Error {
  readonly code = 'ERR_MISSING_PEER_DEPENDENCY';
  readonly packageName: string;

  constructor(packageName: string, neededBy: string, options?: { cause?: unknown }) {
    super(`${neededBy} needs the package "${packageName}", which is not installed: run npm install ${packageName}`, options);
    this.name = 'MissingPeerDependencyError';
    this.packageName = packageName;
  }
}

/**
 * `require`s an optional peer (CommonJS builds: synchronous, so a store opens inside a
 * synchronous constructor). A missing package becomes a one-line `MissingPeerDependencyError`;
 * any other failure (a broken native build) is rethrown as it is.
 */
export function requirePeer<T>(packageName: string, neededBy: string): T {
  try {
    return require(packageName) as T;
  } catch (error) {
    if (isMissing(error, packageName)) throw new MissingPeerDependencyError(packageName, neededBy, { cause: error });
    throw error;
  }
}

/** The same for ESM-only peers. */
export async function importPeer<T>(packageName: string, neededBy: string): Promise<T> {
  try {
    return (await import(packageName)) as T;
  } catch (error) {
    if (isMissing(error, packageName)) throw new MissingPeerDependencyError(packageName, neededBy, { cause: error });
    throw error;
  }
}

function isMissing(error: unknown, packageName: string): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : '';
  // Only the package itself missing counts: a dependency of it missing is a broken install.
  return (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && message.includes(`'${packageName}'`);
}
