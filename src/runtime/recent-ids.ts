/**
 * The ids a session accepted recently, for duplicate detection (C10). Bounded: the oldest
 * id is forgotten first. It keeps a hash of the content, not the content, so that a
 * session's memory does not grow with message size.
 */
export class RecentIds {
  readonly #capacity: number;
  readonly #ids = new Map<string, number>();

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** `undefined`: unseen; `true`: same id, same content; `false`: same id, other content. */
  check(id: string, content: string): boolean | undefined {
    const seen = this.#ids.get(id);
    return seen === undefined ? undefined : seen === hash(content);
  }

  remember(id: string, content: string): void {
    this.#ids.set(id, hash(content));
    if (this.#ids.size > this.#capacity) {
      // Maps iterate in insertion order: the first key is the oldest.
      const oldest = this.#ids.keys().next();
      if (!oldest.done) this.#ids.delete(oldest.value);
    }
  }

  get size(): number {
    return this.#ids.size;
  }
}

/** 32-bit FNV-1a, mixed with the length. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h ^ text.length) >>> 0;
}
