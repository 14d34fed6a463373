// Finds the known name a mistyped one most likely meant ("max_agnets" → "max_agents"), for "did you mean" hints.

/** Edit distance (insertions, deletions, substitutions, and swaps of neighbours count 1 each). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate closest to `name`, if one is close enough to be a likely typo (at most a third of its length
 * apart, and at least 2 edits allowed). Among equally close ones, a candidate that extends or shortens the name
 * wins (`slot` → `slots`, not `spot`); then the first.
 */
export function closestName(name: string, candidates: Iterable<string>): string | undefined {
  const wanted = name.toLowerCase();
  const limit = Math.max(2, Math.floor(wanted.length / 3));
  let best: { name: string; score: number } | undefined;
  for (const candidate of candidates) {
    const lower = candidate.toLowerCase();
    const distance = editDistance(wanted, lower);
    if (distance > limit) continue;
    const score = distance - (lower.startsWith(wanted) || wanted.startsWith(lower) ? 0.5 : 0);
    if (!best || score < best.score) best = { name: candidate, score };
  }
  return best?.name;
}
