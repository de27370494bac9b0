/**
 * Five-field cron (minute hour day-of-month month day-of-week, UTC) for the backup
 * schedule: numbers, `*`, ranges `a-b`, steps `*\/n` and `a-b/n`, lists `a,b`.
 * Day-of-month and day-of-week follow cron's rule: when both are restricted, either matches.
 */
export interface CronSchedule {
  source: string;
  next(after: Date): Date;
}

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day of week', min: 0, max: 7 },
] as const;

function parseField(text: string, spec: (typeof FIELDS)[number]): { values: Set<number>; any: boolean } {
  const values = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
    if (!m) throw new Error(`cron ${spec.name} "${part}" is not a number, *, range a-b or step /n`);
    const from = m[1] === '*' ? spec.min : Number(m[2]);
    const to = m[1] === '*' ? spec.max : m[3] !== undefined ? Number(m[3]) : m[4] !== undefined ? spec.max : from;
    const step = m[4] !== undefined ? Number(m[4]) : 1;
    if (from < spec.min || to > spec.max || from > to || step < 1) {
      throw new Error(`cron ${spec.name} "${part}" is outside ${spec.min}-${spec.max}`);
    }
    for (let v = from; v <= to; v += step) values.add(spec.name === 'day of week' && v === 7 ? 0 : v);
  }
  return { values, any: text === '*' };
}

export function parseCron(source: string): CronSchedule {
  const parts = source.trim().split(/\s+/);
  if (parts.length !== 5) throw new Error(`cron "${source}" must have 5 fields: minute hour day-of-month month day-of-week`);
  const [minute, hour, dom, month, dow] = parts.map((p, i) => parseField(p, FIELDS[i]!));
  const dayMatches = (d: Date) => {
    const byDom = dom!.values.has(d.getUTCDate());
    const byDow = dow!.values.has(d.getUTCDay());
    if (dom!.any && dow!.any) return true;
    if (dom!.any) return byDow;
    if (dow!.any) return byDom;
    return byDom || byDow;
  };
  return {
    source,
    next(after: Date): Date {
      const t = new Date(after.getTime());
      t.setUTCSeconds(0, 0);
      t.setUTCMinutes(t.getUTCMinutes() + 1);
      // Five years of minutes at most; skipping whole days and hours keeps it short.
      const limit = after.getTime() + 5 * 366 * 24 * 3600_000;
      while (t.getTime() <= limit) {
        if (!month!.values.has(t.getUTCMonth() + 1) || !dayMatches(t)) {
          t.setUTCHours(0, 0, 0, 0);
          t.setUTCDate(t.getUTCDate() + 1);
          continue;
        }
        if (!hour!.values.has(t.getUTCHours())) {
          t.setUTCMinutes(0, 0, 0);
          t.setUTCHours(t.getUTCHours() + 1);
          continue;
        }
        if (minute!.values.has(t.getUTCMinutes())) return t;
        t.setUTCMinutes(t.getUTCMinutes() + 1);
      }
      throw new Error(`cron "${source}" never fires`);
    },
  };
}
