import assert from "node:assert/strict";
import { parseChallenges } from "../../src/challenge.ts";
import {
  clientResponseHeaders,
  rewriteChallenge,
  type RewriteContext,
  rewriteErrorBody,
  rewriteLink,
  rewriteLocation,
  upstreamRequestHeaders,
} from "../../src/rewrite.ts";

const UPSTREAM = "https://r.azurecr.io";
const PUBLIC = "http://127.0.0.1:8080";
const SHA = "sha256:" + "ab".repeat(32);

function ctx(overrides: Partial<RewriteContext> = {}): RewriteContext {
  return {
    upstreamOrigin: UPSTREAM,
    route: { registry: "docker.io", prefix: "hub" },
    publicBase: PUBLIC,
    ns: undefined,
    service: "registry.docker.io",
    realm: `${PUBLIC}/token`,
    ...overrides,
  };
}

const GHCR_CTX = ctx({
  route: { registry: "ghcr.io", prefix: "ghcr" },
  ns: "ghcr.io",
  realm: `${PUBLIC}/token/ghcr.io`,
});

Deno.test("upstreamRequestHeaders() passes only the allowlist", () => {
  const sent = new Headers([
    ["accept", "application/vnd.oci.image.index.v1+json"],
    ["accept", "application/vnd.docker.distribution.manifest.v2+json"],
    ["range", "bytes=0-99"],
    ["if-none-match", '"sha256:x"'],
    ["if-match", '"a"'],
    ["if-modified-since", "Wed, 21 Oct 2015 07:28:00 GMT"],
    ["if-range", '"etag"'],
    ["user-agent", "containerd/2.0"],
    ["authorization", "Bearer client-token"],
    ["proxy-authorization", "Basic eA=="],
    ["cookie", "session=1"],
    ["host", "127.0.0.1:8080"],
    ["x-forwarded-for", "10.0.0.1"],
    ["x-forwarded-host", "evil.example"],
    ["x-forwarded-proto", "https"],
    ["forwarded", "for=10.0.0.1"],
    ["x-real-ip", "10.0.0.1"],
    ["accept-encoding", "gzip, zstd"],
    ["connection", "keep-alive"],
    ["te", "trailers"],
    ["x-custom", "1"],
  ]);
  const out = upstreamRequestHeaders(sent);
  assert.deepEqual(out, {
    accept:
      "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json",
    "accept-encoding": "identity",
    "if-match": '"a"',
    "if-modified-since": "Wed, 21 Oct 2015 07:28:00 GMT",
    "if-none-match": '"sha256:x"',
    "if-range": '"etag"',
    range: "bytes=0-99",
    "user-agent": "containerd/2.0",
  });
});

Deno.test("upstreamRequestHeaders() forces an identity encoding", () => {
  const out = upstreamRequestHeaders(new Headers());
  assert.deepEqual(out, { "accept-encoding": "identity" });
});

Deno.test("clientResponseHeaders() drops hop-by-hop and listed headers", () => {
  const upstream = new Headers([
    ["connection", "close, X-Secret-Hop"],
    ["keep-alive", "timeout=5"],
    ["proxy-authenticate", "Basic"],
    ["proxy-connection", "keep-alive"],
    ["te", "trailers"],
    ["trailer", "x"],
    ["transfer-encoding", "chunked"],
    ["upgrade", "h2c"],
    ["set-cookie", "a=1"],
    ["strict-transport-security", "max-age=1"],
    ["alt-svc", 'h3=":443"'],
    ["x-secret-hop", "1"],
    ["content-type", "application/vnd.oci.image.manifest.v1+json"],
    ["content-length", "123"],
    ["docker-content-digest", SHA],
    ["etag", `"${SHA}"`],
    ["accept-ranges", "bytes"],
  ]);
  const out = clientResponseHeaders(upstream, ctx());
  assert.deepEqual(Object.fromEntries(out), {
    "accept-ranges": "bytes",
    "content-length": "123",
    "content-type": "application/vnd.oci.image.manifest.v1+json",
    "docker-content-digest": SHA,
    etag: `"${SHA}"`,
  });
});

Deno.test("clientResponseHeaders() rewrites challenge, Location and Link", () => {
  const upstream = new Headers({
    "www-authenticate":
      `Bearer realm="${UPSTREAM}/oauth2/token",service="r.azurecr.io",scope="repository:hub/library/a:pull"`,
    location: `/v2/hub/library/a/blobs/${SHA}`,
    link: '</v2/hub/library/a/tags/list?last=b&n=1>; rel="next"',
  });
  const out = clientResponseHeaders(upstream, ctx());
  assert.equal(
    out.get("www-authenticate"),
    `Bearer realm="${PUBLIC}/token",service="registry.docker.io",scope="repository:library/a:pull"`,
  );
  assert.equal(out.get("location"), `${PUBLIC}/v2/library/a/blobs/${SHA}`);
  assert.equal(
    out.get("link"),
    '</v2/library/a/tags/list?last=b&n=1>; rel="next"',
  );
});

Deno.test("clientResponseHeaders() never shows the upstream host", () => {
  const upstream = new Headers({
    "www-authenticate":
      `Basic realm="${UPSTREAM}", Bearer realm="${UPSTREAM}/oauth2/token",service="r.azurecr.io"`,
    location: `${UPSTREAM}/v2/hub/library/a/manifests/latest`,
  });
  for (const [, value] of clientResponseHeaders(upstream, ctx())) {
    assert.ok(!value.includes("azurecr"), value);
  }
});

const CHALLENGES: {
  name: string;
  in: string;
  ctx?: RewriteContext;
  want: Record<string, string>;
}[] = [
  {
    name: "realm and service replaced, scope mapped back",
    in:
      `Bearer realm="${UPSTREAM}/oauth2/token",service="r.azurecr.io",scope="repository:hub/library/nginx:pull"`,
    want: {
      realm: `${PUBLIC}/token`,
      service: "registry.docker.io",
      scope: "repository:library/nginx:pull",
    },
  },
  {
    name: "push dropped from a mapped scope",
    in: `Bearer realm="x",service="y",scope="repository:hub/a/b:pull,push"`,
    want: {
      realm: `${PUBLIC}/token`,
      service: "registry.docker.io",
      scope: "repository:a/b:pull",
    },
  },
  {
    name: "several scopes mapped, one outside the prefix dropped",
    in:
      `Bearer realm="x",service="y",scope="repository:hub/a:pull repository:other/b:pull repository:hub/c:pull"`,
    want: {
      realm: `${PUBLIC}/token`,
      service: "registry.docker.io",
      scope: "repository:a:pull repository:c:pull",
    },
  },
  {
    name: "a scope outside the prefix dropped",
    in: `Bearer realm="x",service="y",scope="repository:other/a:pull"`,
    want: { realm: `${PUBLIC}/token`, service: "registry.docker.io" },
  },
  {
    name: "registry:catalog dropped",
    in: `Bearer realm="x",service="y",scope="registry:catalog:*"`,
    want: { realm: `${PUBLIC}/token`, service: "registry.docker.io" },
  },
  {
    name: "the error kept",
    in:
      `Bearer realm="x",service="y",scope="repository:hub/a:pull",error="insufficient_scope"`,
    want: {
      realm: `${PUBLIC}/token`,
      service: "registry.docker.io",
      scope: "repository:a:pull",
      error: "insufficient_scope",
    },
  },
  {
    name: "an odd error value dropped",
    in: `Bearer realm="x",service="y",error="x\\" evil=\\"1"`,
    want: { realm: `${PUBLIC}/token`, service: "registry.docker.io" },
  },
  {
    name: "a Basic-only challenge turned into a Bearer one",
    in: `Basic realm="Azure Container Registry"`,
    want: { realm: `${PUBLIC}/token`, service: "registry.docker.io" },
  },
  {
    name: "the Bearer one picked from several",
    in:
      `Basic realm="b", bearer realm="x",service="y",scope="repository:hub/z:pull"`,
    want: {
      realm: `${PUBLIC}/token`,
      service: "registry.docker.io",
      scope: "repository:z:pull",
    },
  },
  {
    name: "a ghcr route's realm and scope",
    in: `Bearer realm="x",service="y",scope="repository:ghcr/o/app:pull"`,
    ctx: GHCR_CTX,
    want: {
      realm: `${PUBLIC}/token/ghcr.io`,
      service: "registry.docker.io",
      scope: "repository:o/app:pull",
    },
  },
  {
    name: "an empty header",
    in: "",
    want: { realm: `${PUBLIC}/token`, service: "registry.docker.io" },
  },
];

for (const c of CHALLENGES) {
  Deno.test(`rewriteChallenge(): ${c.name}`, () => {
    const out = rewriteChallenge(c.in, c.ctx ?? ctx());
    assert.deepEqual(parseChallenges(out), [{
      scheme: "Bearer",
      params: c.want,
    }]);
  });
}

const LOCATIONS: {
  name: string;
  in: string;
  ctx?: RewriteContext;
  want: string;
}[] = [
  {
    name: "a relative same-origin blob URL",
    in: `/v2/hub/library/a/blobs/${SHA}`,
    want: `${PUBLIC}/v2/library/a/blobs/${SHA}`,
  },
  {
    name: "an absolute same-origin manifest URL",
    in: `${UPSTREAM}/v2/hub/library/a/manifests/latest`,
    want: `${PUBLIC}/v2/library/a/manifests/latest`,
  },
  {
    name: "an absolute same-origin URL with the default port",
    in: `https://r.azurecr.io:443/v2/hub/a/blobs/${SHA}`,
    want: `${PUBLIC}/v2/a/blobs/${SHA}`,
  },
  {
    name: "a same-origin URL with ns kept",
    in: `/v2/ghcr/o/app/blobs/${SHA}`,
    ctx: GHCR_CTX,
    want: `${PUBLIC}/v2/o/app/blobs/${SHA}?ns=ghcr.io`,
  },
  {
    name: "a same-origin URL whose query is kept next to ns",
    in: `/v2/ghcr/o/app/tags/list?n=1`,
    ctx: GHCR_CTX,
    want: `${PUBLIC}/v2/o/app/tags/list?n=1&ns=ghcr.io`,
  },
  {
    name: "a blob storage URL with a SAS query",
    in:
      "https://acct.blob.core.windows.net/data/x?sv=2021&se=2024-01-01T00%3A00%3A00Z&sig=AbC%2B%2F%3D",
    want:
      "https://acct.blob.core.windows.net/data/x?sv=2021&se=2024-01-01T00%3A00%3A00Z&sig=AbC%2B%2F%3D",
  },
  {
    name: "a data endpoint URL",
    in: `https://r.westeurope.data.azurecr.io/v2/hub/a/blobs/${SHA}?sig=1`,
    want: `https://r.westeurope.data.azurecr.io/v2/hub/a/blobs/${SHA}?sig=1`,
  },
  {
    name: "the same host over another scheme",
    in: `http://r.azurecr.io/v2/hub/a/blobs/${SHA}`,
    want: `http://r.azurecr.io/v2/hub/a/blobs/${SHA}`,
  },
  {
    name: "the same host on another port",
    in: `https://r.azurecr.io:8443/v2/hub/a/blobs/${SHA}`,
    want: `https://r.azurecr.io:8443/v2/hub/a/blobs/${SHA}`,
  },
];

for (const c of LOCATIONS) {
  Deno.test(`rewriteLocation(): ${c.name}`, () => {
    assert.equal(rewriteLocation(c.in, c.ctx ?? ctx()), c.want);
  });
}

Deno.test("rewriteLocation() withholds upstream URLs it cannot map", () => {
  for (const value of ["http://[bad", "/v2/other/a/blobs/x", "/elsewhere"]) {
    assert.equal(rewriteLocation(value, ctx()), undefined);
  }
});

const LINKS: {
  name: string;
  in: string;
  ctx?: RewriteContext;
  want: string;
}[] = [
  {
    name: "a relative link stays relative",
    in: '</v2/hub/library/a/tags/list?last=b&n=1>; rel="next"',
    want: '</v2/library/a/tags/list?last=b&n=1>; rel="next"',
  },
  {
    name: "an absolute upstream link becomes public",
    in: `<${UPSTREAM}/v2/hub/library/a/tags/list?n=2&last=c>; rel="next"`,
    want: `<${PUBLIC}/v2/library/a/tags/list?n=2&last=c>; rel="next"`,
  },
  {
    name: "a referrers link with ns",
    in: `</v2/ghcr/o/app/referrers/${SHA}?n=1>; rel="next"`,
    ctx: GHCR_CTX,
    want: `</v2/o/app/referrers/${SHA}?n=1&ns=ghcr.io>; rel="next"`,
  },
  {
    name: "a link to another host untouched",
    in: '<https://example.com/v2/hub/a/tags/list>; rel="next"',
    want: '<https://example.com/v2/hub/a/tags/list>; rel="next"',
  },
  {
    name: "several links each mapped",
    in:
      '</v2/hub/a/tags/list?last=x>; rel="next", <https://docs.example/x>; rel="help"',
    want:
      '</v2/a/tags/list?last=x>; rel="next", <https://docs.example/x>; rel="help"',
  },
  {
    name: "a link outside the prefix is dropped",
    in: '</v2/other/a/tags/list?last=x>; rel="next"',
    want: "",
  },
];

for (const c of LINKS) {
  Deno.test(`rewriteLink(): ${c.name}`, () => {
    assert.equal(rewriteLink(c.in, c.ctx ?? ctx()), c.want);
  });
}

const BODIES: [string, string, string][] = [
  ["hub", '{"Name":"hub/library/a"}', '{"Name":"library/a"}'],
  [
    "hub",
    '{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"hub/library/a"}}]}',
    '{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"library/a"}}]}',
  ],
  [
    "hub",
    "access to repository:hub/library/a:pull denied",
    "access to repository:library/a:pull denied",
  ],
  ["hub", "hub/hub/x", "hub/x"],
  ["hub", "myhub/x github/x", "myhub/x github/x"],
  ["hub", "a/hub/b", "a/hub/b"],
  ["hub", "hub/ alone", "hub/ alone"],
  ["my.hub", '"my.hub/a" "myxhub/a"', '"a" "myxhub/a"'],
  ["", '{"Name":"hub/library/a"}', '{"Name":"hub/library/a"}'],
];

Deno.test("rewriteErrorBody() removes the prefix before names", () => {
  for (const [prefix, body, want] of BODIES) {
    assert.equal(
      rewriteErrorBody(body, { registry: "docker.io", prefix }),
      want,
      `${prefix}: ${body}`,
    );
  }
});
