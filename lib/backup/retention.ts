/**
 * Which backups a schedule keeps: the newest of each of the last `keepDaily` days
 * that have a backup, and the newest of each of the last `keepWeekly` ISO weeks.
 * Everything else is deleted. A backup kept by either rule stays.
 */
export interface RetainedBackup {
  id: string;
  createdAt: Date;
}

export function backupsToDelete(backups: RetainedBackup[], keepDaily: number, keepWeekly: number): string[] {
  const newestFirst = [...backups].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
  const keep = new Set<string>();
  const days = new Set<string>();
  const weeks = new Set<string>();
  for (const b of newestFirst) {
    const day = b.createdAt.toISOString().slice(0, 10);
    if (!days.has(day) && days.size < keepDaily) {
      days.add(day);
      keep.add(b.id);
    }
    const week = isoWeek(b.createdAt);
    if (!weeks.has(week) && weeks.size < keepWeekly) {
      weeks.add(week);
      keep.add(b.id);
    }
  }
  return newestFirst.filter((b) => !keep.has(b.id)).map((b) => b.id);
}

function isoWeek(date: Date): string {
  const d = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()));
  const day = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((d.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${d.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}
