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

Deno.test("the proxy runs with the same V8 flags wherever it is launched", async () => {
  const read = (path: string): Promise<string> =>
    Deno.readTextFile(new URL(path, import.meta.url));
  const flags = /--v8-flags=(\S+)/.exec(denoJson.tasks.start)?.[1];
  assert.ok(flags, "the start task sets V8 flags");
  const places: [string, string][] = [
    ["compile task", denoJson.tasks.compile],
    ["README", readme],
    ["serve.ts", await read("../serve.ts")],
    ["systemd unit", await read("../contrib/systemd/acr-cache-proxy.service")],
    ["bench", await read("../bench/lib/contenders.ts")],
  ];
  for (const [where, text] of places) {
    const found = [...text.matchAll(/--v8-flags=([^\s"'`]+)/g)].map((m) =>
      m[1]
    );
    assert.ok(found.length > 0, `${where} sets V8 flags`);
    for (const f of found) assert.equal(f, flags, where);
  }
});
