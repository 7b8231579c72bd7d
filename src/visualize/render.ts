import type { Viz } from '@viz-js/viz';
import { importPeer } from '../peer.ts';

let viz: Promise<Viz> | undefined;

/** Renders DOT to SVG with Graphviz compiled to WebAssembly (no system binary, no browser). */
export async function renderSvg(dot: string): Promise<string> {
  viz ??= importPeer<typeof import('@viz-js/viz')>('@viz-js/viz', 'drawing a machine diagram').then((m) => m.instance());
  return (await viz).renderString(dot, { format: 'svg', engine: 'dot' });
}
