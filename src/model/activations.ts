/**
 * Activations Keras has and tfjs-layers 4.x lacks, registered under their Keras names so that
 * `activation: 'exponential'` resolves in tfjs's `getActivation` and a saved model reloads.
 *
 * tfjs-layers looks activation names up in tfjs-core's serialization class map; its own `Activation`
 * base class is not exported, so these extend `Serializable` and provide the same `apply`/`getConfig`.
 * Importing this module registers them (sequential.ts and serialize.ts import it, before any build/load).
 * The fused LSTM has no code for these names (src/model/fused/activations.ts), so it falls back to tfjs's cell.
 */
import * as tf from '@tensorflow/tfjs';

/** Keras `exponential(x) = exp(x)`. */
export class Exponential extends tf.serialization.Serializable {
  static className = 'exponential';
  apply(x: tf.Tensor): tf.Tensor {
    return tf.exp(x);
  }
  getConfig(): tf.serialization.ConfigDict {
    return {};
  }
}
tf.serialization.registerClass(Exponential);

/** Names added here, on top of tfjs's own. */
export const EXTRA_ACTIVATIONS = ['exponential'] as const;
