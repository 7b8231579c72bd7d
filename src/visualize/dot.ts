import type { AnyStateMachine } from 'xstate';
import { diagramEdges, stateTree, type StateShape } from './graph.ts';

/**
 * Graphviz DOT for a machine: nested and parallel states as clusters (parallel regions
 * dashed), transitions labelled with event, guard and delay. Edges that start or end at
 * a composite state attach to its cluster border (`ltail`/`lhead`).
 */
export function toDot(machine: AnyStateMachine): string {
  const tree = stateTree(machine);
  const byId = new Map<string, StateShape>();
  const index = (s: StateShape) => {
    byId.set(s.id, s);
    s.children.forEach(index);
  };
  index(tree);
  const q = (text: string) => JSON.stringify(text);
  const lines = [
    `digraph ${q(tree.id)} {`,
    '  compound=true; rankdir=LR; nodesep=0.4; ranksep=0.6;',
    '  node [shape=box, style="rounded,filled", fillcolor="#f5f7ff", color="#4a5a9a", fontname="Helvetica", fontsize=11];',
    '  edge [color="#555555", fontname="Helvetica", fontsize=9];',
    '  graph [fontname="Helvetica", fontsize=12];',
  ];
  // A composite state is drawn as a cluster; edges to it land on its first leaf.
  const anchor = (s: StateShape): string => {
    const first = s.children.find((c) => c.id === s.initial) ?? s.children[0];
    return first ? anchor(first) : s.id;
  };
  const draw = (s: StateShape, indent: string, region = false) => {
    if (s.children.length === 0) {
      const shape = s.type === 'final' ? ', peripheries=2' : '';
      lines.push(`${indent}${q(s.id)} [label=${q(s.key)}${shape}];`);
      return;
    }
    lines.push(`${indent}subgraph ${q(`cluster_${s.id}`)} {`);
    const label = s.type === 'parallel' ? `${s.key} (parallel)` : s.key;
    lines.push(`${indent}  label=${q(label)}; style=${q(region ? 'dashed' : 'rounded')}; color="#8894c4";`);
    if (s.initial) {
      lines.push(`${indent}  ${q(`${s.id}.__initial`)} [shape=point, width=0.12, label="", fillcolor="#333333", color="#333333"];`);
      const first = byId.get(s.initial)!;
      const lhead = first.children.length > 0 ? `, lhead=${q(`cluster_${first.id}`)}` : '';
      lines.push(`${indent}  ${q(`${s.id}.__initial`)} -> ${q(anchor(first))} [arrowsize=0.6${lhead}];`);
    }
    // Regions of a parallel state are dashed clusters.
    for (const c of s.children) draw(c, `${indent}  `, s.type === 'parallel');
    lines.push(`${indent}}`);
  };
  // The root is the graph itself, not a cluster.
  lines.push(`  ${q('__initial')} [shape=point, width=0.15, label="", fillcolor="#333333", color="#333333"];`);
  const first = byId.get(tree.initial ?? '');
  if (first) lines.push(`  ${q('__initial')} -> ${q(anchor(first))}${first.children.length > 0 ? ` [lhead=${q(`cluster_${first.id}`)}]` : ''};`);
  for (const c of tree.children) draw(c, '  ');
  for (const e of diagramEdges(machine)) {
    const source = byId.get(e.source)!;
    const target = byId.get(e.target)!;
    const attrs = [`label=${q(e.label)}`];
    if (source.children.length > 0) attrs.push(`ltail=${q(`cluster_${source.id}`)}`);
    if (target.children.length > 0) attrs.push(`lhead=${q(`cluster_${target.id}`)}`);
    lines.push(`  ${q(anchor(source))} -> ${q(anchor(target))} [${attrs.join(', ')}];`);
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
