import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Runtime } from '../runtime/runtime.ts';
import type { Receipt } from '../runtime/types.ts';

/** The gateway's Prometheus metrics, on a registry of its own (so several gateways can coexist). */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #inputs = new Counter({
    name: 'baton_inputs_total',
    help: 'Inputs received over the gateway, by outcome (primary, queued, injected, command, duplicate, rejected).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly #errors = new Counter({
    name: 'baton_errors_total',
    help: 'Errors by code: error events, rejected inputs, failed handshakes, slow-consumer closes.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly #turns = new Counter({
    name: 'baton_turns_total',
    help: 'Turns ended, by outcome (success or the done reason).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly #latency = new Histogram({
    name: 'baton_turn_duration_seconds',
    help: 'Turn duration from start to done.',
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly #refused = new Counter({
    name: 'baton_handshakes_refused_total',
    help: 'Connections refused or cut off before their handshake completed, by reason: capacity, address_connections, address_handshakes (503 at accept or upgrade), timeout (no upgrade or no init in time), or the code of a refusing init_ack.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly #flooded = new Counter({
    name: 'baton_frames_dropped_total',
    help: 'Client frames neither handled nor answered because their connection was over its frame budget.',
    registers: [this.registry],
  });
  readonly #inspectorDropped = new Counter({
    name: 'baton_inspector_readers_dropped_total',
    help: 'Inspector streams (/inspect/events) closed because their reader fell too far behind.',
    registers: [this.registry],
  });
  readonly connections = new Gauge({ name: 'baton_connections', help: 'Open WebSocket connections.', registers: [this.registry] });

  constructor(runtime: Runtime) {
    new Gauge({
      name: 'baton_sessions',
      help: 'Live sessions by state.',
      labelNames: ['state'] as const,
      registers: [this.registry],
      // Counted at scrape time: nothing to keep in step on the hot path. A status the runtime
      // cannot give (its store fails) leaves that session out of this scrape.
      async collect() {
        const statuses = await Promise.all(runtime.sessionIds().map((id) => runtime.status(id).catch(() => undefined)));
        this.reset();
        for (const status of statuses) if (status) this.inc({ state: status.state });
      },
    });
    new Gauge({
      name: 'baton_store_fenced_commits',
      help: 'Commits refused because another node had claimed their session (a cluster, C17).',
      registers: [this.registry],
      collect() {
        this.set(runtime.health().fencedCommits);
      },
    });
    new Gauge({
      name: 'baton_node_info',
      help: 'This cluster node: 1, labelled with its id and incarnation; lease_valid is 0 while its own clock says the lease may have run out.',
      labelNames: ['node', 'incarnation', 'lease_valid'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        const node = runtime.health().node;
        if (node) this.set({ node: node.id, incarnation: String(node.incarnation), lease_valid: node.leaseValid ? '1' : '0' }, 1);
      },
    });
    new Gauge({
      name: 'baton_node_owned_sessions',
      help: 'Sessions this node runs (owns, on a cluster).',
      registers: [this.registry],
      collect() {
        this.set(runtime.health().node?.ownedSessions ?? runtime.sessionIds().length);
      },
    });
    runtime.events$.subscribe((event) => {
      if (event.type === 'done') {
        if (event.data.input_ids.length > 0) this.#turns.inc({ outcome: event.data.reason ?? 'success' });
        this.#latency.observe(event.data.stats.duration_ms / 1000);
      } else if (event.type === 'error') {
        this.#errors.inc({ code: event.data.code });
      }
    });
  }

  input(receipt: Receipt): void {
    this.#inputs.inc({ outcome: receipt.status === 'accepted' ? (receipt.mode ?? 'accepted') : receipt.status });
  }

  error(code: string): void {
    this.#errors.inc({ code });
  }

  /** A handshake refused or timed out, at any stage (the admission of a socket, or a refusing `init_ack`). */
  handshakeRefused(reason: string): void {
    this.#refused.inc({ reason });
  }

  frameDropped(): void {
    this.#flooded.inc();
  }

  inspectorReaderDropped(): void {
    this.#inspectorDropped.inc();
  }
}
