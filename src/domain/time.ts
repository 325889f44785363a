/**
 * An ISO 8601 time as epoch ms, or null. A time without a zone is taken as UTC (Date.parse would
 * take the server's local zone, so the same change list would mean different times on different
 * servers).
 */
export function parseIsoTime(s: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i.exec(s);
  if (!m) return null;
  // Date.parse rolls an impossible date or time over (2026-02-31 became March 3rd): refused instead.
  const [year, month, day, hour = 0, minute = 0, second = 0] = m.slice(1, 7).map((v) => (v === undefined ? undefined : Number(v))) as number[];
  const daysInMonth = new Date(Date.UTC(year!, month!, 0)).getUTCDate();
  if (month! < 1 || month! > 12 || day! < 1 || day! > daysInMonth || hour > 23 || minute > 59 || second > 59) return null;
  const withZone = /T|\s/.test(s) && !/(Z|[+-]\d{2}:?\d{2})$/i.test(s) ? `${s.replace(' ', 'T')}Z` : s;
  const t = Date.parse(withZone);
  return Number.isNaN(t) ? null : t;
}
