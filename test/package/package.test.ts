/**
 * The package as a newcomer gets it: `npm pack`, install the tarball into a fresh project,
 * and there run exactly what the README shows — the embed example with plain `node` (ESM and
 * `require`), a strict TypeScript consumer, the bin, and the installed gateway's inspector.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readmeBlocks } from './readme-blocks.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const project = mkdtempSync(join(tmpdir(), 'baton-package-'));
const { version } = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };

/** Runs a command in the fresh project; throws with its output if it fails. */
function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const result = spawnSync(command, args, { cwd: options.cwd ?? project, encoding: 'utf8', env: { ...process.env, ...options.env }, timeout: 170_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr, output: `${result.stdout}\n${result.stderr}` };
}
function ok(command: string, args: string[], options?: { cwd?: string }) {
  const result = run(command, args, options);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}:\n${result.output}`);
  return result;
}

beforeAll(() => {
  const packed = ok('npm', ['pack', '--json', '--pack-destination', project], { cwd: repo });
  const [{ filename }] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as [{ filename: string }];
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'newcomer', private: true, type: 'module' }));
  // What a user installs, from the npm cache where it can (CI has just filled it).
  ok('npm', ['install', `./${filename}`, '@types/node@20', 'typescript@5.9', '--no-audit', '--no-fund', '--prefer-offline']);
  for (const [name, code] of readmeBlocks(readFileSync(join(repo, 'README.md'), 'utf8'))) writeFileSync(join(project, name), code);
}, 180_000);

afterAll(() => rmSync(project, { recursive: true, force: true }));

describe('the installed package (issue 14)', () => {
  it('runs the README embed example with plain node (ESM)', () => {
    const { stdout } = ok('node', ['embed.mjs']);
    expect(stdout).toContain("status: 'accepted'");
    expect(stdout).toMatch(/\d+ message\.delta \{"message_id":"[^"]+","content":"hello "\}/);
    expect(stdout).toMatch(/\d+ done \{"success":true/);
  });

  it('runs the README CommonJS example through require()', () => {
    const { stdout, stderr } = ok('node', ['embed.cjs']);
    expect(stdout).toContain('echo: hi from require');
    expect(stderr).not.toMatch(/Error/);
  });

  it('compiles a strict TypeScript consumer of every entry point with zero errors (tsc 5.9 and the repo tsc)', () => {
    writeFileSync(join(project, 'consumer.ts'), CONSUMER);
    const tsconfig = (skipLibCheck: boolean) => ({
      compilerOptions: {
        target: 'ES2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        skipLibCheck,
        noEmit: true,
        types: ['node'],
      },
      files: ['server.ts', 'consumer.ts'],
    });
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(tsconfig(true)));
    ok(join(project, 'node_modules/.bin/tsc'), ['-p', '.']);
    ok(join(repo, 'node_modules/.bin/tsc'), ['-p', '.']);
    // Our own declarations are checked too. xstate 5's declarations do not compile under
    // exactOptionalPropertyTypes without skipLibCheck; only those may fail.
    writeFileSync(join(project, 'tsconfig.strict-lib.json'), JSON.stringify(tsconfig(false)));
    const strictLib = run(join(project, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.strict-lib.json']);
    const errors = strictLib.stdout.split('\n').filter((line) => /error TS\d+/.test(line));
    expect(errors.filter((line) => !line.startsWith('node_modules/xstate/'))).toEqual([]);
  }, 180_000);

  it('loads no native addon, server, network client or WebAssembly from the root entry point', () => {
    writeFileSync(join(project, 'hooks.mjs'), TRACE_HOOKS);
    writeFileSync(join(project, 'trace.mjs'), "import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n");
    const trace = join(project, 'loaded.txt');
    ok('node', ['--import', './trace.mjs', '--input-type=module', '-e', "await import('baton-runtime')"], { cwd: project, env: { TRACE_FILE: trace } } as never);
    const loaded = readFileSync(trace, 'utf8');
    expect(loaded).toContain('/node_modules/baton-runtime/dist/src/index.js');
    for (const heavy of ['better-sqlite3', '/ws/', '/pino/', 'prom-client', '/openai/', '@viz-js', '@statelyai', 'node:http', 'node:net', '/gateway/']) {
      expect(loaded, heavy).not.toContain(heavy);
    }
  });

  it('names the package to install, in one line, when an optional peer is missing', () => {
    const { code, stderr } = run('node', ['--input-type=module', '-e', "const { SqliteStore } = await import('baton-runtime/sqlite'); try { new SqliteStore('x.db') } catch (e) { console.error(e.name + ': ' + e.message); process.exit(3) }"]);
    expect(code).toBe(3);
    expect(stderr.trim()).toBe('MissingPeerDependencyError: baton-runtime/sqlite needs the package "better-sqlite3", which is not installed: run npm install better-sqlite3');
    const pg = run('node', ['--input-type=module', '-e', "const { PostgresStore } = await import('baton-runtime/postgres'); try { new PostgresStore() } catch (e) { console.error(e.name + ': ' + e.message); process.exit(3) }"]);
    expect(pg.code).toBe(3);
    expect(pg.stderr.trim()).toBe('MissingPeerDependencyError: baton-runtime/postgres needs the package "postgres", which is not installed: run npm install postgres');
  });

  it('runs the bin: npx baton-runtime --version', () => {
    expect(ok('npx', ['--no-install', 'baton-runtime', '--version']).stdout.trim()).toBe(version);
  });

  it('says what to install when the default store has no better-sqlite3: one line, exit 1', () => {
    const { code, stdout, stderr } = run('npx', ['--no-install', 'baton-runtime', 'serve', '--port', '0']);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toEqual([expect.stringContaining('npm install better-sqlite3')]);
  });

  it('serves the gateway from the installed package on the SQLite store, inspector diagrams included', async () => {
    // better-sqlite3 as the user would install it (copied: building it again takes a minute).
    for (const dep of ['better-sqlite3', 'bindings', 'file-uri-to-path']) {
      cpSync(join(repo, 'node_modules', dep), join(project, 'node_modules', dep), { recursive: true });
    }
    // The installed bin itself (what npx runs, through a shell that would keep the signal from it).
    const child = spawn('node', ['node_modules/.bin/baton-runtime', 'serve', '--port', '0'], { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        let err = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0]!);
        });
        child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
        child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
      });
      const inspect = /inspector: (http:\/\/\S+\/inspect)/.exec(line)?.[1];
      expect(inspect, line).toBeDefined();
      const page = await fetch(inspect!);
      expect(page.status).toBe(200);
      const svg = await fetch(`${inspect}/machine/agent.svg`);
      expect(svg.status).toBe(200);
      expect(await svg.text()).toContain('<svg');
      const missing = await fetch(`${inspect}/machine/constructor.svg`);
      expect(missing.status).toBe(404);
    } finally {
      child.kill('SIGTERM');
    }
    const exited = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(exited).toBe(0);
    expect(readFileSync(join(project, '.baton/baton.db')).subarray(0, 15).toString()).toBe('SQLite format 3');
  });
});

/** A consumer of the public types: receipts, events narrowed by `type`, options. */
const CONSUMER = `
import { createRuntime, demoAgent, MemoryStore, SessionBusyError, MissingPeerDependencyError, sessionMachine, type Receipt, type SessionEvent, type RuntimeOptions } from 'baton-runtime';
import { SqliteStore } from 'baton-runtime/sqlite';
import { PostgresStore, type PostgresStoreOptions } from 'baton-runtime/postgres';
import { createGateway, gatewayDefaults, type GatewayOptions } from 'baton-runtime/gateway';
import { checkMachine, formatPath } from 'baton-runtime/testing';

const options: RuntimeOptions = { agent: demoAgent(), store: new MemoryStore(), busyPolicy: 'reject' };
const runtime = createRuntime(options);
const receipt: Receipt = await runtime.send('s', { id: 'm1', content: 'hi' });
if (receipt.status === 'rejected' && receipt.error instanceof SessionBusyError) console.log(receipt.error.sessionId);
runtime.eventsOf('s').subscribe((event: SessionEvent) => {
  if (event.type === 'message.delta') console.log(event.data.content.toUpperCase());
  if (event.type === 'done') console.log(event.data.input_ids.length);
});
const gatewayOptions: GatewayOptions = { runtime, port: gatewayDefaults.port };
void createGateway(gatewayOptions);
void SqliteStore;
const pgOptions: PostgresStoreOptions = { schema: 'baton', leaseTtlMs: 10_000 };
void PostgresStore;
void pgOptions;
void new MissingPeerDependencyError('x', 'y').packageName;
const report = checkMachine(sessionMachine, { events: [{ type: 'activate' }], maxDepth: 2 });
console.log(report.summary, report.violations.map(formatPath));
`;

/** Records every module the process resolves (loader hooks run on their own thread in Node 20). */
const TRACE_HOOKS = `
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(process.env.TRACE_FILE, result.url + '\\n');
  return result;
}
`;
