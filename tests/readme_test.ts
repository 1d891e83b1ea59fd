import assert from "node:assert/strict";
import { FLAGS } from "../src/config.ts";
import { METRIC_NAMES } from "../src/metrics.ts";
import denoJson from "../deno.json" with { type: "json" };

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
