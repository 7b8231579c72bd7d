import { afterEach, expect, it } from 'vitest';
import { Cluster, doneCounts, waitFor } from './harness.ts';

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

it('the same input id sent to the owner and a non-owner node: the duplicate\'s input.ack says durable like the original (HEAD 14cc7be)', async () => {
  const c = (cluster = new Cluster(['--lease-ttl-ms', '3000', '--cluster-sweep-ms', '200', '--demo-delay-ms', '1']));
  const [a, b] = await Promise.all(['da', 'db'].map((id) => c.start(id)));
  const owner = await c.attach(a!, 'dup-1');
  const remote = await c.attach(b!, 'dup-1');
  const acks: string[] = [];
  for (const [first, second, id] of [[owner, remote, 'd1'], [remote, owner, 'd2']] as const) {
    first.input(id, `hello ${id}`);
    await waitFor(() => first.acked(id), `${id} acked`);
    second.input(id, `hello ${id}`);
    await waitFor(() => second.acked(id), `${id} dup acked`);
    const x = first.acked(id)!.event.data;
    const y = second.acked(id)!.event.data;
    acks.push(`${id}: original on ${first.node} ${x.durability}, duplicate on ${second.node} ${y.durability} (duplicate=${y.duplicate})`);
  }
  await waitFor(() => owner.done('d1') && owner.done('d2'), 'both done');
  await new Promise((r) => setTimeout(r, 500));
  const counts = doneCounts(await c.stored('dup-1'));
  acks.push(`dones: d1 ${counts.get('d1')?.done}, d2 ${counts.get('d2')?.done}`);
  expect(acks).toEqual([
    'd1: original on da durable, duplicate on db durable (duplicate=true)',
    'd2: original on db durable, duplicate on da durable (duplicate=true)',
    'dones: d1 1, d2 1',
  ]);
}, 30_000);
