/**
 * The README shows what `npm run test:model` prints, in two places: the block of summary
 * lines under "Model-check machines in your tests", and the counts in "How we test". Each
 * model test holds its machine's report against both, so the numbers come from the run and
 * cannot drift from it.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { ModelCheckReport } from '../../src/testing/index.ts';

const README = new URL('../../README.md', import.meta.url);
const SUMMARY = /^[\w-]+: states \d+\/\d+, transitions \d+\/\d+, /;

export const readReadme = (): string => readFileSync(README, 'utf8');

/** The lines of the README's one fenced block made only of model-check summary lines. */
export function readmeSummaryLines(readme: string): string[] {
  const blocks = [...readme.matchAll(/^```[^\n]*\n([\s\S]*?)^```$/gm)].map((m) => m[1]!.trimEnd().split('\n'));
  const summaries = blocks.filter((lines) => lines.every((line) => SUMMARY.test(line)));
  expect(summaries, 'README.md has one fenced block of model-check summary lines').toHaveLength(1);
  return summaries[0]!;
}

/** Fails unless the README shows this report as the run printed it, in both places. */
export function expectReadmeShows(report: ModelCheckReport): void {
  const readme = readReadme();
  const lines = readmeSummaryLines(readme).filter((line) => line.startsWith(`${report.name}: `));
  expect(lines, `README.md's model-check block must show the line this run printed for ${report.name}`).toEqual([report.summary]);

  const bullet = /^- \*\*Model checking\*\*[\s\S]*?(?=\n- |\n\n)/m.exec(readme)?.[0].replace(/\s+/g, ' ');
  expect(bullet, 'README.md\'s "How we test" has a **Model checking** bullet').toBeDefined();
  const counts = new RegExp(`\\b${report.name} (\\d+/\\d+)(?: states)? and (\\d+/\\d+)`).exec(bullet!);
  const { states, transitions } = report;
  expect(counts?.slice(1), `README.md's "How we test" must give ${report.name} as "${states.reached}/${states.total} … and ${transitions.taken}/${transitions.total}"`).toEqual([
    `${states.reached}/${states.total}`,
    `${transitions.taken}/${transitions.total}`,
  ]);
}
