/**
 * Versioned, validated records: everything forecastd writes to disk or the wire goes through a schema here, and
 * everything it reads back is validated, never cast. A record of an older version is upgraded explicitly; a record of
 * an unknown version, or one that does not match its schema, is refused with a message that names the field.
 */
import type { z } from 'zod';

export class ContractError extends Error {
  override name = 'ContractError';
  constructor(
    /** What was read, e.g. "checkpoint meta of room@20261128T031700Z". */
    readonly what: string,
    /** The first problem, e.g. "scaler.mean: expected array, received string". */
    readonly problem: string,
  ) {
    super(`${what}: ${problem}`);
  }
}

/** "path.to.field: message" for zod's first issue (the root is named "(record)"). */
export function firstProblem(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.length > 0 ? issue.path.map(String).join('.') : '(record)';
  return `${path}: ${issue.message}`;
}

/** Validates `raw` against `schema`; throws a ContractError that names the field. */
export function parseWith<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.output<S> {
  const result = schema.safeParse(raw);
  if (!result.success) throw new ContractError(what, firstProblem(result.error));
  return result.data;
}

/** The record version field of a raw JSON object: undefined when absent (the records of forecastd 0.1.0 have none). */
export function versionOf(raw: unknown, field: string): unknown {
  return raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>)[field] : undefined;
}
