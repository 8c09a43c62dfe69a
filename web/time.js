// Times from the API ("2026-11-24T17:05:43.123456+00:00", UTC) shown in the
// browser's own time zone. The original's "LLL L" (month name + month number)
// is replaced by a real short date.

/** Parses the API's created_at; returns a Date or null. */
export function parseApiTime(s) {
  if (typeof s !== 'string') return null;
  // Date.parse is only specified for millisecond precision: drop the extra digits.
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(s);
  if (!m) return null;
  const ms = ((m[2] || '') + '000').slice(0, 3);
  const d = new Date(`${m[1]}.${ms}${m[3]}`);
  return Number.isNaN(d.getTime()) ? null : d;
}

const shortDate = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const shortDateYear = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', year: 'numeric' });
const fullDate = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'long' });

/** "now", "5m", "3h", then "Mar 3" (or "Mar 3, 2025" in another year). */
export function relativeLabel(date, now = new Date()) {
  const minutes = (now.getTime() - date.getTime()) / 60000;
  if (minutes < 1) return 'now'; // also a clock slightly behind the server's
  if (minutes < 60) return `${Math.floor(minutes)}m`;
  if (minutes < 24 * 60) return `${Math.floor(minutes / 60)}h`;
  return (date.getFullYear() === now.getFullYear() ? shortDate : shortDateYear).format(date);
}

/** The long form for a tooltip, in the browser's zone. */
export function fullLabel(date) {
  return fullDate.format(date);
}
