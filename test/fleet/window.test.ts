// locksmith's reboot window (fleet/window.ts): parsing as locksmith's periodic.go accepts it, and
// "inside" as locksmith decides it: before the end of the latest occurrence that started, so a
// window crossing midnight or the end of the week covers the hours after it. Dates are built in
// local time (new Date(y, m, d, h, min)), as the window is, so the table holds in any time zone.
// Daylight-saving changes are not tested: the module documents that it does not model them.
import { describe, expect, it } from 'vitest';
import { describeWindow, inWindow, nextWindowStart, parseGoDuration, parseRebootWindow } from '../../dist/src/fleet/window.js';

// 2024-06-01 is a Saturday.
const at = (day: number, h: number, m = 0) => new Date(2024, 5, day, h, m);

describe('Go durations', () => {
  it.each([
    ['0', 0], ['1h', 3600_000], ['1h30m', 5400_000], ['90m', 5400_000], ['1.5h', 5400_000], ['45s', 45_000], ['2h0m30s', 7230_000], ['500ms', 500], ['+10m', 600_000],
  ])('%s', (text, ms) => expect(parseGoDuration(text)).toBe(ms));

  it.each([['', /Go duration/], ['1', /Go duration/], ['1d', /Go duration/], ['h', /Go duration/], ['1h 30m', /Go duration/], ['-1h', /must not be negative/]])('refuses "%s"', (text, message) => {
    expect(() => parseGoDuration(text)).toThrow(message);
  });
});

describe('parseRebootWindow', () => {
  it('both or neither; daily and weekly; the day in any case', () => {
    expect(parseRebootWindow(undefined, undefined)).toBeUndefined();
    expect(parseRebootWindow('02:00', '1h')).toMatchObject({ day: undefined, hour: 2, minute: 0, lengthMs: 3600_000 });
    expect(parseRebootWindow('thu 23:30', '1h30m')).toMatchObject({ day: 4, hour: 23, minute: 30, lengthMs: 5400_000 });
    expect(parseRebootWindow('SAT 7:05', '5m')).toMatchObject({ day: 6, hour: 7, minute: 5, lengthMs: 300_000 });
    expect(describeWindow(parseRebootWindow('sat 23:00', '2h')!)).toBe('weekly on Sat at 23:00 for 2h');
    expect(describeWindow(parseRebootWindow('02:00', '1h')!)).toBe('daily at 02:00 for 1h');
  });

  it.each([
    ['02:00', undefined, /needs both .*only the start/],
    [undefined, '1h', /needs both .*only the length/],
    ['24:00', '1h', /HH:MM/],
    ['02:60', '1h', /HH:MM/],
    ['Thursday 02:00', '1h', /HH:MM/],
    ['Fri02:00', '1h', /HH:MM/],
    ['02:00', '24h', /daily .* shorter than 24h/],
    ['Mon 02:00', '168h', /weekly .* shorter than 168h/],
    ['02:00', '-1m', /negative/],
  ])('refuses start %s length %s', (start, length, message) => {
    expect(() => parseRebootWindow(start, length)).toThrow(message);
  });

  it('a weekly window may be longer than a day', () => {
    expect(parseRebootWindow('Mon 02:00', '167h')!.lengthMs).toBe(167 * 3600_000);
  });
});

describe('inWindow and nextWindowStart', () => {
  const daily = parseRebootWindow('02:00', '1h')!;
  const lateDaily = parseRebootWindow('23:30', '1h')!;
  const weekly = parseRebootWindow('Sat 23:00', '2h')!;
  const thursday = parseRebootWindow('thu 04:00', '30m')!;

  it('the calendar the table relies on', () => expect(at(1, 0).getDay()).toBe(6));

  it.each([
    ['daily, before', daily, at(3, 1, 59), false, at(3, 2)],
    ['daily, at the start', daily, at(3, 2, 0), true, at(4, 2)],
    ['daily, inside', daily, at(3, 2, 59), true, at(4, 2)],
    ['daily, at the end (exclusive)', daily, at(3, 3, 0), false, at(4, 2)],
    ['daily 23:30 + 1h, before midnight', lateDaily, at(3, 23, 45), true, at(4, 23, 30)],
    ['daily 23:30 + 1h covers 00:15', lateDaily, at(4, 0, 15), true, at(4, 23, 30)],
    ['daily 23:30 + 1h, 00:30 is past it', lateDaily, at(4, 0, 30), false, at(4, 23, 30)],
    ['weekly Sat 23:00 + 2h, Saturday 23:10', weekly, at(1, 23, 10), true, at(8, 23)],
    ['weekly Sat 23:00 + 2h covers Sun 00:30', weekly, at(2, 0, 30), true, at(8, 23)],
    ['weekly Sat 23:00 + 2h, Sun 01:00 is past it', weekly, at(2, 1, 0), false, at(8, 23)],
    ['weekly Sat 23:00 + 2h, Saturday noon', weekly, at(8, 12), false, at(8, 23)],
    ['weekly, another day at the right hour', thursday, at(5, 4, 10), false, at(6, 4)],
    ['weekly, the day', thursday, at(6, 4, 10), true, at(13, 4)],
    ['weekly, month end', thursday, at(28, 9), false, new Date(2024, 6, 4, 4, 0)],
  ])('%s', (_name, w, now, inside, next) => {
    expect(inWindow(w, now)).toBe(inside);
    expect(nextWindowStart(w, now)).toEqual(next);
  });

  it('a zero-length window is refused: it would never open, and the machine would never reboot', () => {
    expect(() => parseRebootWindow('02:00', '0')).toThrow(/length 0 never opens/);
  });
});
