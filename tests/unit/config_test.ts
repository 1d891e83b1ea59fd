import assert from "node:assert/strict";
import {
  type Config,
  ConfigError,
  FLAGS,
  helpText,
  parseDuration,
  parseInvocation,
  parseListenAddress,
  parseSize,
} from "../../src/config.ts";

type Env = Record<string, string | undefined>;

const UP = ["--upstream-domain", "example.azurecr.io"];
const SECRET = "0123456789abcdef0123456789abcdef";

function run(args: string[], env: Env = {}): Config {
  const inv = parseInvocation(args, env);
  assert.equal(inv.kind, "run");
  if (inv.kind !== "run") throw new Error("unreachable");
  return inv.config;
}

function refused(args: string[], env: Env = {}, match?: RegExp): void {
  assert.throws(
    () => parseInvocation(args, env),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.name, "ConfigError");
      assert.ok(e.message.length > 0 && !e.message.includes("\n"), e.message);
      if (match) assert.match(e.message, match);
      return true;
    },
    JSON.stringify({ args, env }),
  );
}

Deno.test("parseInvocation() fills in the documented defaults", () => {
  const c = run(UP);
  assert.deepEqual({ ...c }, {
    upstream: "https://example.azurecr.io",
    defaultRoute: { registry: "docker.io", prefix: "" },
    routes: [],
    listen: { hostname: "127.0.0.1", port: 8080 },
    masqueradeDomain: "registry.docker.io",
    publicUrl: undefined,
    authMode: "inject",
    entraScope: "https://containerregistry.azure.net/.default",
    logFormat: "text",
    logLevel: "info",
    shutdownGraceMs: 30_000,
    headerTimeoutMs: 30_000,
    idleTimeoutMs: 60_000,
    cacheBytes: 16 * 1024 * 1024,
    cacheTtlMs: 600_000,
    trustForwarded: false,
    tls: undefined,
    tokenSecret: undefined,
  });
  assert.ok(Object.isFrozen(c));
});

Deno.test("parseInvocation() reads every flag in its long form", () => {
  const c = run([
    "--upstream-domain",
    "http://127.0.0.1:5000",
    "--upstream-prefix",
    "hub",
    "--route",
    "ghcr.io=ghcr",
    "--listen-address",
    "[::1]:9000",
    "--masquerade-domain",
    "mirror.example",
    "--public-url",
    "https://mirror.example/",
    "--auth-mode",
    "inject",
    "--entra-scope",
    "https://management.azure.com/.default",
    "--log-format",
    "json",
    "--log-level",
    "debug",
    "--shutdown-grace",
    "5",
    "--header-timeout",
    "500ms",
    "--idle-timeout",
    "2m",
    "--cache-size",
    "512KiB",
    "--cache-ttl",
    "90s",
    "--trust-forwarded",
    "--tls-cert",
    "/c.pem",
    "--tls-key",
    "/k.pem",
  ]);
  assert.deepEqual({ ...c }, {
    upstream: "http://127.0.0.1:5000",
    defaultRoute: { registry: "docker.io", prefix: "hub" },
    routes: [{ registry: "ghcr.io", prefix: "ghcr" }],
    listen: { hostname: "::1", port: 9000 },
    masqueradeDomain: "mirror.example",
    publicUrl: "https://mirror.example",
    authMode: "inject",
    entraScope: "https://management.azure.com/.default",
    logFormat: "json",
    logLevel: "debug",
    shutdownGraceMs: 5_000,
    headerTimeoutMs: 500,
    idleTimeoutMs: 120_000,
    cacheBytes: 512 * 1024,
    cacheTtlMs: 90_000,
    trustForwarded: true,
    tls: { certFile: "/c.pem", keyFile: "/k.pem" },
    tokenSecret: undefined,
  });
});

Deno.test("parseInvocation() takes Go-style single-dash flags", () => {
  const c = run([
    "-upstream-domain",
    "example.azurecr.io",
    "-upstream-prefix",
    "hub",
    "-listen-address",
    ":9000",
    "-trust-forwarded",
  ]);
  assert.equal(c.upstream, "https://example.azurecr.io");
  assert.deepEqual(c.defaultRoute, { registry: "docker.io", prefix: "hub" });
  assert.deepEqual(c.listen, { hostname: "0.0.0.0", port: 9000 });
  assert.equal(c.trustForwarded, true);
});

Deno.test("parseInvocation() takes --flag=value and -flag=value", () => {
  const c = run([
    "--upstream-domain=example.azurecr.io",
    "-upstream-prefix=hub",
    "--log-level=warn",
    "--trust-forwarded=true",
    "--route=ghcr.io=ghcr",
  ]);
  assert.equal(c.upstream, "https://example.azurecr.io");
  assert.equal(c.defaultRoute.prefix, "hub");
  assert.equal(c.logLevel, "warn");
  assert.equal(c.trustForwarded, true);
  assert.deepEqual(c.routes, [{ registry: "ghcr.io", prefix: "ghcr" }]);
});

Deno.test("parseInvocation() reads every setting from the environment", () => {
  const c = run([], {
    ACR_CACHE_PROXY_UPSTREAM_DOMAIN: "example.azurecr.io",
    ACR_CACHE_PROXY_UPSTREAM_PREFIX: "hub",
    ACR_CACHE_PROXY_ROUTES: "ghcr.io=ghcr, quay.io=quay",
    ACR_CACHE_PROXY_LISTEN_ADDRESS: ":8081",
    ACR_CACHE_PROXY_MASQUERADE_DOMAIN: "m.example",
    ACR_CACHE_PROXY_PUBLIC_URL: "http://m.example:8081",
    ACR_CACHE_PROXY_AUTH_MODE: "inject",
    ACR_CACHE_PROXY_ENTRA_SCOPE: "https://management.azure.com/.default",
    ACR_CACHE_PROXY_LOG_FORMAT: "json",
    ACR_CACHE_PROXY_LOG_LEVEL: "error",
    ACR_CACHE_PROXY_SHUTDOWN_GRACE: "1s",
    ACR_CACHE_PROXY_HEADER_TIMEOUT: "2",
    ACR_CACHE_PROXY_IDLE_TIMEOUT: "3s",
    ACR_CACHE_PROXY_CACHE_SIZE: "0",
    ACR_CACHE_PROXY_CACHE_TTL: "1m",
    ACR_CACHE_PROXY_TRUST_FORWARDED: "true",
    ACR_CACHE_PROXY_TLS_CERT: "/c",
    ACR_CACHE_PROXY_TLS_KEY: "/k",
    ACR_CACHE_PROXY_TOKEN_SECRET: SECRET,
  });
  assert.deepEqual({ ...c }, {
    upstream: "https://example.azurecr.io",
    defaultRoute: { registry: "docker.io", prefix: "hub" },
    routes: [
      { registry: "ghcr.io", prefix: "ghcr" },
      { registry: "quay.io", prefix: "quay" },
    ],
    listen: { hostname: "0.0.0.0", port: 8081 },
    masqueradeDomain: "m.example",
    publicUrl: "http://m.example:8081",
    authMode: "inject",
    entraScope: "https://management.azure.com/.default",
    logFormat: "json",
    logLevel: "error",
    shutdownGraceMs: 1_000,
    headerTimeoutMs: 2_000,
    idleTimeoutMs: 3_000,
    cacheBytes: 0,
    cacheTtlMs: 60_000,
    trustForwarded: true,
    tls: { certFile: "/c", keyFile: "/k" },
    tokenSecret: SECRET,
  });
});

Deno.test("parseInvocation() lets flags win over the environment", () => {
  const c = run([
    "--upstream-domain",
    "flag.azurecr.io",
    "--upstream-prefix",
    "flagprefix",
    "--log-level",
    "debug",
    "--route",
    "ghcr.io=fromflag",
  ], {
    ACR_CACHE_PROXY_UPSTREAM_DOMAIN: "env.azurecr.io",
    ACR_CACHE_PROXY_UPSTREAM_PREFIX: "envprefix",
    ACR_CACHE_PROXY_LOG_LEVEL: "error",
    ACR_CACHE_PROXY_ROUTES: "ghcr.io=fromenv,quay.io=quay",
  });
  assert.equal(c.upstream, "https://flag.azurecr.io");
  assert.equal(c.defaultRoute.prefix, "flagprefix");
  assert.equal(c.logLevel, "debug");
  assert.deepEqual(c.routes, [{ registry: "ghcr.io", prefix: "fromflag" }]);
});

Deno.test({
  name: "parseInvocation() lets --trust-forwarded=false win over the env",
  fn(): void {
    const c = run([...UP, "--trust-forwarded=false"], {
      ACR_CACHE_PROXY_TRUST_FORWARDED: "true",
    });
    assert.equal(c.trustForwarded, false);
  },
});

Deno.test("parseInvocation() reads boolean forms of --trust-forwarded", () => {
  const cases: [string[], Env, boolean][] = [
    [[], {}, false],
    [["--trust-forwarded"], {}, true],
    [["--trust-forwarded=1"], {}, true],
    [["--trust-forwarded=false"], {}, false],
    [["--trust-forwarded=0"], {}, false],
    [[], { ACR_CACHE_PROXY_TRUST_FORWARDED: "1" }, true],
    [[], { ACR_CACHE_PROXY_TRUST_FORWARDED: "YES" }, true],
    [[], { ACR_CACHE_PROXY_TRUST_FORWARDED: "false" }, false],
    [[], { ACR_CACHE_PROXY_TRUST_FORWARDED: "" }, false],
  ];
  for (const [args, env, want] of cases) {
    assert.equal(run([...UP, ...args], env).trustForwarded, want, args.join());
  }
});

Deno.test("parseInvocation() treats empty environment values as unset", () => {
  const c = run(UP, {
    ACR_CACHE_PROXY_LISTEN_ADDRESS: "",
    ACR_CACHE_PROXY_LOG_LEVEL: "",
    ACR_CACHE_PROXY_ROUTES: "",
  });
  assert.deepEqual(c.listen, { hostname: "127.0.0.1", port: 8080 });
  assert.equal(c.logLevel, "info");
  assert.deepEqual(c.routes, []);
});

Deno.test("parseInvocation() takes repeated --route flags", () => {
  const c = run([
    ...UP,
    "--route",
    "docker.io=hub",
    "-route",
    "GHCR.io=ghcr",
    "--route=localhost:5000=local/cache",
    "--route",
    "quay.io=",
  ]);
  assert.deepEqual(c.routes, [
    { registry: "docker.io", prefix: "hub" },
    { registry: "ghcr.io", prefix: "ghcr" },
    { registry: "localhost:5000", prefix: "local/cache" },
    { registry: "quay.io", prefix: "" },
  ]);
  assert.deepEqual(c.defaultRoute, { registry: "docker.io", prefix: "hub" });
});

Deno.test("parseInvocation() lets --upstream-prefix beat a docker.io route", () => {
  const c = run([...UP, "--upstream-prefix", "p"], {
    ACR_CACHE_PROXY_ROUTES: "docker.io=hub",
  });
  assert.deepEqual(c.defaultRoute, { registry: "docker.io", prefix: "p" });
  assert.deepEqual(c.routes, [{ registry: "docker.io", prefix: "hub" }]);
});

Deno.test("parseInvocation() turns upstream hosts into origins", () => {
  const cases: [string, string][] = [
    ["example.azurecr.io", "https://example.azurecr.io"],
    ["Example.AzureCR.io", "https://example.azurecr.io"],
    ["https://example.azurecr.io/", "https://example.azurecr.io"],
    ["http://127.0.0.1:5000", "http://127.0.0.1:5000"],
    ["localhost:5000", "https://localhost:5000"],
    ["[::1]:5000", "https://[::1]:5000"],
  ];
  for (const [text, want] of cases) {
    assert.equal(run(["--upstream-domain", text]).upstream, want, text);
  }
});

Deno.test("parseInvocation() returns help and version", () => {
  assert.deepEqual(parseInvocation(["--help"], {}), { kind: "help" });
  assert.deepEqual(parseInvocation(["-help"], {}), { kind: "help" });
  assert.deepEqual(parseInvocation(["--version"], {}), { kind: "version" });
  assert.deepEqual(parseInvocation([...UP, "-version"], {}), {
    kind: "version",
  });
});

const REFUSED: { name: string; args: string[]; env?: Env; match: RegExp }[] = [
  { name: "no upstream", args: [], match: /--upstream-domain/ },
  {
    name: "an empty upstream",
    args: [],
    env: { ACR_CACHE_PROXY_UPSTREAM_DOMAIN: "" },
    match: /--upstream-domain/,
  },
  {
    name: "an ftp upstream",
    args: ["--upstream-domain", "ftp://x.example"],
    match: /--upstream-domain/,
  },
  {
    name: "an upstream with a path",
    args: ["--upstream-domain", "https://x.example/v2/"],
    match: /--upstream-domain/,
  },
  {
    name: "an upstream with credentials",
    args: ["--upstream-domain", "https://u:p@x.example"],
    match: /--upstream-domain/,
  },
  {
    name: "an upstream with a query",
    args: ["--upstream-domain", "x.example?a=1"],
    match: /--upstream-domain/,
  },
  {
    name: "an upstream that is no URL",
    args: ["--upstream-domain", "http://"],
    match: /--upstream-domain/,
  },
  ...[
    "8080",
    "localhost",
    "127.0.0.1",
    ":",
    ":99999",
    "::1:8080",
    "[::1]",
    "[::1]8080",
    "[]:8080",
    "host:port",
    "a b:80",
    "127.0.0.1:-1",
  ].map((
    addr,
  ) => ({
    name: `the listen address ${JSON.stringify(addr)}`,
    args: [...UP, "--listen-address", addr],
    match: /--listen-address/,
  })),
  ...["/hub", "hub/", "Hub", "a//b", "..", "h ub"].map((prefix) => ({
    name: `the prefix ${JSON.stringify(prefix)}`,
    args: [...UP, "--upstream-prefix", prefix],
    match: /--upstream-prefix/,
  })),
  ...["ghcr.io", "=ghcr", "ghcr.io=/x", "ghcr.io=Up", "bad_host=x", "a b=c"]
    .map((route) => ({
      name: `the route ${JSON.stringify(route)}`,
      args: [...UP, "--route", route],
      match: /--route/,
    })),
  {
    name: "a route named twice",
    args: [...UP, "--route", "ghcr.io=a", "--route", "GHCR.IO=b"],
    match: /twice/,
  },
  {
    name: "a bad route in the environment",
    args: UP,
    env: { ACR_CACHE_PROXY_ROUTES: "ghcr.io=ghcr,oops" },
    match: /--route/,
  },
  ...["", "1d", "-1", "abc", "1.", "s", "10 s", "1h30m"].map((d) => ({
    name: `the duration ${JSON.stringify(d)}`,
    args: [...UP, "--shutdown-grace", d],
    match: /--shutdown-grace/,
  })),
  {
    name: "a bad header timeout",
    args: [...UP, "--header-timeout", "soon"],
    match: /--header-timeout/,
  },
  {
    name: "a bad idle timeout from the environment",
    args: UP,
    env: { ACR_CACHE_PROXY_IDLE_TIMEOUT: "forever" },
    match: /^ACR_CACHE_PROXY_IDLE_TIMEOUT "forever" is not a duration/,
  },
  { name: "an unknown flag", args: [...UP, "--nope"], match: /--nope/ },
  { name: "a stray argument", args: [...UP, "extra"], match: /extra/ },
  { name: "a triple-dash flag", args: ["---upstream-domain", "x"], match: /-/ },
  {
    name: "an upper-case flag",
    args: ["--UPSTREAM-DOMAIN", "x"],
    match: /UPSTREAM/,
  },
  {
    name: "the environment-only token secret as a flag",
    args: [...UP, "--token-secret", SECRET],
    match: /token-secret/,
  },
  {
    name: "a flag missing its value at the end",
    args: ["--upstream-domain"],
    match: /--upstream-domain needs a value/,
  },
  {
    name: "a flag followed by another flag",
    args: ["--upstream-prefix", "--upstream-domain", "x"],
    match: /--upstream-prefix needs a value/,
  },
  {
    name: "a boolean flag with a value",
    args: [...UP, "--trust-forwarded=maybe"],
    match: /--trust-forwarded/,
  },
  {
    name: "a certificate without a key",
    args: [...UP, "--tls-cert", "/c"],
    match: /--tls-cert and --tls-key/,
  },
  {
    name: "a key without a certificate",
    args: UP,
    env: { ACR_CACHE_PROXY_TLS_KEY: "/k" },
    match: /--tls-cert and --tls-key/,
  },
  {
    name: "a short token secret",
    args: UP,
    env: { ACR_CACHE_PROXY_TOKEN_SECRET: SECRET.slice(1) },
    match: /ACR_CACHE_PROXY_TOKEN_SECRET/,
  },
  {
    name: "an unknown auth mode",
    args: [...UP, "--auth-mode", "basic"],
    match: /--auth-mode/,
  },
  {
    name: "an unknown log format",
    args: [...UP, "--log-format", "xml"],
    match: /--log-format/,
  },
  {
    name: "an unknown log level",
    args: [...UP, "--log-level", "trace"],
    match: /--log-level/,
  },
  {
    name: "a masquerade domain with a slash",
    args: [...UP, "--masquerade-domain", "a/b"],
    match: /--masquerade-domain/,
  },
  {
    name: "an entra scope with a space",
    args: [...UP, "--entra-scope", "a b"],
    match: /--entra-scope/,
  },
  ...[
    "mirror.example",
    "ftp://m.example",
    "https://m.example/?a=1",
    "https://m.example/#x",
  ].map((url) => ({
    name: `the public URL ${JSON.stringify(url)}`,
    args: [...UP, "--public-url", url],
    match: /--public-url/,
  })),
];

for (const c of REFUSED) {
  Deno.test(`parseInvocation() refuses ${c.name}`, () => {
    refused(c.args, c.env ?? {}, c.match);
  });
}

Deno.test("parseInvocation() accepts a 32-character token secret", () => {
  assert.equal(
    run(UP, { ACR_CACHE_PROXY_TOKEN_SECRET: SECRET }).tokenSecret,
    SECRET,
  );
});

const LISTEN: [string, { hostname: string; port: number }][] = [
  [":8080", { hostname: "0.0.0.0", port: 8080 }],
  ["127.0.0.1:8080", { hostname: "127.0.0.1", port: 8080 }],
  ["[::1]:8080", { hostname: "::1", port: 8080 }],
  ["[::]:443", { hostname: "::", port: 443 }],
  ["localhost:1", { hostname: "localhost", port: 1 }],
  ["0.0.0.0:65535", { hostname: "0.0.0.0", port: 65535 }],
];

Deno.test("parseListenAddress() reads Go listen forms", () => {
  for (const [text, want] of LISTEN) {
    assert.deepEqual(parseListenAddress(text), want, text);
  }
});

Deno.test("parseListenAddress() throws ConfigError on other forms", () => {
  for (const text of ["8080", ":65536", "[::1]", "1.2.3.4", "", "a:b"]) {
    assert.throws(() => parseListenAddress(text), ConfigError, text);
  }
});

const DURATIONS: [string, number][] = [
  ["0", 0],
  ["30", 30_000],
  ["1.5", 1_500],
  ["500ms", 500],
  ["30s", 30_000],
  ["2m", 120_000],
  [" 3s ", 3_000],
];

Deno.test("parseDuration() reads seconds and ms/s/m units", () => {
  for (const [text, want] of DURATIONS) {
    assert.equal(parseDuration(text, "x"), want, text);
  }
  assert.equal(parseDuration("1h", "x"), 3_600_000);
  assert.equal(parseDuration("1.5h", "x"), 5_400_000);
  assert.throws(() => parseDuration("1d", "idle-timeout"), {
    name: "ConfigError",
    message: /--idle-timeout "1d" is not a duration: .*1h/,
  });
});

Deno.test("helpText() lists every flag and environment variable", () => {
  const text = helpText("9.9.9");
  assert.match(text, /9\.9\.9/);
  assert.ok(FLAGS.length >= 19);
  for (const f of FLAGS) {
    if (!f.flagless) assert.ok(text.includes(`--${f.name}`), f.name);
    if (f.env) assert.ok(text.includes(f.env), f.env);
  }
  for (const line of text.trimEnd().split("\n")) {
    assert.ok(!/\s$/.test(line), JSON.stringify(line));
  }
});

// The flags the interface contract lists for the command line.
const CONTRACT_FLAGS = [
  "upstream-domain",
  "upstream-prefix",
  "route",
  "listen-address",
  "masquerade-domain",
  "public-url",
  "auth-mode",
  "entra-scope",
  "log-format",
  "log-level",
  "shutdown-grace",
  "header-timeout",
  "idle-timeout",
  "cache-size",
  "cache-ttl",
  "trust-forwarded",
  "tls-cert",
  "tls-key",
  "help",
  "version",
];

Deno.test("helpText() lists the contract's flags", () => {
  const text = helpText("1.0.0");
  for (const name of CONTRACT_FLAGS) {
    assert.ok(text.includes(`--${name}`), name);
  }
});

Deno.test("parseInvocation() names the variable when a bad value came from it", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [
      { ACR_CACHE_PROXY_AUTH_MODE: "open" },
      /^ACR_CACHE_PROXY_AUTH_MODE "open"/,
    ],
    [
      { ACR_CACHE_PROXY_ROUTES: "ghcr.io" },
      /^ACR_CACHE_PROXY_ROUTES "ghcr.io"/,
    ],
    [
      { ACR_CACHE_PROXY_TRUST_FORWARDED: "maybe" },
      /^ACR_CACHE_PROXY_TRUST_FORWARDED takes true or false/,
    ],
    [
      { ACR_CACHE_PROXY_IDLE_TIMEOUT: "0.1ms" },
      /^ACR_CACHE_PROXY_IDLE_TIMEOUT must be longer than zero, such as 30s, or 0 to turn it off/,
    ],
    [
      { ACR_CACHE_PROXY_HEADER_TIMEOUT: "0" },
      /^ACR_CACHE_PROXY_HEADER_TIMEOUT must be longer than zero/,
    ],
    [
      { ACR_CACHE_PROXY_CACHE_SIZE: "16MB" },
      /^ACR_CACHE_PROXY_CACHE_SIZE "16MB" is not a size/,
    ],
    [
      { ACR_CACHE_PROXY_CACHE_TTL: "0" },
      /^ACR_CACHE_PROXY_CACHE_TTL must be longer than zero/,
    ],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => parseInvocation(UP, env), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, message);
      return true;
    });
  }
  assert.throws(
    () => parseInvocation([...UP, "--auth-mode", "open"], {}),
    /ConfigError: --auth-mode "open"/,
  );
});

Deno.test("parseInvocation() takes an idle timeout of exactly zero as no limit", () => {
  for (const off of ["0", "0s", "0ms", "0.0m", "00"]) {
    assert.equal(run([...UP, "--idle-timeout", off]).idleTimeoutMs, 0, off);
  }
  assert.equal(
    run(UP, { ACR_CACHE_PROXY_IDLE_TIMEOUT: "0" }).idleTimeoutMs,
    0,
  );
  assert.equal(run([...UP, "--idle-timeout", "1ms"]).idleTimeoutMs, 1);
  for (const bad of ["0.1ms", "0.4ms"]) {
    assert.throws(() => run([...UP, "--idle-timeout", bad]), {
      name: "ConfigError",
      message: /^--idle-timeout must be longer than zero/,
    }, bad);
  }
});

Deno.test("parseSize() takes bytes and binary units up to 4GiB", () => {
  assert.equal(parseSize("0", "cache-size"), 0);
  assert.equal(parseSize("1048576", "cache-size"), 1024 * 1024);
  assert.equal(parseSize("512KiB", "cache-size"), 512 * 1024);
  assert.equal(parseSize(" 4GiB ", "cache-size"), 4 * 1024 ** 3);
  for (const bad of ["", "-1", "1.5MiB", "16MB", "16mib", "5GiB", "1e6"]) {
    assert.throws(() => parseSize(bad, "cache-size"), {
      name: "ConfigError",
      message: new RegExp(`^--cache-size ${JSON.stringify(bad)} is not a size`),
    }, bad);
  }
});
