// The effective settings the gateway put in the assertion (`settings` claim, see
// src/shared/assertion.ts and docs/settings.md), as the tenant service uses them:
//   quota.agents              no agent beyond it (409 quota-exceeded, naming where it was set)
//   recording.retention_days  call records older than it are not visible
//   timezone                  the reports' local day
// An assertion without the claim (a gateway that sends none) applies none of them.
import type { AssertionClaims } from '../shared/assertion.js';
import { Problem } from '../shared/problem.js';

export interface Quota {
  key: string;
  limit: number;
  /** The node whose entry decided the value (`default` when none did). */
  source: string;
}

export function quotaOf(claims: AssertionClaims, key: string): Quota | undefined {
  const limit = claims.settings?.values[key];
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0) return undefined;
  return { key, limit, source: claims.settings?.sources[key] ?? 'default' };
}

export function quotaExceeded(q: Quota, count: number): Problem {
  return new Problem(409, 'quota-exceeded', 'Quota exceeded', {
    detail: `${q.key} is ${q.limit} (set by ${q.source}) and this tenant has ${count}; nothing was created`,
    extensions: { quota: q.key, limit: q.limit, setBy: q.source, current: count },
  });
}

/** The oldest start time a visible call record may have, or undefined when no retention applies. */
export function retentionCutoff(claims: AssertionClaims, now = Date.now()): string | undefined {
  const days = claims.settings?.values['recording.retention_days'];
  if (typeof days !== 'number' || !Number.isInteger(days) || days < 1) return undefined;
  return new Date(now - days * 86_400_000).toISOString();
}

export function timezoneOf(claims: AssertionClaims): string {
  const tz = claims.settings?.values.timezone;
  return typeof tz === 'string' ? tz : 'UTC';
}

function zoneOffsetMs(timeZone: string, instant: number): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(instant));
  const n = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const asUtc = Date.UTC(n('year'), n('month') - 1, n('day'), n('hour'), n('minute'), n('second'));
  return asUtc - Math.floor(instant / 1000) * 1000;
}

/** The local calendar day of `now` in `timeZone` (YYYY-MM-DD) and the instant it began. */
export function localDay(timeZone: string, now = Date.now()): { date: string; startsAt: string } {
  const date = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(now));
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const utcMidnight = Date.UTC(y, m - 1, d);
  let start = utcMidnight - zoneOffsetMs(timeZone, utcMidnight);
  start = utcMidnight - zoneOffsetMs(timeZone, start);
  return { date, startsAt: new Date(start).toISOString() };
}
