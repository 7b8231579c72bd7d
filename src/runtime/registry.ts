import { BatonError, InvalidMessageError, StoreUnavailableError } from '../errors.ts';
import { attempt, isPromise, type Awaitable } from './awaitable.ts';
import type { Clock } from './clock.ts';
import type { SessionHost } from './session-host.ts';
import type { LoadedSession, OwnedElsewhere } from './store.ts';
import { isOwnedElsewhere } from './cluster-store.ts';

/** What a caller wants of a session: whether to create it, and of which kind. */
export interface Claim {
  readonly create: boolean;
  /** The kind the caller expects; a session of another kind is refused. */
  readonly kind?: string | undefined;
}

/** What the registry needs of the runtime. */
export interface RegistryDeps {
  /** Reads (and, on a cluster, claims) what the store keeps of a session. */
  load(sessionId: string): Awaitable<LoadedSession | OwnedElsewhere | undefined>;
  /** Why no session may be activated now (the store was fenced), if so. */
  refusal(sessionId: string): BatonError | undefined;
  /**
   * How long a read waits for the store (`loadTimeoutMs`), on `clock`: a read a network
   * store lost (its connection died and the client never answers) must not hold every
   * caller of the session, and the store's retry, for good.
   */
  readonly loadTimeoutMs: number;
  readonly clock: Clock;
  /** Creates, registers and starts a host (restored from `loaded`, or new); a BatonError if it cannot be had. */
  start(sessionId: string, kind: string | undefined, loaded: LoadedSession | undefined): SessionHost | BatonError;
}

type Waiter = () => void;
type Loaded = LoadedSession | OwnedElsewhere | undefined | StoreUnavailableError;

/** A session whose store read is in flight, with the callers waiting for it, in order. */
interface Activation {
  readonly waiters: Waiter[];
  readonly done: Promise<void>;
  loaded?: Loaded;
}

/**
 * The sessions of this process: live hosts, and activations in flight. A session is
 * claimed synchronously (C1): the first caller starts its activation, and every caller
 * after it — until the store has answered — waits in order, so inputs reach the session in
 * the order they were sent, and no two activations of one session ever run. With a store
 * that answers at once nothing waits: the session is live before the call returns.
 */
export class SessionRegistry {
  readonly live = new Map<string, SessionHost>();
  readonly #activating = new Map<string, Activation>();
  /** Live sessions whose release (passivation) is being committed, with the callers waiting for it, in order. */
  readonly #releasing = new Map<string, Waiter[]>();
  readonly #deps: RegistryDeps;

  constructor(deps: RegistryDeps) {
    this.#deps = deps;
  }

  /** Activations in flight (shutdown waits for them). */
  activations(): Promise<void>[] {
    return [...this.#activating.values()].map((a) => a.done);
  }

  activating(sessionId: string): boolean {
    return this.#activating.has(sessionId);
  }

  /**
   * A live session may be given up (a passivation's release is being committed): callers
   * wait until `done`, then find it live still, or gone — and activate it again, claiming
   * it anew. Without the wait, an input taken by the host meanwhile would be written after
   * the release, under a claim that is no longer this node's: refused, and the session
   * would churn between nodes.
   */
  holdWhile(sessionId: string, done: Promise<unknown>): void {
    if (this.#releasing.has(sessionId)) return;
    const waiters: Waiter[] = [];
    this.#releasing.set(sessionId, waiters);
    const resume = () => {
      this.#releasing.delete(sessionId);
      for (const waiter of waiters) waiter();
    };
    done.then(resume, resume);
  }

  /** Whether callers of this session wait for its release to be committed. */
  releasing(sessionId: string): boolean {
    return this.#releasing.has(sessionId);
  }

  /**
   * Runs `use` on the session — live, activated from the store, or (with `create`) new.
   * `undefined` when there is no such session and `claim.create` is false.
   */
  with<R>(
    sessionId: string,
    claim: Claim,
    use: (host: SessionHost) => Awaitable<R>,
    elsewhere?: (owner: OwnedElsewhere) => Awaitable<R | BatonError>,
  ): Awaitable<R | BatonError | undefined> {
    const releasing = this.#releasing.get(sessionId);
    if (releasing) return this.#queue(releasing, () => this.with(sessionId, claim, use, elsewhere));
    const live = this.live.get(sessionId);
    if (live) return kindProblem(sessionId, live.kindName, claim.kind) ?? use(live);
    const pending = this.#activating.get(sessionId);
    if (pending) return this.#queue(pending.waiters, () => this.#arrive(sessionId, pending.loaded, claim, use, elsewhere));
    const refusal = this.#deps.refusal(sessionId);
    if (refusal) return refusal;
    const loaded = attempt<Loaded>(
      () => this.#deps.load(sessionId),
      (error) => new StoreUnavailableError(sessionId, error),
    );
    if (!isPromise(loaded)) return this.#arrive(sessionId, loaded, claim, use, elsewhere);
    const waiters: Waiter[] = [];
    let answered: () => void = () => {};
    const activation: Activation = { waiters, done: new Promise<void>((resolve) => (answered = resolve)) };
    // The store's answer, or — if it has none by the deadline — a refusal: the callers are
    // told, the session is free to be read again, and a late answer is dropped (a claim it
    // took is this node's already, and the next read finds it).
    const { clock, loadTimeoutMs } = this.#deps;
    const answer = (value: Loaded): void => {
      if (this.#activating.get(sessionId) !== activation) return;
      clock.clearTimeout(deadline);
      activation.loaded = value;
      this.#activating.delete(sessionId);
      // In arrival order, synchronously, in one go: nothing can slip in between the first
      // caller and the rest (a promise per waiter would let other microtasks in).
      for (const waiter of waiters) waiter();
      answered();
    };
    const deadline = clock.setTimeout(
      () => answer(new StoreUnavailableError(sessionId, `the store did not answer the read within ${loadTimeoutMs} ms`)),
      loadTimeoutMs,
    );
    (deadline as { unref?: () => void }).unref?.();
    this.#activating.set(sessionId, activation);
    void loaded.then(answer);
    return this.#queue(waiters, () => this.#arrive(sessionId, activation.loaded, claim, use, elsewhere));
  }

  /** The store answered: the first caller starts the session, and those after it find it live. */
  #arrive<R>(
    sessionId: string,
    loaded: Loaded,
    claim: Claim,
    use: (host: SessionHost) => Awaitable<R>,
    elsewhere?: (owner: OwnedElsewhere) => Awaitable<R | BatonError>,
  ): Awaitable<R | BatonError | undefined> {
    if (loaded instanceof BatonError) return loaded;
    if (isOwnedElsewhere(loaded)) {
      // Another live node runs it (a cluster): this node serves the caller through the store.
      const problem = loaded.kind === undefined ? undefined : kindProblem(sessionId, loaded.kind, claim.kind);
      if (problem) return problem;
      return elsewhere ? elsewhere(loaded) : new StoreUnavailableError(sessionId, `it is owned by node ${loaded.ownedBy.id}`);
    }
    const live = this.live.get(sessionId);
    if (live) return kindProblem(sessionId, live.kindName, claim.kind) ?? use(live);
    if (!loaded && !claim.create) return undefined;
    const problem = loaded && kindProblem(sessionId, loaded.session.kind, claim.kind);
    if (problem) return problem;
    const host = this.#deps.start(sessionId, claim.kind, loaded);
    return host instanceof BatonError ? host : use(host);
  }

  /** Queues `run` behind an activation: it runs synchronously once the store has answered. */
  #queue<R>(waiters: Waiter[], run: () => Awaitable<R>): Promise<R> {
    return new Promise<R>((resolve, reject) =>
      waiters.push(() => {
        try {
          resolve(run());
        } catch (error) {
          reject(error);
        }
      }),
    );
  }
}

function kindProblem(sessionId: string, actual: string, wanted: string | undefined): InvalidMessageError | undefined {
  if (wanted === undefined || wanted === actual) return undefined;
  return new InvalidMessageError(`session "${sessionId}" is of kind "${actual}", not "${wanted}"`);
}
