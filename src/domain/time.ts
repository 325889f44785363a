/**
 * An ISO 8601 time as epoch ms, or null. A time without a zone is taken as UTC (Date.parse would
 * take the server's local zone, so the same change list would mean different times on different
 * servers).
 */
export function parseIsoTime(s: string): number | null {
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i.test(s)) return null;
  const withZone = /T|\s/.test(s) && !/(Z|[+-]\d{2}:?\d{2})$/i.test(s) ? `${s.replace(' ', 'T')}Z` : s;
  const t = Date.parse(withZone);
  return Number.isNaN(t) ? null : t;
}
