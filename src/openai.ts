/**
 * `baton-runtime/openai`: an agent for any OpenAI-compatible chat completions API.
 *
 * Needs `openai` (an optional peer dependency: `npm install openai`); without it
 * `openaiAgent(…)` throws a `MissingPeerDependencyError` that says so.
 *
 * @example
 * import { createRuntime } from 'baton-runtime';
 * import { openaiAgent } from 'baton-runtime/openai';
 * const runtime = createRuntime({ agent: openaiAgent({ model: 'gpt-4o-mini' }) });
 */
export { openaiAgent } from './agents/openai.ts';
export type { OpenAIAgentOptions } from './agents/openai.ts';
