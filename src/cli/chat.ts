import { parseArgs } from 'node:util';
import { chat } from '../chat.ts';

/** `baton chat`: the terminal client. */
export async function runChat(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      url: { type: 'string' },
      session: { type: 'string' },
      onboarding: { type: 'boolean' },
      token: { type: 'string' },
    },
  });
  const token = values.token ?? process.env.BATON_TOKEN;
  const code = await chat({
    url: values.url ?? 'ws://127.0.0.1:8080/ws',
    onboarding: values.onboarding ?? false,
    ...(values.session ? { sessionId: values.session } : {}),
    ...(token ? { token } : {}),
  });
  process.exit(code);
}
