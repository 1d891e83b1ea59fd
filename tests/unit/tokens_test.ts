import assert from "node:assert/strict";
import {
  AccessTokenCache,
  type AccessTokenCacheOptions,
  type EntraToken,
  RefreshTokenSource,
  type RefreshTokenSourceOptions,
  type RenewalEvent,
  TokenError,
} from "../../src/tokens.ts";

const T0 = 1_700_000_000_000;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const EXCHANGE = "https://r.azurecr.io/oauth2/exchange";
const REALM = "https://r.azurecr.io/oauth2/token";
const SERVICE = "r.azurecr.io";

function b64url(text: string): string {
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function jwt(claims: Record<string, unknown>): string {
  return `${b64url('{"alg":"RS256"}')}.${b64url(JSON.stringify(claims))}.sig`;
}

/** A clock the test moves by hand. */
class Clock {
  t = T0;
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** One request a fake fetch received. */
interface Seen {
  url: string;
  method: string;
  contentType: string | null;
  form: URLSearchParams;
}

type Answer = Response | Error | Promise<Response>;

/** A fake fetch answering from a queue (or a function) and recording. */
class FakeFetch {
  seen: Seen[] = [];
  #answers: Answer[] = [];
  #fallback: (() => Answer) | undefined;

  constructor(fallback?: () => Answer) {
    this.#fallback = fallback;
  }

  queue(...answers: Answer[]): void {
    this.#answers.push(...answers);
  }

  fetch: typeof fetch = async (input, init): Promise<Response> => {
    const req = new Request(input, init);
    this.seen.push({
      url: req.url,
      method: req.method,
      contentType: req.headers.get("content-type"),
      form: new URLSearchParams(await req.text()),
    });
    const answer = this.#answers.shift() ?? this.#fallback?.();
    if (answer === undefined) throw new Error("unexpected request");
    if (answer instanceof Error) throw answer;
    return await answer;
  };
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

function deferred<T>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
} {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const ENTRA = jwt({
  tid: "tenant-0001",
  aud: "https://containerregistry.azure.net",
});

function refreshJwt(expMs: number, n = 0): string {
  return jwt({ exp: expMs / 1000, n });
}

function source(
  clock: Clock,
  fake: FakeFetch,
  extra: Partial<RefreshTokenSourceOptions> = {},
): RefreshTokenSource {
  return new RefreshTokenSource({
    exchangeUrl: EXCHANGE,
    service: SERVICE,
    getEntraToken: (): Promise<EntraToken> =>
      Promise.resolve({ token: ENTRA, expiresAt: clock.t + HOUR }),
    fetch: fake.fetch,
    now: clock.now,
    random: () => 0.5,
    checkIntervalMs: 24 * HOUR,
    ...extra,
  });
}

function assertNoSecret(e: unknown, ...secrets: string[]): void {
  assert.ok(e instanceof TokenError, String(e));
  assert.equal(e.name, "TokenError");
  for (const s of secrets) {
    assert.ok(!e.message.includes(s), e.message);
    assert.ok(!String(e.stack).includes(s));
  }
}

// RefreshTokenSource

Deno.test("RefreshTokenSource posts the exchange form with the tenant", async () => {
  const clock = new Clock();
  const fake = new FakeFetch();
  const rt = refreshJwt(T0 + 3 * HOUR);
  fake.queue(json(200, { refresh_token: rt }));
  const s = source(clock, fake);
  assert.equal(await s.token(), rt);
  assert.equal(fake.seen.length, 1);
  const [req] = fake.seen;
  assert.equal(req!.url, EXCHANGE);
  assert.equal(req!.method, "POST");
  assert.match(req!.contentType ?? "", /^application\/x-www-form-urlencoded/);
  assert.deepEqual(Object.fromEntries(req!.form), {
    grant_type: "access_token",
    service: SERVICE,
    access_token: ENTRA,
    tenant: "tenant-0001",
  });
  assert.equal(s.expiresAt, T0 + 3 * HOUR);
  assert.ok(s.isValid());
});

Deno.test("RefreshTokenSource sends no tenant for an opaque Entra token", async () => {
  const clock = new Clock();
  const fake = new FakeFetch();
  fake.queue(json(200, { refresh_token: "opaque-refresh" }));
  const s = source(clock, fake, {
    getEntraToken: () =>
      Promise.resolve({ token: "opaque-entra", expiresAt: T0 + 2 * HOUR }),
  });
  await s.renew();
  assert.equal(fake.seen[0]!.form.has("tenant"), false);
  assert.equal(fake.seen[0]!.form.get("access_token"), "opaque-entra");
  // Without an exp claim the Entra token's expiry is used.
  assert.equal(s.expiresAt, T0 + 2 * HOUR);
});

Deno.test("RefreshTokenSource.tick() renews a third of the life before expiry", async () => {
  const clock = new Clock();
  const fake = new FakeFetch(() =>
    json(200, { refresh_token: refreshJwt(clock.t + 3 * HOUR) })
  );
  const s = source(clock, fake);

  assert.equal(await s.tick(), 2 * HOUR);
  assert.equal(fake.seen.length, 1);

  clock.advance(HOUR);
  assert.equal(await s.tick(), HOUR);
  clock.advance(HOUR - 1);
  assert.equal(await s.tick(), 100);
  assert.equal(fake.seen.length, 1, "renewed too early");

  clock.advance(1);
  await s.tick();
  assert.equal(fake.seen.length, 2, "did not renew when due");
  assert.equal(s.expiresAt, T0 + 5 * HOUR);
  assert.ok(s.expiresAt! - clock.t > 0);
});

Deno.test("RefreshTokenSource.tick() renews short tokens half-way", async () => {
  const clock = new Clock();
  const fake = new FakeFetch(() =>
    json(200, { refresh_token: refreshJwt(clock.t + 20 * MINUTE) })
  );
  const s = source(clock, fake);
  assert.equal(await s.tick(), 10 * MINUTE);
  clock.advance(10 * MINUTE - 1);
  await s.tick();
  assert.equal(fake.seen.length, 1);
  clock.advance(1);
  await s.tick();
  assert.equal(fake.seen.length, 2);
});

Deno.test("RefreshTokenSource.tick() keeps at least 15 minutes of margin", async () => {
  const clock = new Clock();
  const fake = new FakeFetch(() =>
    json(200, { refresh_token: refreshJwt(clock.t + 40 * MINUTE) })
  );
  const s = source(clock, fake);
  assert.equal(await s.tick(), 25 * MINUTE);
});

Deno.test("RefreshTokenSource.tick() waits no longer than the check interval", async () => {
  const clock = new Clock();
  const fake = new FakeFetch(() =>
    json(200, { refresh_token: refreshJwt(clock.t + 3 * HOUR) })
  );
  const s = source(clock, fake, { checkIntervalMs: 30_000 });
  assert.equal(await s.tick(), 30_000);
  assert.equal(await s.tick(), 30_000);
  assert.equal(fake.seen.length, 1);
});

Deno.test("RefreshTokenSource coalesces concurrent renewals into one exchange", async () => {
  const clock = new Clock();
  const gate = deferred<Response>();
  const fake = new FakeFetch();
  fake.queue(gate.promise);
  let entraCalls = 0;
  const s = source(clock, fake, {
    getEntraToken: () => {
      entraCalls++;
      return Promise.resolve({ token: ENTRA, expiresAt: T0 + HOUR });
    },
  });
  const rt = refreshJwt(T0 + 3 * HOUR);
  const all = Promise.all([
    s.renew(),
    s.renew(),
    s.token(),
    s.tick(),
    s.token(),
  ]);
  gate.resolve(json(200, { refresh_token: rt }));
  const [, , a, , b] = await all;
  assert.equal(a, rt);
  assert.equal(b, rt);
  assert.equal(fake.seen.length, 1);
  assert.equal(entraCalls, 1);

  // A later renewal is a new exchange.
  fake.queue(json(200, { refresh_token: refreshJwt(T0 + 4 * HOUR) }));
  await s.renew();
  assert.equal(fake.seen.length, 2);
});

Deno.test("RefreshTokenSource keeps the old token when a renewal fails", async () => {
  const clock = new Clock();
  const fake = new FakeFetch();
  const events: RenewalEvent[] = [];
  const s = source(clock, fake, { onRenewal: (e) => events.push(e) });
  const rt = refreshJwt(T0 + 3 * HOUR);
  fake.queue(json(200, { refresh_token: rt }));
  await s.tick();

  clock.advance(2 * HOUR);
  fake.queue(json(503, { errors: [{ code: "UNAVAILABLE" }] }));
  const delay = await s.tick();
  assert.equal(fake.seen.length, 2);
  assert.ok(s.isValid());
  assert.equal(await s.token(), rt);
  assert.equal(fake.seen.length, 2, "token() must not renew while valid");
  assert.equal(s.expiresAt, T0 + 3 * HOUR);
  assert.match(s.lastError ?? "", /503/);
  assert.ok(delay >= 1000 && delay < 2000, String(delay));
  assert.deepEqual(events, [
    { ok: true, expiresAt: T0 + 3 * HOUR },
    { ok: false, error: s.lastError, expiresAt: T0 + 3 * HOUR },
  ]);
});

Deno.test("RefreshTokenSource backs off with growing jittered delays", async () => {
  for (const r of [0, 0.5, 0.999999]) {
    const clock = new Clock();
    const fake = new FakeFetch(() => json(500, {}));
    const s = source(clock, fake, { random: () => r });
    let previous = 0;
    for (let failure = 1; failure <= 12; failure++) {
      const delay = await s.tick();
      assert.equal(fake.seen.length, failure);
      const base = Math.min(5 * MINUTE, 1000 * 2 ** failure);
      assert.ok(delay >= base / 2 && delay < base, `${r} ${failure} ${delay}`);
      assert.ok(Math.abs(delay - (base / 2 + r * base / 2)) < 0.01);
      if (base < 5 * MINUTE) assert.ok(delay > previous);
      else assert.ok(delay >= previous);
      previous = delay;

      // No attempt before the backoff has passed.
      clock.advance(delay - 1);
      const rest = await s.tick();
      assert.equal(fake.seen.length, failure, "retried during backoff");
      assert.equal(rest, 100, "the shortest wait is 100 ms");
      clock.advance(1);
    }
  }
});

Deno.test("RefreshTokenSource recovers after failures", async () => {
  const clock = new Clock();
  const fake = new FakeFetch();
  const events: boolean[] = [];
  const s = source(clock, fake, { onRenewal: (e) => events.push(e.ok) });
  fake.queue(new TypeError("connection refused"), json(500, {}));
  clock.advance(await s.tick());
  clock.advance(await s.tick());
  assert.equal(s.isValid(), false);
  assert.ok(s.lastError);

  const rt = refreshJwt(clock.t + 3 * HOUR);
  fake.queue(json(200, { refresh_token: rt }));
  const delay = await s.tick();
  assert.equal(await s.token(), rt);
  assert.equal(s.lastError, undefined);
  assert.equal(delay, 2 * HOUR);
  assert.deepEqual(events, [false, false, true]);

  // After recovery the backoff starts over.
  clock.advance(2 * HOUR);
  fake.queue(json(500, {}));
  const again = await s.tick();
  assert.ok(again >= 1000 && again < 2000, String(again));
});

Deno.test("RefreshTokenSource.token() throws TokenError without a valid token", async () => {
  const clock = new Clock();
  const fake = new FakeFetch();
  const s = source(clock, fake);
  fake.queue(json(200, { refresh_token: refreshJwt(T0 + HOUR) }));
  await s.token();

  clock.advance(HOUR);
  assert.equal(s.isValid(), false);
  fake.queue(json(401, { errors: [{ code: "UNAUTHORIZED" }] }));
  await assert.rejects(() => s.token(), (e: unknown) => {
    assertNoSecret(e, ENTRA);
    assert.match((e as Error).message, /401/);
    return true;
  });
});

const SECRET_LEAKS: { name: string; answer: () => Answer }[] = [
  {
    name: "an error body echoing the token",
    answer: () =>
      json(400, {
        errors: [{
          code: "DENIED",
          message: `bad token ${ENTRA}`,
          detail: ENTRA,
        }],
      }),
  },
  {
    name: "a non-JSON error body echoing the token",
    answer: () => new Response(`bad token ${ENTRA}`, { status: 400 }),
  },
  {
    name: "a non-JSON success body echoing the token",
    answer: () => new Response(`token ${ENTRA}`, { status: 200 }),
  },
  {
    name: "a success without a refresh token",
    answer: () => json(200, { access_token: ENTRA }),
  },
  {
    name: "a fetch failure naming the token",
    answer: () => new TypeError(`failed to send ${ENTRA}`),
  },
];

for (const c of SECRET_LEAKS) {
  Deno.test(`RefreshTokenSource errors never hold tokens: ${c.name}`, async () => {
    const clock = new Clock();
    const fake = new FakeFetch(c.answer);
    const events: RenewalEvent[] = [];
    const s = source(clock, fake, { onRenewal: (e) => events.push(e) });
    await assert.rejects(() => s.renew(), (e: unknown) => {
      assertNoSecret(e, ENTRA);
      return true;
    });
    await assert.rejects(() => s.token(), (e: unknown) => {
      assertNoSecret(e, ENTRA);
      return true;
    });
    assert.ok(!(s.lastError ?? "").includes(ENTRA));
    assert.ok(!JSON.stringify(events).includes(ENTRA));
  });
}

Deno.test("RefreshTokenSource reports an Entra sign-in failure", async () => {
  const clock = new Clock();
  const fake = new FakeFetch();
  const s = source(clock, fake, {
    getEntraToken: () =>
      Promise.reject(new Error("ManagedIdentityCredential: no endpoint\nmore")),
  });
  await assert.rejects(() => s.token(), (e: unknown) => {
    assert.ok(e instanceof TokenError);
    assert.match(e.message, /Entra ID sign-in failed: .*no endpoint/);
    assert.ok(!e.message.includes("more"));
    return true;
  });
  assert.equal(fake.seen.length, 0);
});

// AccessTokenCache

function cache(
  clock: Clock,
  fake: FakeFetch,
  extra: Partial<AccessTokenCacheOptions> = {},
): AccessTokenCache {
  return new AccessTokenCache({
    realm: REALM,
    service: SERVICE,
    refreshToken: () => Promise.resolve("refresh-token-1"),
    fetch: fake.fetch,
    now: clock.now,
    ...extra,
  });
}

const SCOPE_A = "repository:hub/library/a:pull";
const SCOPE_B = "repository:hub/library/b:pull";

Deno.test("AccessTokenCache posts the refresh-token form with every scope", async () => {
  const clock = new Clock();
  const fake = new FakeFetch();
  fake.queue(json(200, { access_token: "at-1" }));
  const c = cache(clock, fake);
  assert.deepEqual(await c.get([SCOPE_A, SCOPE_B]), {
    token: "at-1",
    cached: false,
  });
  const [req] = fake.seen;
  assert.equal(req!.url, REALM);
  assert.equal(req!.method, "POST");
  assert.match(req!.contentType ?? "", /^application\/x-www-form-urlencoded/);
  assert.equal(req!.form.get("grant_type"), "refresh_token");
  assert.equal(req!.form.get("service"), SERVICE);
  assert.equal(req!.form.get("refresh_token"), "refresh-token-1");
  assert.deepEqual(req!.form.getAll("scope"), [SCOPE_A, SCOPE_B]);
  assert.deepEqual([...new Set(req!.form.keys())].sort(), [
    "grant_type",
    "refresh_token",
    "scope",
    "service",
  ]);
});

Deno.test("AccessTokenCache uses a token until shortly before its exp", async () => {
  const clock = new Clock();
  const exp = T0 + HOUR;
  const fake = new FakeFetch(() =>
    json(200, { access_token: jwt({ exp: exp / 1000 }), expires_in: 99999 })
  );
  const lookups: boolean[] = [];
  const c = cache(clock, fake, { onLookup: (hit) => lookups.push(hit) });
  const first = await c.get([SCOPE_A]);
  assert.equal(first.cached, false);

  clock.advance(HOUR - MINUTE - 1);
  assert.deepEqual(await c.get([SCOPE_A]), {
    token: first.token,
    cached: true,
  });
  assert.equal(fake.seen.length, 1);

  clock.advance(1);
  assert.equal((await c.get([SCOPE_A])).cached, false);
  assert.equal(fake.seen.length, 2);
  assert.deepEqual(lookups, [false, true, false]);
});

Deno.test("AccessTokenCache keys by the set of scopes", async () => {
  const clock = new Clock();
  let n = 0;
  const fake = new FakeFetch(() => json(200, { access_token: `at-${++n}` }));
  const c = cache(clock, fake);
  await c.get([SCOPE_A, SCOPE_B]);
  assert.equal((await c.get([SCOPE_B, SCOPE_A, SCOPE_A])).cached, true);
  assert.equal((await c.get([SCOPE_A])).cached, false);
  assert.equal(fake.seen.length, 2);
  assert.equal(c.size, 2);
});

Deno.test("AccessTokenCache falls back to expires_in, then 60 s", async () => {
  const cases: {
    body: Record<string, unknown>;
    extra?: Partial<AccessTokenCacheOptions>;
    hitUntil: number;
  }[] = [
    // 300 s lifetime, 30 s margin.
    { body: { access_token: "opaque", expires_in: 300 }, hitUntil: 270_000 },
    // 60 s default, 6 s margin.
    { body: { access_token: "opaque" }, hitUntil: 54_000 },
    { body: { access_token: "opaque", expires_in: "300" }, hitUntil: 54_000 },
    // The docker `token` field alone is accepted.
    { body: { token: "opaque", expires_in: 120 }, hitUntil: 108_000 },
    // A short lifetime still keeps a 5 s margin.
    { body: { access_token: "opaque", expires_in: 10 }, hitUntil: 5_000 },
    {
      body: { access_token: "opaque" },
      extra: { defaultTtlMs: 20 * MINUTE },
      hitUntil: 19 * MINUTE,
    },
  ];
  for (const { body, extra, hitUntil } of cases) {
    const clock = new Clock();
    const fake = new FakeFetch(() => json(200, body));
    const c = cache(clock, fake, extra);
    await c.get([SCOPE_A]);
    clock.advance(hitUntil - 1);
    assert.equal((await c.get([SCOPE_A])).cached, true, JSON.stringify(body));
    clock.advance(1);
    assert.equal((await c.get([SCOPE_A])).cached, false, JSON.stringify(body));
  }
});

Deno.test("AccessTokenCache shares one request between concurrent misses", async () => {
  const clock = new Clock();
  const gate = deferred<Response>();
  const fake = new FakeFetch();
  fake.queue(gate.promise, json(200, { access_token: "at-b" }));
  const lookups: boolean[] = [];
  const c = cache(clock, fake, { onLookup: (hit) => lookups.push(hit) });
  const same = [
    c.get([SCOPE_A]),
    c.get([SCOPE_A]),
    c.get([SCOPE_A, SCOPE_A]),
  ];
  const other = c.get([SCOPE_B]);
  gate.resolve(json(200, { access_token: "at-a" }));
  const results = await Promise.all(same);
  for (const r of results) {
    assert.deepEqual(r, { token: "at-a", cached: false });
  }
  assert.equal((await other).token, "at-b");
  assert.equal(fake.seen.length, 2);
  assert.deepEqual(lookups, [false, false, false, false]);
});

Deno.test("AccessTokenCache shares a failure and retries on the next miss", async () => {
  const clock = new Clock();
  const gate = deferred<Response>();
  const fake = new FakeFetch();
  fake.queue(gate.promise, json(200, { access_token: "at-2" }));
  const c = cache(clock, fake);
  const both = [c.get([SCOPE_A]), c.get([SCOPE_A])];
  gate.resolve(json(503, {}));
  for (const p of both) await assert.rejects(() => p, TokenError);
  assert.equal(fake.seen.length, 1);
  assert.equal((await c.get([SCOPE_A])).token, "at-2");
  assert.equal(fake.seen.length, 2);
});

Deno.test("AccessTokenCache evicts the least recently used entry", async () => {
  const clock = new Clock();
  const fake = new FakeFetch(() => json(200, { access_token: "t" }));
  const c = cache(clock, fake, { maxEntries: 2 });
  const scope = (s: string): string[] => [`repository:hub/${s}:pull`];
  await c.get(scope("a"));
  await c.get(scope("b"));
  assert.equal((await c.get(scope("a"))).cached, true);
  await c.get(scope("c"));
  assert.equal(c.size, 2);
  assert.equal(fake.seen.length, 3);

  assert.equal((await c.get(scope("a"))).cached, true);
  assert.equal((await c.get(scope("c"))).cached, true);
  assert.equal((await c.get(scope("b"))).cached, false);
  assert.equal(c.size, 2);
  assert.equal((await c.get(scope("c"))).cached, true);
  assert.equal((await c.get(scope("a"))).cached, false);
});

Deno.test("AccessTokenCache stays within maxEntries", async () => {
  const clock = new Clock();
  const fake = new FakeFetch(() => json(200, { access_token: "t" }));
  const c = cache(clock, fake, { maxEntries: 5 });
  for (let i = 0; i < 50; i++) {
    await c.get([`repository:hub/r${i}:pull`]);
    assert.ok(c.size <= 5, String(c.size));
  }
  assert.equal(c.size, 5);
});

Deno.test("AccessTokenCache.invalidate() drops only the matching token", async () => {
  const clock = new Clock();
  let n = 0;
  const fake = new FakeFetch(() => json(200, { access_token: `at-${++n}` }));
  const c = cache(clock, fake);
  const a = await c.get([SCOPE_A]);
  const b = await c.get([SCOPE_B]);

  c.invalidate([SCOPE_A], "some-other-token");
  c.invalidate([SCOPE_A, SCOPE_B], a.token);
  assert.equal((await c.get([SCOPE_A])).cached, true);

  c.invalidate([SCOPE_A], a.token);
  assert.equal(c.size, 1);
  assert.equal((await c.get([SCOPE_B])).token, b.token);
  const fresh = await c.get([SCOPE_A]);
  assert.equal(fresh.cached, false);
  assert.notEqual(fresh.token, a.token);
});

Deno.test("AccessTokenCache renews the refresh token once on a 401", async () => {
  const clock = new Clock();
  const fake = new FakeFetch();
  fake.queue(
    json(401, { errors: [{ code: "UNAUTHORIZED" }] }),
    json(200, { access_token: "at-after" }),
  );
  let refresh = "refresh-old";
  let rejected = 0;
  const c = cache(clock, fake, {
    refreshToken: () => Promise.resolve(refresh),
    onRefreshRejected: () => {
      rejected++;
      refresh = "refresh-new";
      return Promise.resolve();
    },
  });
  assert.equal((await c.get([SCOPE_A])).token, "at-after");
  assert.equal(rejected, 1);
  assert.deepEqual(
    fake.seen.map((s) => s.form.get("refresh_token")),
    ["refresh-old", "refresh-new"],
  );
});

Deno.test("AccessTokenCache retries a 401 only once", async () => {
  const clock = new Clock();
  const fake = new FakeFetch(() => json(401, {}));
  let rejected = 0;
  const c = cache(clock, fake, {
    onRefreshRejected: () => {
      rejected++;
      return Promise.resolve();
    },
  });
  await assert.rejects(() => c.get([SCOPE_A]), (e: unknown) => {
    assertNoSecret(e, "refresh-token-1");
    assert.equal((e as TokenError).status, 401);
    return true;
  });
  assert.equal(rejected, 1);
  assert.equal(fake.seen.length, 2);
});

Deno.test("AccessTokenCache does not retry a 401 without onRefreshRejected", async () => {
  const clock = new Clock();
  const fake = new FakeFetch(() => json(401, {}));
  const c = cache(clock, fake);
  await assert.rejects(() => c.get([SCOPE_A]), { name: "TokenError" });
  assert.equal(fake.seen.length, 1);
});

Deno.test("AccessTokenCache turns a 429 into TokenError with status 429", async () => {
  const clock = new Clock();
  const fake = new FakeFetch(() =>
    json(429, {
      errors: [{ code: "TOOMANYREQUESTS", message: "refresh-token-1" }],
    })
  );
  let rejected = 0;
  const c = cache(clock, fake, {
    onRefreshRejected: () => Promise.resolve(void rejected++),
  });
  await assert.rejects(() => c.get([SCOPE_A]), (e: unknown) => {
    assertNoSecret(e, "refresh-token-1");
    assert.equal((e as TokenError).status, 429);
    assert.match((e as Error).message, /429 \(TOOMANYREQUESTS\)/);
    return true;
  });
  assert.equal(rejected, 0);
  assert.equal(c.size, 0);
});

const CACHE_FAILURES: {
  name: string;
  answer: () => Answer;
  status?: number;
}[] = [
  { name: "a 500", answer: () => json(500, {}), status: 500 },
  {
    name: "an unreachable realm",
    answer: () => new TypeError("refused refresh-token-1"),
  },
  {
    name: "a body that is not JSON",
    answer: () => new Response("refresh-token-1", { status: 200 }),
  },
  {
    name: "a body without a token",
    answer: () => json(200, { refresh_token: "refresh-token-1" }),
  },
  { name: "an empty token", answer: () => json(200, { access_token: "" }) },
];

for (const c of CACHE_FAILURES) {
  Deno.test(`AccessTokenCache throws TokenError on ${c.name}`, async () => {
    const clock = new Clock();
    const fake = new FakeFetch(c.answer);
    const tokens = cache(clock, fake);
    await assert.rejects(() => tokens.get([SCOPE_A]), (e: unknown) => {
      assertNoSecret(e, "refresh-token-1");
      assert.equal((e as TokenError).status, c.status);
      return true;
    });
    assert.equal(tokens.size, 0);
  });
}

Deno.test("TokenError carries its status", () => {
  const e = new TokenError("x", 503);
  assert.ok(e instanceof Error);
  assert.equal(e.name, "TokenError");
  assert.equal(e.status, 503);
  assert.equal(new TokenError("y").status, undefined);
});
