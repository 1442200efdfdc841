/**
 * Remembers `compute(key)` for up to `max` keys, then forgets them all and starts over.
 *
 * For pure functions of a small key set that changes rarely, called on every request: decoding a
 * signing secret, judging a peer address. Clearing at the bound keeps rotated-out secrets and
 * departed addresses from piling up, at the price of recomputing the live ones once. A call that
 * throws is not remembered.
 */
export function boundedMemo<V>(compute: (key: string) => V, max = 1024): (key: string) => V {
  const kept = new Map<string, V>();
  return (key) => {
    if (kept.has(key)) return kept.get(key) as V;
    const value = compute(key);
    if (kept.size >= max) kept.clear();
    kept.set(key, value);
    return value;
  };
}
