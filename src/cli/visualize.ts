import { parseArgs } from 'node:util';
import { syncMarkdown, visualize } from '../visualize/visualize.ts';
import { batonMachines } from '../visualize/machines.ts';

/** `baton visualize [--check] [--out DIR]`: the diagrams of Baton's machines, and README's copies. */
export async function runVisualize(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, strict: true, options: { check: { type: 'boolean' }, out: { type: 'string' } } });
  const check = values.check ?? false;
  const result = await visualize(batonMachines, values.out ?? 'visualizations', { check });
  const readmeStale = await syncMarkdown(batonMachines, 'README.md', { check }).catch(() => false);
  const changed = [...result.changed, ...(readmeStale ? ['README.md'] : [])];
  for (const file of changed) process.stdout.write(`${check ? 'stale' : 'wrote'} ${file}\n`);
  process.stdout.write(`${result.unchanged.length} up to date, ${changed.length} ${check ? 'stale' : 'written'}\n`);
  if (check && changed.length > 0) {
    process.stderr.write('baton: visualizations are stale; run `npm run visualize` and commit the result\n');
    process.exit(1);
  }
}
