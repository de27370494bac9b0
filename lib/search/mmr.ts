/**
 * Maximal Marginal Relevance: picks, one at a time, the candidate that maximizes
 * λ·relevance − (1−λ)·(highest cosine similarity to anything already picked).
 * Relevance is the fused score scaled to [0, 1] so λ means the same for any k or
 * weights. λ = 1 keeps the relevance order; lower values trade it for diversity.
 */
export function maximalMarginalRelevance<T extends { score: number }>(
  candidates: T[],
  vectors: ArrayLike<number>[],
  options: { lambda: number; limit: number },
): T[] {
  if (candidates.length !== vectors.length) throw new Error('MMR needs one vector per candidate');
  const { lambda, limit } = options;
  const max = Math.max(...candidates.map((c) => c.score));
  const min = Math.min(...candidates.map((c) => c.score));
  const relevance = candidates.map((c) => (max > min ? (c.score - min) / (max - min) : 1));
  const norms = vectors.map((v) => Math.sqrt(dot(v, v)) || 1);
  const picked: number[] = [];
  const closest = new Array<number>(candidates.length).fill(0);
  const left = new Set(candidates.map((_, i) => i));
  while (picked.length < limit && left.size > 0) {
    let bestIndex = -1;
    let bestValue = -Infinity;
    for (const i of left) {
      const value = lambda * relevance[i]! - (1 - lambda) * (picked.length ? closest[i]! : 0);
      if (value > bestValue) {
        bestValue = value;
        bestIndex = i;
      }
    }
    picked.push(bestIndex);
    left.delete(bestIndex);
    for (const i of left) {
      const sim = dot(vectors[i]!, vectors[bestIndex]!) / (norms[i]! * norms[bestIndex]!);
      if (sim > closest[i]!) closest[i] = sim;
    }
  }
  return picked.map((i) => candidates[i]!);
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}
