import assert from "node:assert/strict";
import { FLAGS } from "../src/config.ts";
import { METRIC_NAMES } from "../src/metrics.ts";
import denoJson from "../deno.json" with { type: "json" };
import { STREAMING_V8_FLAGS } from "../bench/lib/contenders.ts";

const readme = await Deno.readTextFile(
  new URL("../README.md", import.meta.url),
);

Deno.test("README documents every flag and environment variable", () => {
  for (const flag of FLAGS) {
    if (!flag.flagless) {
      assert.ok(readme.includes(`\`--${flag.name}`), flag.name);
    }
    if (flag.env) assert.ok(readme.includes(flag.env), flag.env);
  }
});

Deno.test("README documents every metric", () => {
  for (const name of METRIC_NAMES) assert.ok(readme.includes(name), name);
});

Deno.test("README's permission flags are the ones the start task uses", () => {
  const start = denoJson.tasks.start;
  for (
    const flag of [
      "--allow-net",
      "--allow-env",
      "--allow-sys=uid,osRelease",
      "--allow-run=az",
    ]
  ) {
    assert.ok(start.includes(flag), flag);
    assert.ok(readme.includes(flag), flag);
  }
});

Deno.test("README offers the streaming V8 flags the bench measures", () => {
  const offered = [...readme.matchAll(/--v8-flags=([^\s"'`]+)/g)].map((m) =>
    `--v8-flags=${m[1]}`
  );
  assert.ok(offered.length > 0, "README names the flags");
  for (const flags of offered) assert.equal(flags, STREAMING_V8_FLAGS);
  assert.ok(!denoJson.tasks.start.includes("--v8-flags"), "not a default");
});
