/**
 * Parse a Retry-After header (RFC 9110 §10.2.3): either delay-seconds or an HTTP-date.
 * Returns milliseconds from now (never negative), or undefined when absent or unparseable.
 * Capping the value is the retry policy's job, not the parser's.
 */
const DELAY_SECONDS = /^\d+$/;
// All three HTTP-date forms (IMF-fixdate, RFC 850, asctime) start with a day name. Requiring it
// keeps Date.parse, which accepts almost anything ("-5" is the year -5), from inventing dates.
const HTTP_DATE = /^[A-Za-z]{3,9},? /;

export function parseRetryAfter(value: string | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (DELAY_SECONDS.test(trimmed)) return Number(trimmed) * 1000;
  if (!HTTP_DATE.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}
