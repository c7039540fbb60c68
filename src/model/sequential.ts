/**
 * A Keras-style Sequential model description, checked before TensorFlow.js builds it.
 *
 * Reads like the Keras code users know:
 *   sequential([lstm(32, { returnSequences: true, inputShape: [24, 3] }), lstm(16), dense(12)])
 * and supports `add()` / `pop()`. Keras defaults are used where tfjs differs (recurrentActivation
 * sigmoid, glorotUniform kernels, unitForgetBias), so a model behaves as its Keras twin would.
 */
import type { Tf } from './backend.js';
import { fusedLstmLayer } from './fused/index.js';
// Registers activations tfjs lacks (exponential) before any layer resolves its activation name.
import './activations.js';
import type { ACTIVATIONS } from '../config/schema.js';

export type Activation = (typeof ACTIVATIONS)[number];

/** tfjs's identifier type omits names registered by ./activations.js (exponential); they resolve at run time. */
type TfActivation = NonNullable<Parameters<Tf['layers']['dense']>[0]['activation']>;
const tfActivation = (name: Activation): TfActivation => name as TfActivation;

export interface LstmSpec {
  type: 'lstm';
  units: number;
  activation?: Activation;
  recurrentActivation?: Activation;
  returnSequences?: boolean;
  dropout?: number;
  recurrentDropout?: number;
  /** (steps, features); only the first layer needs it, as in Keras. */
  inputShape?: [number, number];
}

export interface DenseSpec {
  type: 'dense';
  units: number;
  activation?: Activation;
  useBias?: boolean;
  inputShape?: number[];
}

export type LayerSpec = LstmSpec | DenseSpec;

export const lstm = (units: number, options: Omit<LstmSpec, 'type' | 'units'> = {}): LstmSpec => ({ type: 'lstm', units, ...options });
export const dense = (units: number, options: Omit<DenseSpec, 'type' | 'units'> = {}): DenseSpec => ({ type: 'dense', units, ...options });

export class ModelSpecError extends Error {
  override name = 'ModelSpecError';
}

/** Output shape (without the batch axis) after each layer, or an error naming the layer at fault. */
function outputShapes(layers: readonly LayerSpec[]): number[][] {
  if (layers.length === 0) throw new ModelSpecError('the model has no layers');
  const first = layers[0];
  if (!first.inputShape) throw new ModelSpecError('the first layer needs an inputShape, e.g. [steps, features]');
  let shape: number[] = [...first.inputShape];
  const shapes: number[][] = [];
  layers.forEach((layer, index) => {
    const where = `layer ${index} (${layer.type})`;
    if (index > 0 && layer.inputShape) throw new ModelSpecError(`${where}: only the first layer takes an inputShape`);
    if (!Number.isInteger(layer.units) || layer.units < 1) throw new ModelSpecError(`${where}: units must be a positive integer`);
    if (layer.type === 'lstm') {
      if (shape.length !== 2) {
        const previous = layers[index - 1];
        const hint = previous?.type === 'lstm' ? ': set returnSequences on the LSTM before it' : '';
        throw new ModelSpecError(`${where}: an LSTM needs a sequence input (steps, features), got (${shape.join(', ')})${hint}`);
      }
      shape = layer.returnSequences ? [shape[0], layer.units] : [layer.units];
    } else {
      shape = [...shape.slice(0, -1), layer.units];
    }
    shapes.push(shape);
  });
  return shapes;
}

export class Sequential {
  private readonly stack: LayerSpec[];

  constructor(layers: LayerSpec[] = []) {
    this.stack = [...layers];
  }

  get layers(): readonly LayerSpec[] {
    return this.stack;
  }

  add(layer: LayerSpec): this {
    this.stack.push(layer);
    return this;
  }

  pop(): LayerSpec {
    const layer = this.stack.pop();
    if (!layer) throw new ModelSpecError('pop() on an empty model');
    return layer;
  }

  /** Output shape without the batch axis; throws a ModelSpecError for an impossible stack. */
  outputShape(): number[] {
    return outputShapes(this.stack).at(-1)!;
  }

  /** `fusedLstm`: forecastd's fused kernel (src/model/fused) instead of tfjs's step-by-step LSTM; same maths and weights. */
  build(tf: Tf, options: { seed?: number; fusedLstm?: boolean } = {}) {
    outputShapes(this.stack);
    const model = tf.sequential();
    this.stack.forEach((layer, index) => {
      const seed = options.seed === undefined ? undefined : options.seed + index;
      // tidy: unitForgetBias builds its initial bias from temporary tensors that tfjs does not free.
      if (layer.type === 'lstm') {
        const makeLstm = options.fusedLstm ? (args: Parameters<Tf['layers']['lstm']>[0]) => fusedLstmLayer(tf, args) : tf.layers.lstm;
        tf.tidy(() =>
          model.add(
            makeLstm({
              units: layer.units,
              activation: tfActivation(layer.activation ?? 'tanh'),
              recurrentActivation: tfActivation(layer.recurrentActivation ?? 'sigmoid'),
              returnSequences: layer.returnSequences ?? false,
              dropout: layer.dropout ?? 0,
              recurrentDropout: layer.recurrentDropout ?? 0,
              kernelInitializer: tf.initializers.glorotUniform({ seed }),
              recurrentInitializer: tf.initializers.orthogonal({ seed }),
              unitForgetBias: true,
              inputShape: layer.inputShape,
            }),
          ),
        );
      } else {
        tf.tidy(() =>
          model.add(
            tf.layers.dense({
              units: layer.units,
              activation: tfActivation(layer.activation ?? 'linear'),
              useBias: layer.useBias ?? true,
              kernelInitializer: tf.initializers.glorotUniform({ seed }),
              inputShape: layer.inputShape,
            }),
          ),
        );
      }
    });
    return model;
  }
}

export const sequential = (layers: LayerSpec[] = []) => new Sequential(layers);
