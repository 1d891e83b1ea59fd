import assert from "node:assert/strict";
import {
  type Challenge,
  formatChallenge,
  parseChallenges,
} from "../../src/challenge.ts";

const ACR_REALM = "https://r.azurecr.io/oauth2/token";

const PARSE_CASES: { name: string; header: string; want: Challenge[] }[] = [
  {
    name: "an ACR challenge",
    header: `Bearer realm="${ACR_REALM}",service="r.azurecr.io"`,
    want: [{
      scheme: "Bearer",
      params: { realm: ACR_REALM, service: "r.azurecr.io" },
    }],
  },
  {
    name: "a quoted string holding commas and an escaped quote",
    header: 'Bearer realm="a,b\\"c,d",service="s"',
    want: [{ scheme: "Bearer", params: { realm: 'a,b"c,d', service: "s" } }],
  },
  {
    name: "an escaped backslash before the closing quote",
    header: 'Bearer realm="x\\\\",service="s"',
    want: [{ scheme: "Bearer", params: { realm: "x\\", service: "s" } }],
  },
  {
    name: "parameter names in any case",
    header: 'Bearer REALM="x",SeRvIcE="y",Scope="repository:a:pull"',
    want: [{
      scheme: "Bearer",
      params: { realm: "x", service: "y", scope: "repository:a:pull" },
    }],
  },
  {
    name: "several challenges in one header",
    header: 'Basic realm="x", Bearer realm="y",service="z"',
    want: [
      { scheme: "Basic", params: { realm: "x" } },
      { scheme: "Bearer", params: { realm: "y", service: "z" } },
    ],
  },
  {
    name: "a Bearer challenge before a Basic one",
    header: 'Bearer realm="y", service="z", Basic realm="x"',
    want: [
      { scheme: "Bearer", params: { realm: "y", service: "z" } },
      { scheme: "Basic", params: { realm: "x" } },
    ],
  },
  {
    name: "a token68 challenge",
    header: "Basic abc==",
    want: [{ scheme: "Basic", params: {}, token68: "abc==" }],
  },
  {
    name: "a token68 challenge followed by another challenge",
    header: 'Basic abc==, Bearer realm="y"',
    want: [
      { scheme: "Basic", params: {}, token68: "abc==" },
      { scheme: "Bearer", params: { realm: "y" } },
    ],
  },
  {
    name: "a bare scheme followed by another challenge",
    header: 'Negotiate, Bearer realm="y"',
    want: [
      { scheme: "Negotiate", params: {} },
      { scheme: "Bearer", params: { realm: "y" } },
    ],
  },
  {
    name: "unquoted token values and spaces around '='",
    header: "Bearer realm = x , service=y",
    want: [{ scheme: "Bearer", params: { realm: "x", service: "y" } }],
  },
  {
    name: "an empty quoted value",
    header: 'Bearer realm="",service="s"',
    want: [{ scheme: "Bearer", params: { realm: "", service: "s" } }],
  },
  {
    name: "an unterminated quoted string",
    header: 'Bearer realm="abc',
    want: [{ scheme: "Bearer", params: { realm: "abc" } }],
  },
  {
    name: "a malformed tail of stray characters",
    header: 'Bearer realm="x", ===',
    want: [{ scheme: "Bearer", params: { realm: "x" } }],
  },
  {
    name: "trailing commas",
    header: 'Bearer realm="x",,,',
    want: [{ scheme: "Bearer", params: { realm: "x" } }],
  },
  { name: "an empty header", header: "", want: [] },
  { name: "only separators", header: " , ,", want: [] },
];

for (const c of PARSE_CASES) {
  Deno.test(`parseChallenges() reads ${c.name}`, () => {
    assert.deepEqual(parseChallenges(c.header), c.want);
  });
}

Deno.test("parseChallenges() keeps the first challenges of a garbage tail", () => {
  const out = parseChallenges(`Bearer realm="${ACR_REALM}" ;;; "x" \\`);
  assert.ok(out.length >= 1);
  assert.deepEqual(out[0], { scheme: "Bearer", params: { realm: ACR_REALM } });
});

Deno.test("parseChallenges() never throws on odd input", () => {
  const inputs = [
    '"',
    "=",
    "Bearer =",
    "Bearer ,=,",
    'Bearer realm="\\',
    "\u0000\u00ff",
    "Bearer realm=" + '"'.repeat(1000),
    "a ".repeat(2000),
  ];
  for (const input of inputs) {
    assert.ok(Array.isArray(parseChallenges(input)), input);
  }
});

const FORMAT_CASES: { name: string; challenge: Challenge; want: string }[] = [
  {
    name: "a scheme alone",
    challenge: { scheme: "Bearer", params: {} },
    want: "Bearer",
  },
  {
    name: "quoted parameters",
    challenge: { scheme: "Bearer", params: { realm: "x", service: "y" } },
    want: 'Bearer realm="x",service="y"',
  },
  {
    name: "escaped quotes and backslashes",
    challenge: { scheme: "Bearer", params: { realm: 'a"b\\c' } },
    want: 'Bearer realm="a\\"b\\\\c"',
  },
  {
    name: "a token68",
    challenge: { scheme: "Basic", params: {}, token68: "abc==" },
    want: "Basic abc==",
  },
];

for (const c of FORMAT_CASES) {
  Deno.test(`formatChallenge() writes ${c.name}`, () => {
    assert.equal(formatChallenge(c.challenge), c.want);
  });
}

Deno.test("formatChallenge() output parses back to the same challenge", () => {
  const challenges: Challenge[] = [
    { scheme: "Bearer", params: { realm: ACR_REALM, service: "r.azurecr.io" } },
    {
      scheme: "Bearer",
      params: {
        realm: 'with "quotes", commas, and \\ backslashes',
        scope: "repository:a/b:pull repository:c:pull",
        error: "insufficient_scope",
      },
    },
    { scheme: "Basic", params: {}, token68: "dXNlcjpwYXNz" },
    { scheme: "Negotiate", params: {} },
  ];
  for (const c of challenges) {
    assert.deepEqual(parseChallenges(formatChallenge(c)), [c]);
  }
  const joined = challenges.map(formatChallenge).join(", ");
  assert.deepEqual(parseChallenges(joined), challenges);
});
