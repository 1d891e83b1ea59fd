/**
 * Prints what a fault or load test measured, one greppable line each:
 * `measured <what>: key=value ...`.
 *
 * @module
 */

/**
 * Prints one measurement line.
 *
 * @param what The scenario.
 * @param fields The numbers, already rounded as wanted.
 */
export function measured(
  what: string,
  fields: Record<string, string | number | boolean | undefined>,
): void {
  const parts = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  // deno-lint-ignore no-console
  console.log(`measured ${what}: ${parts.join(" ")}`);
}

/**
 * Rounds milliseconds for printing.
 *
 * @param ms A duration.
 * @returns Whole milliseconds.
 */
export function ms(ms: number): number {
  return Math.round(ms);
}
