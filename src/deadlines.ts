/**
 * Coarse deadlines for work that almost always finishes in time. Every
 * upstream request has a deadline, and arming and clearing a timer for
 * each costs more than the rest of the proxy's own work on a manifest; one
 * shared interval that checks the pending deadlines a few times per
 * timeout costs a set insertion and a removal instead. A deadline fires up
 * to one tick late.
 *
 * @module
 */

interface Pending {
  readonly at: number;
  readonly fire: () => void;
}

/** Cancels a deadline; calling it after the deadline fired does nothing. */
export type CancelDeadline = () => void;

/**
 * A set of deadlines checked by one interval, which runs only while some
 * deadline is pending.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Deadlines } from "./deadlines.ts";
 * const deadlines = new Deadlines(10);
 * let fired = false;
 * deadlines.after(20, () => fired = true);
 * const cancel = deadlines.after(20, () => assert.fail("cancelled"));
 * cancel();
 * await new Promise((resolve) => setTimeout(resolve, 80));
 * assert(fired);
 * assert.equal(deadlines.size, 0);
 * assert.equal(deadlines.ticking, false);
 * ```
 */
export class Deadlines {
  readonly #tickMs: number;
  readonly #now: () => number;
  readonly #pending = new Set<Pending>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * @param tickMs How often pending deadlines are checked, in milliseconds:
   *   how late one may fire.
   * @param now The clock, in milliseconds; it must follow real time, since
   *   the checks run on a real interval. The default is monotonic, so a
   *   stepped wall clock neither fires deadlines early nor holds them.
   */
  constructor(tickMs: number, now: () => number = () => performance.now()) {
    if (!(tickMs > 0)) {
      throw new RangeError(`the tick must be positive, not ${tickMs}`);
    }
    this.#tickMs = tickMs;
    this.#now = now;
  }

  /** How many deadlines are pending. */
  get size(): number {
    return this.#pending.size;
  }

  /** Whether the checking interval runs (only while a deadline is pending). */
  get ticking(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * Calls `fire` once, `ms` milliseconds from now (at most one tick later),
   * unless the returned function is called first.
   *
   * @param ms How long from now.
   * @param fire What to do when the deadline passes.
   * @returns A function that cancels the deadline.
   */
  after(ms: number, fire: () => void): CancelDeadline {
    const pending: Pending = { at: this.#now() + ms, fire };
    this.#pending.add(pending);
    this.#timer ??= setInterval(() => this.#check(), this.#tickMs);
    return () => this.#remove(pending);
  }

  #remove(pending: Pending): void {
    this.#pending.delete(pending);
    if (this.#pending.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #check(): void {
    const now = this.#now();
    for (const pending of this.#pending) {
      if (pending.at > now) continue;

      this.#remove(pending);
      try {
        pending.fire();
      } catch {
        // A deadline's action must not stop the others from firing.
      }
    }
  }
}
