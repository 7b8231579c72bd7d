import type { AnyStateMachine } from 'xstate';
import { diagramEdges, stateTree, type StateShape } from './graph.ts';

/**
 * A Mermaid `stateDiagram-v2` of a machine (GitHub renders it inline). Nested states are
 * composite states, parallel regions are separated by `--`.
 */
export function toMermaid(machine: AnyStateMachine): string {
  const tree = stateTree(machine);
  const name = (id: string) => (id === tree.id ? tree.id : id.slice(tree.id.length + 1).replaceAll('.', '_'));
  const lines = ['stateDiagram-v2'];
  const edges = diagramEdges(machine);
  const edgesFrom = (ids: Set<string>) => edges.filter((e) => ids.has(e.source));

  const block = (node: StateShape, indent: string) => {
    const ids = new Set(node.children.map((c) => c.id));
    if (node.type === 'parallel') {
      node.children.forEach((region, i) => {
        if (i > 0) lines.push(`${indent}--`);
        declare(region, indent);
      });
      return;
    }
    if (node.initial) lines.push(`${indent}[*] --> ${name(node.initial)}`);
    for (const child of node.children) declare(child, indent);
    for (const e of edgesFrom(ids)) lines.push(`${indent}${name(e.source)} --> ${name(e.target)} : ${escape(e.label)}`);
    for (const child of node.children) if (child.type === 'final') lines.push(`${indent}${name(child.id)} --> [*]`);
  };
  const declare = (node: StateShape, indent: string) => {
    lines.push(`${indent}state "${node.key}" as ${name(node.id)}`);
    if (node.children.length > 0) {
      lines.push(`${indent}state ${name(node.id)} {`);
      block(node, `${indent}  `);
      lines.push(`${indent}}`);
    }
  };
  block(tree, '  ');
  return `${lines.join('\n')}\n`;
}

// Mermaid ends a label at `:` and chokes on `;`: keep labels to plain text.
function escape(label: string): string {
  return label.replaceAll(':', ' ').replaceAll(';', ',').replace(/\s+/g, ' ').trim();
}
