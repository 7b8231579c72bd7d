import net from 'node:net';

/**
 * A TCP proxy to a server, for faults the server cannot make: `freeze` stops forwarding on
 * every connection open now while keeping them open (a half-open link: no FIN, no RST, just
 * silence); connections made afterwards are forwarded as usual.
 */
export class TcpProxy {
  readonly #server = net.createServer((client) => this.#forward(client));
  readonly #pairs = new Set<[net.Socket, net.Socket]>();
  readonly #frozen: net.Socket[] = [];

  constructor(private readonly target: { host: string; port: number }) {}

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as net.AddressInfo).port;
  }

  /**
   * Stops forwarding on the open connections (or those `only` picks, by the port the server
   * sees them come from: `client_port` in pg_stat_activity); returns how many were frozen.
   */
  freeze(only?: (clientPort: number) => boolean): number {
    const pairs = [...this.#pairs].filter(([, upstream]) => !only || only(upstream.localPort!));
    for (const pair of pairs) {
      const [a, b] = pair;
      a.unpipe(b);
      b.unpipe(a);
      a.pause();
      b.pause();
      this.#frozen.push(a, b);
      this.#pairs.delete(pair);
    }
    return pairs.length;
  }

  async close(): Promise<void> {
    for (const [a, b] of this.#pairs) a.destroy(), b.destroy();
    for (const s of this.#frozen) s.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #forward(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    this.#pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.#pairs.delete(pair);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
