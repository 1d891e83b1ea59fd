import assert from "node:assert/strict";
import { Deadlines } from "../../src/deadlines.ts";

const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("Deadlines fire once, not before their time and at most a tick late", async () => {
  const deadlines = new Deadlines(10);
  const started = Date.now();
  const fired: number[] = [];
  deadlines.after(40, () => fired.push(Date.now() - started));

  await sleep(25);
  assert.deepEqual(fired, []);
  assert.equal(deadlines.size, 1);

  await sleep(60);
  assert.equal(fired.length, 1);
  assert.ok(fired[0]! >= 40, `fired early: ${fired[0]} ms`);
  assert.equal(deadlines.size, 0);
});

Deno.test("Deadlines: a cancelled deadline never fires; cancelling twice or late is harmless", async () => {
  const deadlines = new Deadlines(5);
  let kept = 0;
  let cancelledRan = false;
  const cancel = deadlines.after(15, () => cancelledRan = true);
  const late = deadlines.after(15, () => kept++);
  cancel();
  cancel();

  await sleep(50);
  late();
  assert.equal(cancelledRan, false);
  assert.equal(kept, 1);
  assert.equal(deadlines.size, 0);
});

Deno.test("Deadlines run their interval only while a deadline is pending", async () => {
  const deadlines = new Deadlines(5);
  assert.equal(deadlines.ticking, false);
  for (let i = 0; i < 100; i++) {
    const cancel = deadlines.after(60_000, () => {});
    assert.equal(deadlines.ticking, true);
    cancel();
    assert.equal(deadlines.ticking, false);
  }

  let fired = false;
  deadlines.after(1, () => fired = true);
  deadlines.after(1, () => {});
  assert.equal(deadlines.ticking, true);
  await sleep(30);
  assert.ok(fired);
  assert.equal(deadlines.ticking, false);
});

Deno.test("Deadlines: an action that throws does not stop the others", async () => {
  const deadlines = new Deadlines(5);
  const order: string[] = [];
  deadlines.after(1, () => {
    order.push("first");
    throw new Error("boom");
  });
  deadlines.after(1, () => order.push("second"));

  await sleep(30);
  assert.deepEqual(order, ["first", "second"]);
  assert.equal(deadlines.size, 0);
});

Deno.test("Deadlines refuse a tick that is not positive", () => {
  for (const tick of [0, -1, NaN]) {
    assert.throws(() => new Deadlines(tick), RangeError);
  }
});
