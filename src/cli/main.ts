/**
 * The `baton-runtime` command (bin `baton`): `serve` (the default, `npm start`), `chat`
 * (`npm run chat`), `visualize`, `help`, `version`. A usage error prints the usage and exits
 * 2; a runtime failure prints one line saying what failed and what to do, and exits 1.
 */
import { packageVersion } from '../package-root.ts';
import { describeFailure } from './failure.ts';
import { USAGE, UsageError } from './usage.ts';

const [command = 'serve', ...args] = process.argv.slice(2);

try {
  await run(command, args);
} catch (error) {
  if (error instanceof UsageError || isParseArgsError(error)) {
    process.stderr.write(`baton: ${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  process.stderr.write(`baton: ${describeFailure(error)}\n`);
  process.exit(1);
}

async function run(name: string, argv: string[]): Promise<void> {
  // `serve --help` (as in `npm start -- --help`) asks for the usage, it is not a mistake.
  if (argv.includes('--help') || argv.includes('-h')) name = 'help';
  switch (name) {
    case 'serve':
      return (await import('./serve.ts')).serve(argv);
    case 'chat':
      return (await import('./chat.ts')).runChat(argv);
    case 'visualize':
      return (await import('./visualize.ts')).runVisualize(argv);
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    case 'version':
    case '--version':
    case '-v':
      process.stdout.write(`${packageVersion()}\n`);
      return;
    default:
      throw new UsageError(`unknown command "${name}"`);
  }
}

/** node:util parseArgs rejects unknown flags, missing values and stray arguments with these codes. */
function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}
