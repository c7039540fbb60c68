/**
 * TensorFlow.js backend selection: native libtensorflow when it loads, else WebAssembly, else plain JS.
 *
 * `@tensorflow/tfjs-node` is an optionalDependency: its install downloads libtensorflow, which fails on
 * machines without internet access and is fragile on arm64, so it may simply be absent. Its addon also
 * fails when a second worker thread loads it, so only the caller that owns the "native slot" may try it.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export type Tf = typeof tf;
export type BackendPreference = 'auto' | 'native' | 'wasm' | 'cpu';
/** What forecastd reports: the friendly name, not tfjs's internal one ("tensorflow"). */
export type BackendName = 'native' | 'wasm' | 'cpu';

export interface BackendChoice {
  tf: Tf;
  name: BackendName;
  /** Why a better backend was passed over, for the log line at start. */
  skipped: string[];
}

let chosen: BackendChoice | null = null;

async function tryNative(): Promise<boolean> {
  try {
    // A non-literal specifier keeps TypeScript from requiring the optional package's types.
    const specifier = '@tensorflow/tfjs-node';
    await import(specifier);
    return await tf.setBackend('tensorflow');
  } catch {
    return false;
  }
}

/** Picks the backend once per thread; later calls return the same choice. */
export async function initBackend(preference: BackendPreference, options: { allowNative: boolean }): Promise<BackendChoice> {
  if (chosen) return chosen;
  const skipped: string[] = [];
  const order: BackendName[] = preference === 'auto' ? ['native', 'wasm', 'cpu'] : [preference, 'wasm', 'cpu'];
  for (const name of [...new Set(order)]) {
    if (name === 'native') {
      if (!options.allowNative) {
        skipped.push('native: not allowed in this thread (the addon may be loaded by one thread only)');
        continue;
      }
      if (await tryNative()) return (chosen = { tf, name, skipped });
      skipped.push('native: @tensorflow/tfjs-node is not installed or failed to load');
      continue;
    }
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return (chosen = { tf, name, skipped });
      }
      skipped.push(`${name}: setBackend returned false`);
    } catch (error) {
      skipped.push(`${name}: ${(error as Error).message}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could start: ${skipped.join('; ')}`);
}
