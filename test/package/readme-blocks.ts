/**
 * The README's runnable examples: each fenced block right after a
 * `<!-- package-test: FILE -->` marker, by file name. The package test writes them into a
 * fresh project and runs them, so the README shows exactly what is tested.
 */
export function readmeBlocks(readme: string): Map<string, string> {
  const blocks = new Map<string, string>();
  for (const match of readme.matchAll(/<!-- package-test: (\S+) -->\n```\w*\n([\s\S]*?)\n```/g)) {
    blocks.set(match[1]!, `${match[2]}\n`);
  }
  if (blocks.size === 0) throw new Error('README.md has no <!-- package-test: FILE --> blocks');
  return blocks;
}
