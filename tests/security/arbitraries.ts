/**
 * fast-check generators for repository names, scopes and request paths:
 * both grammar-valid values and near-misses built from the characters and
 * encodings that break path-based routing.
 *
 * @module
 */

import fc from "fast-check";

/** Pieces of near-valid names: grammar parts, dots, encodings, case. */
const NAME_PIECES: readonly string[] = [
  "a",
  "b",
  "z",
  "0",
  "9",
  "nginx",
  "library",
  "hub",
  ".",
  "..",
  "_",
  "__",
  "-",
  "--",
  "/",
  "//",
  "%2e",
  "%2E",
  "%2e%2e",
  "%2f",
  "%2F",
  "%5c",
  "%00",
  "%25",
  "\\",
  "A",
  "Z",
  ":",
  "@",
  " ",
  "?",
  "#",
  ";",
  "é",
];

/** A name built from grammar pieces and hostile pieces. */
export const nameish: fc.Arbitrary<string> = fc
  .array(fc.constantFrom(...NAME_PIECES), { minLength: 1, maxLength: 30 })
  .map((parts) => parts.join(""));

const component: fc.Arbitrary<string> = fc
  .tuple(
    fc.stringMatching(/^[a-z0-9]{1,12}$/),
    fc.array(
      fc.tuple(
        fc.constantFrom(".", "_", "__", "-", "--"),
        fc.stringMatching(/^[a-z0-9]{1,8}$/),
      ),
      { maxLength: 3 },
    ),
  )
  .map(([head, rest]) => head + rest.map(([s, c]) => s + c).join(""));

/** A name in the OCI grammar (length not bounded). */
export const validName: fc.Arbitrary<string> = fc
  .array(component, { minLength: 1, maxLength: 6 })
  .map((parts) => parts.join("/"));

/** Any candidate name: arbitrary text, near-misses, or valid names. */
export const anyName: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  nameish,
  validName,
  fc.tuple(validName, nameish, validName).map(([a, b, c]) => a + b + c),
);

const action: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "pull",
    "push",
    "delete",
    "*",
    "PULL",
    "Pull",
    "metadata_read",
    "content/read",
    "",
    " pull",
  ),
  fc.string({ maxLength: 8 }),
);

/** A scope string as a client might send it, honest or not. */
export const scopeString: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(
    fc.oneof(
      fc.constantFrom(
        "repository",
        "registry",
        "repository(plugin)",
        "Repository",
        "",
      ),
      fc.string({ maxLength: 10 }),
    ),
    anyName,
    fc.array(action, { minLength: 0, maxLength: 4 }),
  ).map(([type, name, actions]) => `${type}:${name}:${actions.join(",")}`),
  fc.string({ maxLength: 80 }),
);

const reference: fc.Arbitrary<string> = fc.oneof(
  {
    arbitrary: fc.constantFrom("latest", `sha256:${"b".repeat(64)}`),
    weight: 3,
  },
  fc.constantFrom("..", "%2e%2e", "-x", "uploads", "sha256:b"),
  fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,20}$/),
  nameish,
);

/** A `/v2/...` path (with optional query) built from hostile pieces. */
export const apiPath: fc.Arbitrary<string> = fc.oneof(
  {
    arbitrary: fc.tuple(
      fc.oneof({ arbitrary: validName, weight: 3 }, anyName),
      fc.constantFrom("manifests", "blobs", "referrers", "tags"),
      reference,
      fc.constantFrom("", "?ns=docker.io", "?n=5&last=a", "?ns=evil.example"),
    ).map(([name, kind, ref, q]) =>
      kind === "tags"
        ? `/v2/${name}/tags/list${q}`
        : `/v2/${name}/${kind}/${ref}${q}`
    ),
    weight: 4,
  },
  fc.string({ maxLength: 80 }).map((s) => `/v2/${s}`),
  fc.string({ maxLength: 80 }).map((s) => `/${s}`),
);
