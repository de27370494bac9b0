export type Leg = 'lexical' | 'dense';

export interface FusedItem {
  id: string;
  score: number;
  ranks: Record<Leg, number | null>;
}

/**
 * Reciprocal Rank Fusion: score(d) = Σ_leg weight_leg / (k + rank_leg(d)), ranks
 * 1-based. Only ranks count, never a leg's raw scores, so BM25 and cosine need no
 * calibration against each other. Ties keep the order of the better single rank,
 * then the id, so a result is reproducible.
 */
export function reciprocalRankFusion(
  lists: Partial<Record<Leg, string[]>>,
  options: { k: number; weights: Partial<Record<Leg, number>> },
): FusedItem[] {
  if (!(options.k >= 0) || !Number.isFinite(options.k)) throw new Error(`RRF k must be a finite number ≥ 0 (got ${options.k})`);
  const items = new Map<string, FusedItem>();
  for (const leg of ['lexical', 'dense'] as const) {
    const ids = lists[leg];
    if (!ids) continue;
    const weight = options.weights[leg] ?? 1;
    ids.forEach((id, index) => {
      let item = items.get(id);
      if (!item) {
        item = { id, score: 0, ranks: { lexical: null, dense: null } };
        items.set(id, item);
      }
      // A leg listing the same id twice counts it at its best rank only.
      if (item.ranks[leg] !== null) return;
      item.ranks[leg] = index + 1;
      item.score += weight / (options.k + index + 1);
    });
  }
  const best = (i: FusedItem) => Math.min(i.ranks.lexical ?? Infinity, i.ranks.dense ?? Infinity);
  return [...items.values()].sort((a, b) => b.score - a.score || best(a) - best(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
