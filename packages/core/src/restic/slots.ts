/** A fixed number of places for concurrent work (files being read, buffers in use). */
export class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(count: number) {
    this.#free = Math.max(1, count);
  }

  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  /** Takes a slot if one is free, without waiting. */
  tryAcquire(): boolean {
    if (this.#free === 0) return false;
    this.#free--;
    return true;
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }

  /** Runs `work` in a slot, releasing it however `work` ends. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await work();
    } finally {
      this.release();
    }
  }
}

/** A fixed set of reusable objects (buffers, chunk readers), handed out one user at a time. */
export class Pool<T> {
  readonly #items: T[] = [];
  readonly #slots: Slots;
  readonly #make: () => T;
  #made = 0;
  readonly #size: number;

  constructor(size: number, make: () => T) {
    this.#size = Math.max(1, size);
    this.#slots = new Slots(this.#size);
    this.#make = make;
  }

  /** Runs `work` with an item of the pool (made on first need). */
  async use<R>(work: (item: T) => Promise<R>): Promise<R> {
    return this.#slots.run(async () => {
      const item = this.#items.pop() ?? (this.#made++ < this.#size ? this.#make() : undefined)!;
      try {
        return await work(item);
      } finally {
        this.#items.push(item);
      }
    });
  }
}
