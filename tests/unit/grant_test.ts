import assert from "node:assert/strict";
import { type Grant, GrantSigner } from "../../src/grant.ts";

const NOW = 1_700_000_000;
const GRANT: Grant = {
  registry: "docker.io",
  names: ["library/nginx", "a/b"],
  exp: NOW + 900,
};

function key(fill: number): Uint8Array {
  return new Uint8Array(32).fill(fill);
}

function b64url(text: string): string {
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// Changes one character to another base64url character that alters the
// decoded bytes (the first character of a group always does).
function flipFirst(part: string): string {
  return (part[0] === "A" ? "B" : "A") + part.slice(1);
}

Deno.test("GrantSigner round-trips a grant", async () => {
  const signer = new GrantSigner(key(1));
  const token = await signer.sign(GRANT);
  assert.match(token, /^acp1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  assert.deepEqual(await signer.verify(token, NOW), GRANT);
});

Deno.test("GrantSigner accepts a token from another signer with the same key", async () => {
  const token = await new GrantSigner(key(7)).sign(GRANT);
  assert.deepEqual(await new GrantSigner(key(7)).verify(token, NOW), GRANT);
});

Deno.test("GrantSigner refuses a token signed with another key", async () => {
  const token = await new GrantSigner(key(1)).sign(GRANT);
  assert.equal(await new GrantSigner(key(2)).verify(token, NOW), undefined);
});

Deno.test("GrantSigner refuses a tampered payload", async () => {
  const signer = new GrantSigner(key(1));
  const token = await signer.sign(GRANT);
  const [, payload, sig] = token.split(".");
  const forged = b64url(
    JSON.stringify({ ...GRANT, names: [...GRANT.names, "secret/repo"] }),
  );
  for (const p of [flipFirst(payload!), forged]) {
    assert.equal(await signer.verify(`acp1.${p}.${sig}`, NOW), undefined, p);
  }
});

Deno.test("GrantSigner refuses a tampered signature", async () => {
  const signer = new GrantSigner(key(1));
  const token = await signer.sign(GRANT);
  const [, payload, sig] = token.split(".");
  const bad = [flipFirst(sig!), sig!.slice(0, -4), sig! + "AAAA", ""];
  for (const s of bad) {
    assert.equal(
      await signer.verify(`acp1.${payload}.${s}`, NOW),
      undefined,
      s,
    );
  }
});

Deno.test("GrantSigner refuses an expired grant", async () => {
  const signer = new GrantSigner(key(1));
  const token = await signer.sign(GRANT);
  assert.deepEqual(await signer.verify(token, GRANT.exp - 1), GRANT);
  assert.equal(await signer.verify(token, GRANT.exp), undefined);
  assert.equal(await signer.verify(token, GRANT.exp + 3600), undefined);
});

Deno.test("GrantSigner refuses a signed payload without a numeric exp", async () => {
  const signer = new GrantSigner(key(1));
  const token = await signer.sign(
    { registry: "docker.io", names: [], exp: "never" } as unknown as Grant,
  );
  assert.equal(await signer.verify(token, NOW), undefined);
});

Deno.test("GrantSigner refuses garbage strings", async () => {
  const signer = new GrantSigner(key(1));
  const token = await signer.sign(GRANT);
  const garbage = [
    "",
    "acp1.",
    "acp1..",
    "acp1.a",
    "acp1.a.",
    "acp1..b",
    "acp1.a.b",
    "acp1.!!!.@@@",
    "acp1.a.b.c",
    `${token}.extra`,
    token.replace("acp1.", "acp2."),
    token.replace("acp1.", ""),
    token.toUpperCase(),
    ` ${token}`,
    "Bearer " + token,
    "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.sig",
    "acp1." + "A".repeat(9000) + ".AAAA",
  ];
  for (const g of garbage) {
    assert.equal(await signer.verify(g, NOW), undefined, g.slice(0, 40));
  }
});

Deno.test("GrantSigner needs at least 32 bytes of key", () => {
  assert.throws(() => new GrantSigner(new Uint8Array(31)), RangeError);
  new GrantSigner(new Uint8Array(32));
});
