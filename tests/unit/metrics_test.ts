import assert from "node:assert/strict";
import {
  LATENCY_BUCKETS,
  METRIC_NAMES,
  ProxyMetrics,
} from "../../src/metrics.ts";

/** One parsed sample line. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*/;

// Parses a sample line strictly after the text format 0.0.4 grammar;
// throws on anything malformed.
function parseSample(line: string): Sample {
  const name = NAME_RE.exec(line)?.[0];
  if (!name) throw new Error(`no metric name: ${line}`);
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === "{") {
    i++;
    while (line[i] !== "}") {
      const label = LABEL_NAME_RE.exec(line.slice(i))?.[0];
      if (!label) throw new Error(`bad label name: ${line}`);
      i += label.length;
      if (line.slice(i, i + 2) !== '="') throw new Error(`no ="": ${line}`);
      i += 2;
      let value = "";
      for (;;) {
        const ch = line[i];
        if (ch === undefined) throw new Error(`open label: ${line}`);
        if (ch === '"') break;
        if (ch === "\\") {
          const next = line[i + 1];
          if (next === "\\") value += "\\";
          else if (next === '"') value += '"';
          else if (next === "n") value += "\n";
          else throw new Error(`bad escape: ${line}`);
          i += 2;
        } else {
          if (ch === "\n") throw new Error("raw newline");
          value += ch;
          i++;
        }
      }
      i++;
      if (label in labels) throw new Error(`repeated label: ${line}`);
      labels[label] = value;
      if (line[i] === ",") i++;
      else if (line[i] !== "}") throw new Error(`bad separator: ${line}`);
    }
    i++;
  }
  if (line[i] !== " ") throw new Error(`no space before value: ${line}`);
  const text = line.slice(i + 1);
  if (
    !/^(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN)$/.test(
      text,
    )
  ) {
    throw new Error(`bad value: ${line}`);
  }
  const value = text.endsWith("Inf")
    ? (text.startsWith("-") ? -Infinity : Infinity)
    : Number(text);
  return { name, labels, value };
}

function familyOf(name: string, types: Map<string, string>): string {
  if (types.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, "");
  if (types.get(base) === "histogram") return base;
  throw new Error(`no # TYPE before sample ${name}`);
}

// Checks the exposition's structure and returns its samples.
function checkExposition(text: string): Sample[] {
  assert.ok(text.endsWith("\n"), "ends with a newline");
  const types = new Map<string, string>();
  const seenFamilies: string[] = [];
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split("\n")) {
    assert.notEqual(line, "", "no blank lines");
    const type = /^# TYPE ([^ ]+) (counter|gauge|histogram|summary|untyped)$/
      .exec(line);
    if (type) {
      assert.ok(!types.has(type[1]!), `one # TYPE for ${type[1]}`);
      types.set(type[1]!, type[2]!);
      seenFamilies.push(type[1]!);
      continue;
    }
    const help = /^# HELP ([^ ]+) (.*)$/.exec(line);
    if (help) {
      assert.ok(!types.has(help[1]!), `# HELP before # TYPE for ${help[1]}`);
      assert.ok(!/\n/.test(help[2]!));
      continue;
    }
    assert.ok(!line.startsWith("#"), `unknown comment: ${line}`);
    const sample = parseSample(line);
    const family = familyOf(sample.name, types);
    assert.equal(
      family,
      seenFamilies.at(-1),
      `${sample.name} is grouped under its own # TYPE`,
    );
    if (types.get(family) === "counter") {
      assert.ok(sample.value >= 0, line);
    }
    samples.push(sample);
  }
  assert.deepEqual([...types.keys()].sort(), [...METRIC_NAMES].sort());
  return samples;
}

function find(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number[] {
  return samples.filter((s) =>
    s.name === name &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  ).map((s) => s.value);
}

Deno.test("METRIC_NAMES are the contract's names in Prometheus form", () => {
  assert.deepEqual([...METRIC_NAMES].sort(), [
    "acr_cache_proxy_content_cache_bytes",
    "acr_cache_proxy_content_cache_requests_total",
    "acr_cache_proxy_in_flight_requests",
    "acr_cache_proxy_refresh_token_expiry_seconds",
    "acr_cache_proxy_refresh_token_renewals_total",
    "acr_cache_proxy_requests_total",
    "acr_cache_proxy_response_bytes_total",
    "acr_cache_proxy_token_cache_requests_total",
    "acr_cache_proxy_upstream_request_duration_seconds",
  ]);
  for (const name of METRIC_NAMES) assert.match(name, /^[a-z_]+$/);
});

Deno.test("ProxyMetrics.render() is valid when nothing was recorded", () => {
  const samples = checkExposition(new ProxyMetrics().render());
  const zero = (name: string, result: string): unknown => ({
    name,
    labels: { result },
    value: 0,
  });
  // Result series start at zero so rate() works before the first event.
  assert.deepEqual(samples, [
    zero("acr_cache_proxy_refresh_token_renewals_total", "success"),
    zero("acr_cache_proxy_refresh_token_renewals_total", "failure"),
    zero("acr_cache_proxy_token_cache_requests_total", "hit"),
    zero("acr_cache_proxy_token_cache_requests_total", "miss"),
    { name: "acr_cache_proxy_in_flight_requests", labels: {}, value: 0 },
    zero("acr_cache_proxy_content_cache_requests_total", "hit"),
    zero("acr_cache_proxy_content_cache_requests_total", "miss"),
    { name: "acr_cache_proxy_content_cache_bytes", labels: {}, value: 0 },
  ]);
});

Deno.test("ProxyMetrics.render() follows the text format with data", () => {
  const m = new ProxyMetrics();
  m.countRequest("docker.io", "GET", 200);
  m.countRequest("docker.io", "GET", 200);
  m.countRequest("docker.io", "HEAD", 404);
  m.countRequest("ghcr.io", "DELETE", 405);
  m.countRequest("-", "PATCH", 405);
  m.addBytes("docker.io", 100);
  m.addBytes("docker.io", 23);
  m.addBytes("ghcr.io", 7);
  m.observeUpstream("docker.io", 0.003);
  m.observeUpstream("docker.io", 0.1);
  m.observeUpstream("docker.io", 45);
  m.observeUpstream("ghcr.io", 1);
  m.countRenewal(true);
  m.countRenewal(false);
  m.countRenewal(true);
  m.countTokenLookup(true);
  m.countTokenLookup(false);
  m.countTokenLookup(true);
  m.trackInFlight(1);
  m.trackInFlight(1);
  m.trackInFlight(-1);
  m.watchRefreshExpiry(() => 3600.5);
  const s = checkExposition(m.render());

  const req = "acr_cache_proxy_requests_total";
  assert.deepEqual(
    find(s, req, { route: "docker.io", method: "GET", status: "200" }),
    [2],
  );
  assert.deepEqual(
    find(s, req, { route: "docker.io", method: "HEAD", status: "404" }),
    [1],
  );
  assert.deepEqual(
    find(s, req, { route: "ghcr.io", method: "other", status: "405" }),
    [1],
  );
  assert.deepEqual(find(s, req, { route: "-", method: "other" }), [1]);
  assert.equal(find(s, req).length, 4);
  assert.deepEqual(
    find(s, "acr_cache_proxy_response_bytes_total", { route: "docker.io" }),
    [123],
  );
  assert.deepEqual(
    find(s, "acr_cache_proxy_refresh_token_renewals_total", {
      result: "success",
    }),
    [2],
  );
  assert.deepEqual(
    find(s, "acr_cache_proxy_refresh_token_renewals_total", {
      result: "failure",
    }),
    [1],
  );
  assert.deepEqual(
    find(s, "acr_cache_proxy_token_cache_requests_total", { result: "hit" }),
    [2],
  );
  assert.deepEqual(
    find(s, "acr_cache_proxy_token_cache_requests_total", { result: "miss" }),
    [1],
  );
  assert.deepEqual(find(s, "acr_cache_proxy_in_flight_requests"), [1]);
  assert.deepEqual(
    find(s, "acr_cache_proxy_refresh_token_expiry_seconds"),
    [3600.5],
  );
});

Deno.test("ProxyMetrics histogram buckets are cumulative up to +Inf = _count", () => {
  const m = new ProxyMetrics();
  const observations = [0.003, 0.005, 0.1, 0.2, 0.7, 3, 29.9, 30, 45, 1000];
  for (const o of observations) m.observeUpstream("docker.io", o);
  m.observeUpstream("ghcr.io", 0.02);
  const s = checkExposition(m.render());
  const h = "acr_cache_proxy_upstream_request_duration_seconds";

  for (const route of ["docker.io", "ghcr.io"]) {
    const buckets = s.filter((x) =>
      x.name === `${h}_bucket` && x.labels.route === route
    );
    const les = buckets.map((b) => b.labels.le);
    assert.deepEqual(les, [...LATENCY_BUCKETS.map(String), "+Inf"]);
    for (let i = 1; i < buckets.length; i++) {
      assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, `${route} ${i}`);
    }
    const count = find(s, `${h}_count`, { route });
    assert.equal(count.length, 1);
    assert.equal(buckets.at(-1)!.value, count[0]);
  }

  const docker = s.filter((x) =>
    x.name === `${h}_bucket` && x.labels.route === "docker.io"
  );
  for (const b of docker) {
    const le = b.labels.le === "+Inf" ? Infinity : Number(b.labels.le);
    const want = observations.filter((o) => o <= le).length;
    assert.equal(b.value, want, `le=${b.labels.le}`);
  }
  assert.deepEqual(find(s, `${h}_count`, { route: "docker.io" }), [10]);
  const sum = find(s, `${h}_sum`, { route: "docker.io" })[0]!;
  const want = observations.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - want) < 1e-9, String(sum));
});

Deno.test("ProxyMetrics escapes label values", () => {
  const m = new ProxyMetrics();
  const odd = 'a"b\\c\nd}e,f="g';
  m.countRequest(odd, "GET", 200);
  m.addBytes(odd, 1);
  m.observeUpstream(odd, 0.5);
  const text = m.render();
  assert.ok(text.includes('route="a\\"b\\\\c\\nd}e,f=\\"g"'), text);
  const s = checkExposition(text);
  assert.deepEqual(
    find(s, "acr_cache_proxy_requests_total", { route: odd, status: "200" }),
    [1],
  );
  assert.deepEqual(
    find(s, "acr_cache_proxy_upstream_request_duration_seconds_count", {
      route: odd,
    }),
    [1],
  );
});

Deno.test("ProxyMetrics leaves the expiry gauge empty without a token", () => {
  const m = new ProxyMetrics();
  let left: number | undefined = undefined;
  m.watchRefreshExpiry(() => left);
  const name = "acr_cache_proxy_refresh_token_expiry_seconds";
  assert.deepEqual(find(checkExposition(m.render()), name), []);
  left = 42;
  assert.deepEqual(find(checkExposition(m.render()), name), [42]);
});
