import assert from "node:assert/strict";
import { readJwtClaims, readJwtExpiry } from "../../src/jwt.ts";

function b64url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function jwt(claimsJson: string): string {
  return `${b64url('{"alg":"RS256","typ":"JWT"}')}.${b64url(claimsJson)}.c2ln`;
}

Deno.test("readJwtClaims() decodes unpadded base64url claims", () => {
  // Claims chosen so the encoding holds '-' and '_' and needs padding.
  const claims = { tid: "t?>?", sub: "é ü ✓", n: 1, nested: { a: [1, 2] } };
  const token = jwt(JSON.stringify(claims));
  const body = token.split(".")[1]!;
  assert.ok(/[-_]/.test(body) && body.length % 4 !== 0, body);
  assert.deepEqual(readJwtClaims(token), claims);
});

Deno.test("readJwtClaims() accepts padded claims", () => {
  const body = btoa('{"exp":12}');
  assert.ok(body.endsWith("="));
  assert.deepEqual(readJwtClaims(`e30.${body}.x`), { exp: 12 });
});

const NOT_JWT: [string, string][] = [
  ["an opaque token", "opaque-token"],
  ["two parts", `e30.${b64url('{"exp":1}')}`],
  ["four parts", `e30.${b64url('{"exp":1}')}.x.y`],
  ["an empty payload", "e30..sig"],
  ["an empty string", ""],
  ["bad base64", "e30.!!!!.sig"],
  ["a payload that is not JSON", `e30.${b64url("not json")}.sig`],
  ["an array payload", `e30.${b64url("[1,2]")}.sig`],
  ["a null payload", `e30.${b64url("null")}.sig`],
  ["a number payload", `e30.${b64url("42")}.sig`],
  ["a string payload", `e30.${b64url('"x"')}.sig`],
];

for (const [name, token] of NOT_JWT) {
  Deno.test(`readJwtClaims() returns undefined for ${name}`, () => {
    assert.equal(readJwtClaims(token), undefined);
    assert.equal(readJwtExpiry(token), undefined);
  });
}

const EXPIRY: [string, number | undefined][] = [
  ['{"exp":1700000000}', 1_700_000_000_000],
  ['{"exp":1700000000.5}', 1_700_000_000_500],
  ['{"exp":0}', 0],
  ['{"exp":"1700000000"}', undefined],
  ['{"exp":null}', undefined],
  ['{"exp":1e400}', undefined],
  ['{"iat":1}', undefined],
  ["{}", undefined],
];

Deno.test("readJwtExpiry() reads a numeric exp in milliseconds", () => {
  for (const [claims, want] of EXPIRY) {
    assert.equal(readJwtExpiry(jwt(claims)), want, claims);
  }
});
