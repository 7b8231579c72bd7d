/**
 * A token bucket: `perSecond` tokens a second, at most `burst` saved up. One per
 * connection, so a flooding client is told `RATE_LIMITED` and everyone else is unaffected.
 */
export class TokenBucket {
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  constructor(perSecond: number, burst: number, now: () => number = Date.now) {
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#at = now();
  }

  take(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Whether the bucket has filled up again: its owner stayed within the rate for a while. */
  full(): boolean {
    this.#refill();
    return this.#tokens >= this.#burst;
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#perSecond);
    this.#at = now;
  }
}

/**
 * What a connection does with one client frame under its {@link FrameBudget}: `ok` handles it;
 * `warn` answers it with one `RATE_LIMITED` (the first frame over budget of an episode);
 * `drop` neither handles nor answers it; `close` closes the connection (1008).
 */
export type Charge = 'ok' | 'warn' | 'drop' | 'close';

/**
 * Every client frame costs one token — `init`, `ping`, garbage, everything — before it is even
 * parsed. Over budget a frame is not handled: the first of an episode is answered once, the
 * rest not at all, so answering a flood is never more work than the flood. A client that keeps
 * sending over budget — `burst` frames before its bucket has filled up again — is closed.
 *
 * @example
 * const budget = new FrameBudget(100, 200);
 * socket.on('message', (data) => { if (budget.charge() === 'ok') handle(data); });
 */
export class FrameBudget {
  readonly #bucket: TokenBucket;
  readonly #strikesToClose: number;
  /** Frames over budget since the bucket was last full. */
  #strikes = 0;

  constructor(perSecond: number, burst: number, now: () => number = Date.now) {
    this.#bucket = new TokenBucket(perSecond, burst, now);
    this.#strikesToClose = burst;
  }

  charge(): Charge {
    if (this.#strikes > 0 && this.#bucket.full()) this.#strikes = 0;
    if (this.#bucket.take()) return 'ok';
    this.#strikes++;
    if (this.#strikes >= this.#strikesToClose) return 'close';
    return this.#strikes === 1 ? 'warn' : 'drop';
  }
}

/**
 * Token buckets by key (an address today; a principal once there are principals), for quotas
 * shared by several connections, such as session creations. Idle keys — whose bucket has
 * filled up — are forgotten once more than `maxKeys` are held, so the map stays bounded.
 *
 * @example
 * const creations = new KeyedRateLimiter(10, 20);
 * if (!creations.take(socket.remoteAddress ?? '')) refuse('RATE_LIMITED');
 */
export class KeyedRateLimiter {
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #maxKeys: number;
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(perSecond: number, burst: number, { now = Date.now, maxKeys = 10_000 }: { now?: () => number; maxKeys?: number } = {}) {
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#now = now;
    this.#maxKeys = maxKeys;
  }

  take(key: string): boolean {
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      if (this.#buckets.size >= this.#maxKeys) this.#forget();
      bucket = new TokenBucket(this.#perSecond, this.#burst, this.#now);
      this.#buckets.set(key, bucket);
    }
    return bucket.take();
  }

  /** Keys held, for tests. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Forgets the idle keys; if none is idle, the oldest half (a flood of new keys). */
  #forget(): void {
    for (const [key, bucket] of this.#buckets) if (bucket.full()) this.#buckets.delete(key);
    if (this.#buckets.size < this.#maxKeys) return;
    let drop = Math.ceil(this.#buckets.size / 2);
    for (const key of this.#buckets.keys()) {
      if (drop-- <= 0) break;
      this.#buckets.delete(key);
    }
  }
}
