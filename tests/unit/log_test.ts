import assert from "node:assert/strict";
import type { LogLevel } from "../../src/config.ts";
import { enabled, formatLine } from "../../src/log.ts";

const T = new Date("2024-05-06T07:08:09.010Z");
const LEVELS: LogLevel[] = ["debug", "info", "warn", "error"];

Deno.test("enabled() logs a level at or above the threshold", () => {
  for (const [i, level] of LEVELS.entries()) {
    for (const [j, threshold] of LEVELS.entries()) {
      assert.equal(enabled(level, threshold), i >= j, `${level} ${threshold}`);
    }
  }
});

Deno.test("formatLine() writes key=value text in order", () => {
  const line = formatLine("text", "info", "request", {
    method: "GET",
    name: "library/nginx",
    route: "docker.io",
    status: 200,
    bytes: 1234,
    duration_ms: 5.5,
    cache: "hit",
    upstream_status: 200,
    ok: true,
  }, T);
  assert.equal(
    line,
    "ts=2024-05-06T07:08:09.010Z level=info msg=request method=GET " +
      "name=library/nginx route=docker.io status=200 bytes=1234 " +
      "duration_ms=5.5 cache=hit upstream_status=200 ok=true",
  );
});

const QUOTED: [string, string][] = [
  ["two words", '"two words"'],
  ["", '""'],
  ['say "hi"', '"say \\"hi\\""'],
  ["a=b", '"a=b"'],
  ["line\nbreak", '"line\\nbreak"'],
  ["tab\there", '"tab\\there"'],
  ["ctrl\u0007", '"ctrl\\u0007"'],
  ["-", "-"],
  ["a.b:c/d@e+f-g_h", "a.b:c/d@e+f-g_h"],
];

Deno.test("formatLine() quotes text values that need it", () => {
  for (const [value, want] of QUOTED) {
    const line = formatLine("text", "warn", "m", { v: value }, T);
    assert.equal(
      line,
      `ts=2024-05-06T07:08:09.010Z level=warn msg=m v=${want}`,
    );
    assert.ok(!line.includes("\n"));
  }
});

Deno.test("formatLine() quotes a message with spaces", () => {
  assert.equal(
    formatLine("text", "error", "upstream failed now", {}, T),
    'ts=2024-05-06T07:08:09.010Z level=error msg="upstream failed now"',
  );
});

Deno.test("formatLine() leaves out undefined fields", () => {
  const fields = { a: undefined, b: 1, c: undefined };
  assert.equal(
    formatLine("text", "debug", "m", fields, T),
    "ts=2024-05-06T07:08:09.010Z level=debug msg=m b=1",
  );
  assert.deepEqual(JSON.parse(formatLine("json", "debug", "m", fields, T)), {
    ts: "2024-05-06T07:08:09.010Z",
    level: "debug",
    msg: "m",
    b: 1,
  });
});

Deno.test("formatLine() writes one JSON object per line", () => {
  const line = formatLine("json", "info", "request", {
    name: 'odd "name"\nwith newline',
    status: 502,
    cached: false,
  }, T);
  assert.ok(!line.includes("\n"));
  assert.deepEqual(JSON.parse(line), {
    ts: "2024-05-06T07:08:09.010Z",
    level: "info",
    msg: "request",
    name: 'odd "name"\nwith newline',
    status: 502,
    cached: false,
  });
  assert.ok(line.startsWith('{"ts":"2024-05-06T07:08:09.010Z","level":"info"'));
});
