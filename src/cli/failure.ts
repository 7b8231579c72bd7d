import { MissingPeerDependencyError } from '../peer.ts';

/**
 * One line for a runtime failure of the CLI: what failed and what to do. Known system and
 * SQLite errors get their remedy; anything else its own message, never a stack.
 */
export function describeFailure(error: unknown): string {
  if (error instanceof MissingPeerDependencyError) return error.message;
  const { code, message, address, port } = (error ?? {}) as { code?: string; message?: string; address?: string; port?: number };
  const where = address === undefined ? '' : ` ${address}:${port}`;
  switch (code) {
    case 'EADDRINUSE':
      return `cannot listen on${where}: the port is in use; stop what holds it or pick another with --port`;
    case 'EACCES':
    case 'EPERM':
      return address === undefined
        ? `permission denied: ${message}; check the path's permissions or choose another (--store sqlite:PATH)`
        : `cannot listen on${where}: permission denied; ports below 1024 need privileges, pick another with --port`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on${where}: no such address on this machine; check --host`;
    case 'ENOTFOUND':
      return `cannot listen: the host name does not resolve; check --host`;
  }
  return oneLine(message ?? String(error));
}

/** A store that cannot be opened names itself, the reason and the remedy. */
export function storeFailure(spec: string, error: unknown): Error {
  if (error instanceof MissingPeerDependencyError) {
    return new Error(`the SQLite store (${spec}) needs better-sqlite3, which is not installed: run npm install better-sqlite3, or use --store memory`);
  }
  const { code = '', message } = (error ?? {}) as { code?: string; message?: string };
  const reason = oneLine(message ?? String(error));
  if (reason.startsWith('Could not locate the bindings file')) {
    return new Error(`the SQLite store (${spec}) needs better-sqlite3's native addon, which is not built for this Node: run npm rebuild better-sqlite3`);
  }
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new Error(`cannot open the store ${spec}: ${reason} (not a Baton database, or damaged); point --store at another file`);
  }
  if (/^SQLITE_(CANTOPEN|READONLY|PERM|AUTH)/.test(code) || ['EACCES', 'EPERM', 'EROFS', 'EEXIST', 'ENOTDIR', 'ENOENT'].includes(code)) {
    return new Error(`cannot open the store ${spec}: ${reason}; check that the directory exists and is writable, or choose another --store`);
  }
  return new Error(`cannot open the store ${spec}: ${reason}`);
}

function oneLine(text: string): string {
  return text.split('\n')[0]!.trim();
}
