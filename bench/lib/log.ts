/**
 * Console output for the benchmark harness. Every line the bench prints goes
 * through here, so the lint exception for console use lives in one file.
 *
 * @module
 */
// deno-lint-ignore-file no-console

/** Prints a progress or result line to stdout. */
export function say(message: string): void {
  console.log(message);
}

/** Prints a warning line to stderr. */
export function warn(message: string): void {
  console.error(`warning: ${message}`);
}
