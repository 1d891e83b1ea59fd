import assert from "node:assert/strict";
import {
  discoverUpstream,
  DiscoveryError,
  type UpstreamAccess,
} from "../../src/discover.ts";

const ORIGIN = "https://r.azurecr.io";

interface Seen {
  url: string;
  method: string;
  redirect: RequestRedirect | undefined;
  authorization: string | null;
}

function fakeFetch(
  answer: () => Response | Promise<Response>,
  seen: Seen[] = [],
): typeof fetch {
  return (input, init): Promise<Response> => {
    const req = new Request(input, init);
    seen.push({
      url: req.url,
      method: req.method,
      redirect: init?.redirect,
      authorization: req.headers.get("authorization"),
    });
    return Promise.resolve(answer());
  };
}

function challenge(value: string | undefined, status = 401): () => Response {
  return () =>
    new Response(status === 401 ? '{"errors":[]}' : null, {
      status,
      headers: value === undefined ? {} : { "www-authenticate": value },
    });
}

Deno.test("discoverUpstream() sends one HEAD /v2/ without credentials", async () => {
  const seen: Seen[] = [];
  await discoverUpstream(
    ORIGIN,
    fakeFetch(() => new Response(null, { status: 200 }), seen),
  );
  assert.deepEqual(seen, [{
    url: `${ORIGIN}/v2/`,
    method: "HEAD",
    redirect: "manual",
    authorization: null,
  }]);
});

Deno.test("discoverUpstream() treats 200 as anonymous access", async () => {
  for (const origin of [ORIGIN, "http://127.0.0.1:5000"]) {
    const access = await discoverUpstream(
      origin,
      fakeFetch(() => new Response("{}", { status: 200 })),
    );
    assert.deepEqual(access, { kind: "anonymous" });
  }
});

const TOKEN_CASES: {
  name: string;
  origin?: string;
  header: string;
  want: UpstreamAccess;
}[] = [
  {
    name: "an ACR challenge",
    header:
      'Bearer realm="https://r.azurecr.io/oauth2/token",service="r.azurecr.io"',
    want: {
      kind: "token",
      realm: "https://r.azurecr.io/oauth2/token",
      service: "r.azurecr.io",
    },
  },
  {
    name: "a Bearer challenge after a Basic one",
    header:
      'Basic realm="x", bearer realm="https://r.azurecr.io/oauth2/token",service="r.azurecr.io"',
    want: {
      kind: "token",
      realm: "https://r.azurecr.io/oauth2/token",
      service: "r.azurecr.io",
    },
  },
  {
    name: "a realm on a loopback registry over http",
    origin: "http://127.0.0.1:5000",
    header: 'Bearer realm="http://127.0.0.1:5000/token",service="local"',
    want: {
      kind: "token",
      realm: "http://127.0.0.1:5000/token",
      service: "local",
    },
  },
  {
    name: "an http upstream whose realm is https on the same host and port",
    origin: "http://localhost:5000",
    header: 'Bearer realm="https://localhost:5000/token",service="s"',
    want: {
      kind: "token",
      realm: "https://localhost:5000/token",
      service: "s",
    },
  },
];

for (const c of TOKEN_CASES) {
  Deno.test(`discoverUpstream() reads ${c.name}`, async () => {
    const access = await discoverUpstream(
      c.origin ?? ORIGIN,
      fakeFetch(challenge(c.header)),
    );
    assert.deepEqual(access, c.want);
  });
}

const REFUSED: {
  name: string;
  origin?: string;
  answer: () => Response;
  match: RegExp;
}[] = [
  {
    name: "a realm on another host",
    answer: challenge(
      'Bearer realm="https://login.evil.example/token",service="r.azurecr.io"',
    ),
    match: /refusing to send credentials/,
  },
  {
    name: "a realm on a look-alike host",
    answer: challenge(
      'Bearer realm="https://r.azurecr.io.evil.example/token",service="s"',
    ),
    match: /refusing/,
  },
  {
    name: "a realm hiding another host behind userinfo",
    answer: challenge(
      'Bearer realm="https://r.azurecr.io@evil.example/token",service="s"',
    ),
    match: /refusing/,
  },
  {
    name: "an https to http downgrade",
    answer: challenge(
      'Bearer realm="http://r.azurecr.io/oauth2/token",service="r.azurecr.io"',
    ),
    match: /refusing/,
  },
  {
    name: "a Basic-only challenge",
    answer: challenge('Basic realm="Azure Container Registry"'),
    match: /Bearer/,
  },
  {
    name: "a 401 without a challenge",
    answer: challenge(undefined),
    match: /Bearer/,
  },
  {
    name: "a Bearer challenge without a service",
    answer: challenge('Bearer realm="https://r.azurecr.io/oauth2/token"'),
    match: /service/,
  },
  {
    name: "a Bearer challenge without a realm",
    answer: challenge('Bearer service="r.azurecr.io"'),
    match: /realm/,
  },
  {
    name: "a relative realm",
    answer: challenge('Bearer realm="/oauth2/token",service="r.azurecr.io"'),
    match: /realm/,
  },
  ...[301, 302, 307, 403, 404, 500, 503].map((status) => ({
    name: `a ${status} answer`,
    answer: () => new Response(null, { status }),
    match: new RegExp(`${status}.*--upstream-domain`),
  })),
];

for (const c of REFUSED) {
  Deno.test(`discoverUpstream() refuses ${c.name}`, async () => {
    await assert.rejects(
      () => discoverUpstream(c.origin ?? ORIGIN, fakeFetch(c.answer)),
      (e: unknown) => {
        assert.ok(e instanceof DiscoveryError, String(e));
        assert.equal(e.name, "DiscoveryError");
        assert.match(e.message, c.match);
        return true;
      },
    );
  });
}

Deno.test("discoverUpstream() names --upstream-domain when unreachable", async () => {
  const failures = [
    new TypeError("error sending request: connection refused\nstack"),
    new DOMException("timed out", "TimeoutError"),
    "a string",
  ];
  for (const failure of failures) {
    const fetchFn: typeof fetch = () => Promise.reject(failure);
    await assert.rejects(
      () => discoverUpstream(ORIGIN, fetchFn),
      (e: unknown) => {
        assert.ok(e instanceof DiscoveryError, String(e));
        assert.match(e.message, /--upstream-domain/);
        assert.ok(e.message.includes(`${ORIGIN}/v2/`), e.message);
        assert.ok(!e.message.includes("\n"), e.message);
        return true;
      },
    );
  }
});

Deno.test({
  name: "discoverUpstream() refuses a realm on another port",
  async fn(): Promise<void> {
    const header =
      'Bearer realm="https://r.azurecr.io:8443/oauth2/token",service="r.azurecr.io"';
    await assert.rejects(
      () => discoverUpstream(ORIGIN, fakeFetch(challenge(header))),
      DiscoveryError,
    );
  },
});
