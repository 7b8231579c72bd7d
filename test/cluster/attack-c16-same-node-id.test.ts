import { afterEach, expect, it } from 'vitest';
import { Cluster, waitFor, words } from './harness.ts';

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

it('two processes started with the same --node-id: the second is refused, or they do not keep stealing each other\'s lease', async () => {
  const c = (cluster = new Cluster(['--lease-ttl-ms', '1500', '--cluster-sweep-ms', '200', '--demo-delay-ms', '2']));
  const a1 = await c.start('a');
  const a2 = await c.start('a').catch((e: Error) => e);
  if (a2 instanceof Error) return; // refused: fine
  // Watch the lease row for 4 s: how many incarnations does node 'a' go through?
  const seen = new Set<number>();
  const until = Date.now() + 4000;
  while (Date.now() < until) {
    const [row] = await c.admin<{ incarnation: number }[]>`SELECT incarnation FROM ${c.admin(c.schema)}.nodes WHERE id = 'a'`;
    if (row) seen.add(row.incarnation);
    await new Promise((r) => setTimeout(r, 50));
  }
  const conn = await c.attach(a1, 's1');
  conn.input('i1', words('i1', 3));
  await waitFor(() => conn.done('i1') || conn.refused('i1') || !conn.open, 'i1');
  console.log('incarnations in 4 s:', [...seen], 'a1 stderr:', a1.stderr().slice(0, 600), 'a2 stderr:', a2.stderr().slice(0, 600));
  expect(seen.size, `lease of node "a" changed hands ${seen.size - 1} times in 4 s`).toBeLessThanOrEqual(2);
});
