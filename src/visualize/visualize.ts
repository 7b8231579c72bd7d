import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AnyStateMachine } from 'xstate';
import { toMermaid } from './mermaid.ts';
import { toDot } from './dot.ts';
import { renderSvg } from './render.ts';
import { toMachineJson } from './json.ts';

export interface VisualizeResult {
  /** Files (re)written, or that would be with `check`. */
  readonly changed: readonly string[];
  readonly unchanged: readonly string[];
}

/**
 * Writes `<name>.mmd`, `<name>.svg` and `<name>.json` for every machine into `dir`.
 * Deterministic: a second run changes nothing. With `check`, writes nothing and reports
 * which files are stale or missing.
 *
 * @example
 * const { changed } = await visualize(batonMachines, 'visualizations', { check: true });
 * if (changed.length) process.exit(1);
 */
export async function visualize(
  machines: Readonly<Record<string, AnyStateMachine>>,
  dir: string,
  { check = false }: { check?: boolean } = {},
): Promise<VisualizeResult> {
  const changed: string[] = [];
  const unchanged: string[] = [];
  if (!check) await mkdir(dir, { recursive: true });
  for (const [name, machine] of Object.entries(machines)) {
    const files: [string, string][] = [
      [`${name}.mmd`, toMermaid(machine)],
      [`${name}.svg`, await renderSvg(toDot(machine))],
      [`${name}.json`, toMachineJson(machine)],
    ];
    for (const [file, content] of files) {
      const path = join(dir, file);
      const current = await readFile(path, 'utf8').catch(() => undefined);
      if (current === content) {
        unchanged.push(path);
        continue;
      }
      changed.push(path);
      if (!check) await writeFile(path, content);
    }
  }
  return { changed, unchanged };
}

/**
 * Rewrites the Mermaid block after each `<!-- diagram:<name> … -->` marker in a Markdown
 * file (the README), so the diagrams shown there are the machines as they are. With
 * `check`, writes nothing and says whether the file is stale.
 */
export async function syncMarkdown(
  machines: Readonly<Record<string, AnyStateMachine>>,
  path: string,
  { check = false }: { check?: boolean } = {},
): Promise<boolean> {
  const current = await readFile(path, 'utf8');
  let next = current;
  for (const [name, machine] of Object.entries(machines)) {
    const marker = new RegExp(`(<!-- diagram:${name}\\b[^>]*-->\\n)\`\`\`mermaid\\n[\\s\\S]*?\`\`\``);
    next = next.replace(marker, (_all, head: string) => `${head}\`\`\`mermaid\n${toMermaid(machine)}\`\`\``);
  }
  if (next === current) return false;
  if (!check) await writeFile(path, next);
  return true;
}
