import assert from "node:assert/strict";
import fc from "fast-check";
import {
  acceptKey,
  type CachedAnswer,
  ContentCache,
  digestMatches,
} from "../../src/cache.ts";
import { digestOf } from "../_fixtures.ts";

const enc = new TextEncoder();

/** What an entry should cost: body, key and headers, plus 256 bytes. */
function cost(key: string, a: CachedAnswer): number {
  let n = 256 + a.body.length + key.length * 2;
  for (const [k, v] of a.headers) n += (k.length + v.length) * 2;
  return n;
}

async function answer(
  text: string,
): Promise<{ digest: string; answer: CachedAnswer }> {
  const body = enc.encode(text);
  return {
    digest: await digestOf(body),
    answer: { headers: [["content-length", String(body.length)]], body },
  };
}

Deno.test("digestMatches() confirms sha256 and sha512 and nothing else", async () => {
  const body = enc.encode("hello");
  const sha256 = await digestOf(body);
  const sha512 = "sha512:" + [
    ...new Uint8Array(await crypto.subtle.digest("SHA-512", body)),
  ].map((b) => b.toString(16).padStart(2, "0")).join("");

  assert.equal(await digestMatches(sha256, body), true);
  assert.equal(await digestMatches(sha512, body), true);
  assert.equal(await digestMatches(sha256, enc.encode("hellO")), false);
  assert.equal(await digestMatches(sha256.toUpperCase(), body), false);
  assert.equal(await digestMatches(sha256.replace(":", ""), body), false);
  assert.equal(
    await digestMatches(sha256.replace("sha256", "md5"), body),
    false,
  );
  assert.equal(await digestMatches(sha256.slice(0, -1), body), false);
  for (const inherited of ["constructor", "__proto__", "toString"]) {
    assert.equal(
      await digestMatches(`${inherited}:${"a".repeat(64)}`, body),
      false,
      inherited,
    );
  }
});

Deno.test("acceptKey() ignores order, case, parameters and repeats", () => {
  assert.equal(acceptKey(null), "");
  assert.equal(acceptKey(""), "");
  assert.equal(
    acceptKey("application/B; q=0.5, application/a ,application/b"),
    "application/a,application/b",
  );
  assert.notEqual(acceptKey("application/a"), acceptKey("application/b"));
  assert.equal(
    acceptKey("application/a;q=0, application/b, application/c; Q = 0.00"),
    "application/b",
    "types refused with q=0 are not part of the key",
  );
  assert.equal(acceptKey("application/a;q=0.01"), "application/a");
});

Deno.test("ContentCache stores only bodies that hash to the digest", async () => {
  const cache = new ContentCache();
  const good = await answer("manifest");
  const other = await answer("other");

  assert.equal(await cache.put("k", other.digest, good.answer), false);
  assert.equal(cache.get("k"), undefined);
  assert.equal(cache.bytes, 0);

  assert.equal(await cache.put("k", good.digest, good.answer), true);
  assert.deepEqual(cache.get("k"), good.answer);
  assert.equal(cache.bytes, cost("k", good.answer));
});

Deno.test("ContentCache expires entries after the time to live", async () => {
  let now = 1_000;
  const cache = new ContentCache({ ttlMs: 500, now: () => now });
  const a = await answer("a");
  await cache.put("a", a.digest, a.answer);

  now += 499;
  assert.ok(cache.get("a"));
  now += 1;
  assert.equal(cache.get("a"), undefined);
  assert.equal(cache.size, 0);
  assert.equal(cache.bytes, 0);
});

Deno.test("ContentCache evicts the least recently used within its byte budget", async () => {
  const a = await answer("aaaa");
  const cache = new ContentCache({ maxBytes: 2 * cost("a", a.answer) + 10 });
  const b = await answer("bbbb");
  const c = await answer("cccc");
  await cache.put("a", a.digest, a.answer);
  await cache.put("b", b.digest, b.answer);
  assert.ok(cache.get("a"), "a becomes the most recently used");

  await cache.put("c", c.digest, c.answer);
  assert.ok(cache.get("a"));
  assert.equal(cache.get("b"), undefined);
  assert.ok(cache.get("c"));
  assert.equal(cache.bytes, 2 * cost("a", a.answer));
});

Deno.test("ContentCache refuses bodies over its limits and counts a replaced key once", async () => {
  const cache = new ContentCache({ maxBytes: 10_000, maxEntryBytes: 4 });
  const big = await answer("12345");
  assert.equal(await cache.put("big", big.digest, big.answer), false);

  const small = await answer("1234");
  await cache.put("k", small.digest, small.answer);
  await cache.put("k", small.digest, small.answer);
  assert.equal(cache.size, 1);
  assert.equal(cache.bytes, cost("k", small.answer));

  const off = new ContentCache({ ttlMs: 0 });
  assert.equal(await off.put("k", small.digest, small.answer), false);
  assert.throws(() => new ContentCache({ maxBytes: -1 }), RangeError);
  assert.throws(() => new ContentCache({ ttlMs: NaN }), RangeError);
});

Deno.test("ContentCache keeps its byte count exact and within budget (property)", async () => {
  const bodies = await Promise.all(
    ["", "a", "bb", "cccc", "dddddddd", "eeeeeeeeeeeeeeee"].map(answer),
  );
  const op = fc.oneof(
    fc.record({
      put: fc.constant(true),
      key: fc.integer({ min: 0, max: 7 }),
      body: fc.integer({ min: 0, max: bodies.length - 1 }),
    }),
    fc.record({ put: fc.constant(false), key: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ tick: fc.integer({ min: 0, max: 400 }) }),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 1200 }),
      fc.array(op, { maxLength: 60 }),
      async (maxBytes, ops) => {
        let now = 0;
        const cache = new ContentCache({
          maxBytes,
          ttlMs: 1000,
          now: () => now,
        });
        const model = new Map<string, { size: number; expires: number }>();
        for (const o of ops) {
          if ("tick" in o) {
            now += o.tick;
          } else if (o.put) {
            const { digest, answer: a } = bodies[o.body!]!;
            const stored = await cache.put(`k${o.key}`, digest, a);
            assert.equal(stored, cost(`k${o.key}`, a) <= maxBytes);
            if (stored) {
              model.set(`k${o.key}`, {
                size: cost(`k${o.key}`, a),
                expires: now + 1000,
              });
            }
          } else {
            const got = cache.get(`k${o.key}`);
            const m = model.get(`k${o.key}`);
            if (got) {
              assert.ok(m && m.expires > now, "only live entries are served");
              assert.equal(cost(`k${o.key}`, got), m.size);
            }
          }
          let held = 0;
          for (const [key] of model) {
            if (cache.get(key) === undefined) model.delete(key);
            else held += model.get(key)!.size;
          }
          assert.equal(cache.bytes, held);
          assert.ok(cache.bytes <= maxBytes);
        }
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("ContentCache bounds memory whatever the keys: empty bodies and long keys count", async () => {
  const empty = await answer("");
  const cache = new ContentCache({ maxBytes: 64 * 1024 });
  for (let i = 0; i < 1500; i++) {
    await cache.put(`${i}:${"x".repeat(8000)}`, empty.digest, empty.answer);
  }
  assert.ok(cache.bytes <= 64 * 1024, String(cache.bytes));
  assert.ok(cache.size <= 4, String(cache.size));
});
