/**
 * locksmith's reboot window (../shared/reference/fleet-updates.md §2.6): a start, `HH:MM` for a
 * daily window or `Day HH:MM` (Sun..Sat, any case) for a weekly one, and a length as a Go
 * duration (`1h`, `1h30m`, `90m`), positive and shorter than the period. Times are the
 * machine's local wall clock, as locksmith's; a time is inside the window when it is before the
 * end of the latest occurrence that has started, so a window that crosses midnight (or Saturday
 * into Sunday) covers the small hours after it.
 *
 * Daylight saving is not modelled beyond what local Date arithmetic gives: an occurrence starts at
 * its wall-clock time on its day and lasts `length` of real time, so a window across a change is
 * an hour longer or shorter in wall-clock terms, and a start inside a skipped hour moves with it.
 *
 * Pure: strings and Dates in, data out.
 */
import { FastPatchError } from '../errors.js';
import { escapeText } from '../text.js';

export interface RebootWindow {
  /** Day of the week of a weekly window (0 = Sunday, as Date.getDay), undefined for a daily one. */
  day: number | undefined;
  /** Hour and minute of the start, local time. */
  hour: number;
  minute: number;
  /** Length in milliseconds. */
  lengthMs: number;
  /** The settings as given, for messages. */
  start: string;
  length: string;
}

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const DAY_MS = 24 * 3600_000;
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3600_000 };

/**
 * A Go duration (time.ParseDuration) in milliseconds: `0`, or numbers with units ns us ms s m h,
 * e.g. `1h30m`, `1.5h`, `90m`. Throws FastPatchError('USAGE') for anything else, and for a
 * negative one (a window cannot last less than nothing).
 */
export function parseGoDuration(text: string): number {
  const t = text.trim();
  if (t.startsWith('-') && /^-(\d|\.)/.test(t)) throw new FastPatchError('USAGE', `a reboot window length must not be negative, got "${escapeText(t.slice(0, 40))}"`);
  const body = t.replace(/^\+/, '');
  if (body === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/gy;
  let ms = 0;
  let at = 0;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    ms += Number(m[1]) * UNIT_MS[m[2]!]!;
    at = re.lastIndex;
  }
  if (body === '' || at !== body.length) {
    throw new FastPatchError('USAGE', `a reboot window length must be a Go duration such as 1h, 1h30m or 90m, got "${escapeText(t.slice(0, 40))}"`);
  }
  return ms;
}

/** Parses a start (`HH:MM` or `Day HH:MM`). Throws FastPatchError('USAGE'). */
export function parseWindowStart(text: string): { day: number | undefined; hour: number; minute: number } {
  const m = /^(?:([A-Za-z]{3})\s+)?(\d{1,2}):(\d{2})$/.exec(text.trim());
  const day = m?.[1] === undefined ? undefined : DAYS.indexOf(m[1].toLowerCase());
  const hour = Number(m?.[2]);
  const minute = Number(m?.[3]);
  if (!m || day === -1 || hour > 23 || minute > 59) {
    throw new FastPatchError('USAGE', `a reboot window start must be HH:MM (daily) or Day HH:MM with Day one of Sun Mon Tue Wed Thu Fri Sat (weekly), got "${escapeText(text.slice(0, 40))}"`);
  }
  return { day, hour, minute };
}

/**
 * The window of a start and a length, or undefined when neither is set (no window: any time will
 * do). Both or neither, as locksmith requires. Throws FastPatchError('USAGE') naming what is wrong.
 */
export function parseRebootWindow(start: string | undefined, length: string | undefined): RebootWindow | undefined {
  if (start === undefined && length === undefined) return undefined;
  if (start === undefined || length === undefined) {
    throw new FastPatchError('USAGE', `a reboot window needs both REBOOT_WINDOW_START and REBOOT_WINDOW_LENGTH (or their LOCKSMITHD_ names); only ${start === undefined ? 'the length' : 'the start'} is set`);
  }
  const s = parseWindowStart(start);
  const lengthMs = parseGoDuration(length);
  const period = s.day === undefined ? DAY_MS : 7 * DAY_MS;
  if (lengthMs === 0) throw new FastPatchError('USAGE', `a reboot window of length 0 never opens: the machine would never reboot; give a length such as 1h, or no window`);
  if (lengthMs >= period) {
    throw new FastPatchError('USAGE', `a ${s.day === undefined ? 'daily' : 'weekly'} reboot window must be shorter than ${s.day === undefined ? '24h' : '168h (a week)'}, got ${escapeText(length.slice(0, 40))}`);
  }
  return { ...s, lengthMs, start: start.trim(), length: length.trim() };
}

/** The start of the latest occurrence of `w` at or before `now` (local wall clock). */
export function latestWindowStart(w: RebootWindow, now: Date): Date {
  const back = w.day === undefined ? 0 : (now.getDay() - w.day + 7) % 7;
  const start = new Date(now.getFullYear(), now.getMonth(), now.getDate() - back, w.hour, w.minute, 0, 0);
  if (start.getTime() <= now.getTime()) return start;
  // Later today (or on this weekday later): the occurrence before it is the latest that started.
  return new Date(start.getFullYear(), start.getMonth(), start.getDate() - (w.day === undefined ? 1 : 7), w.hour, w.minute, 0, 0);
}

/** Whether `now` falls inside the window: before the end of the latest occurrence that started. */
export function inWindow(w: RebootWindow, now: Date): boolean {
  return now.getTime() < latestWindowStart(w, now).getTime() + w.lengthMs;
}

/** The first start of the window strictly after `now` (when to wake a machine outside it). */
export function nextWindowStart(w: RebootWindow, now: Date): Date {
  const latest = latestWindowStart(w, now);
  return new Date(latest.getFullYear(), latest.getMonth(), latest.getDate() + (w.day === undefined ? 1 : 7), w.hour, w.minute, 0, 0);
}

/** Milliseconds to wait from `now` until inside the window (0 when inside). */
export function msUntilWindow(w: RebootWindow, now: Date): number {
  return inWindow(w, now) ? 0 : nextWindowStart(w, now).getTime() - now.getTime();
}

/** The window in words: `daily at 02:00 for 1h`, `weekly on Sat at 23:00 for 2h`. */
export function describeWindow(w: RebootWindow): string {
  const hm = `${String(w.hour).padStart(2, '0')}:${String(w.minute).padStart(2, '0')}`;
  const day = w.day === undefined ? '' : DAYS[w.day]!;
  return `${w.day === undefined ? 'daily' : `weekly on ${day[0]!.toUpperCase()}${day.slice(1)}`} at ${hm} for ${w.length}`;
}
