/** A small seeded PRNG (mulberry32): reproducible shuffles when a training has a seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates permutation of 0..count-1. */
export function permutation(count: number, random: () => number): Uint32Array {
  const order = new Uint32Array(count);
  for (let index = 0; index < count; index++) order[index] = index;
  for (let index = count - 1; index > 0; index--) {
    const other = Math.floor(random() * (index + 1));
    [order[index], order[other]] = [order[other], order[index]];
  }
  return order;
}

/** Rows of a row-major [count, rowLength] array, reordered. */
export function gatherRows(source: Float32Array, rowLength: number, order: Uint32Array): Float32Array {
  const out = new Float32Array(order.length * rowLength);
  order.forEach((row, index) => out.set(source.subarray(row * rowLength, (row + 1) * rowLength), index * rowLength));
  return out;
}
