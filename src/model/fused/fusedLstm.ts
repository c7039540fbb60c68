/**
 * A Keras LSTM layer whose whole sequence, forward and backward (backpropagation through time), runs in one
 * WebAssembly call each (kernel.ts) instead of tfjs-layers' thousands of small kernels per batch.
 *
 * It *is* a tfjs `LSTM`: a subclass that only replaces `call()`. Weights (kernel [in, 4u], recurrent_kernel
 * [u, 4u], bias [4u], gates i, f, c, o), their names, getConfig() and the class name 'LSTM' are tfjs's own, so a
 * model trained with it saves as a plain LSTM and loads anywhere tfjs or Keras loads one, and a stock model's
 * weights load into it. Anything the fused path does not cover (masks, initial or returned states, stateful,
 * goBackwards, dropout while training, an unknown activation) falls back to tfjs's cell, step by step.
 */
import type { LayersModel, LayerVariable, LSTMLayerArgs, Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../backend.js';
import { activationCode } from './activations.js';
import { lstmKernel, LstmSequenceState, type LstmOptions, type LstmShape } from './kernel.js';

type LstmLayer = ReturnType<Tf['layers']['lstm']>;
type LstmConstructor = new (args: LSTMLayerArgs) => LstmLayer;
type CallKwargs = Parameters<LstmLayer['call']>[1];

/** The parts of tfjs's LSTMCell the fused path reads (public fields of the JS class, not in its typings). */
interface LstmCellFields {
  units: number;
  kernel: LayerVariable;
  recurrentKernel: LayerVariable;
  bias: LayerVariable | null;
  useBias: boolean;
  activation: { getClassName(): string };
  recurrentActivation: { getClassName(): string };
  dropout: number;
  recurrentDropout: number;
}

export type FusedLstmLayer = LstmLayer & {
  /** Whether the last call() took the fused path (false: it fell back to tfjs's cell). */
  readonly lastCallFused: boolean;
};

export type FusedLstmClass = new (args: LSTMLayerArgs) => FusedLstmLayer;

const floats = (tensor: Tensor) => tensor.dataSync() as Float32Array;

const classes = new WeakMap<object, FusedLstmClass>();

/** The fused class for this tfjs instance (it subclasses that instance's registered LSTM). */
export function fusedLstmClass(tf: Tf): FusedLstmClass {
  const cached = classes.get(tf.serialization);
  if (cached) return cached;
  const registered = tf.serialization.SerializationMap.getMap().classNameMap['LSTM'];
  if (!registered) throw new Error('tfjs-layers has no LSTM class registered');
  const Base = registered[0] as unknown as LstmConstructor;
  const released = new FinalizationRegistry<LstmSequenceState>((state) => state.release());

  class FusedLSTM extends Base {
    // className stays LSTM (inherited static): the topology says 'LSTM', and stock tfjs loads it.
    private sequenceState: LstmSequenceState | null = null;
    private fusedLastCall = false;
    private readonly gradientOps = new Map<boolean, (...args: Tensor[]) => Tensor>();

    get lastCallFused(): boolean {
      return this.fusedLastCall;
    }

    private get lstmCell(): LstmCellFields {
      return this.cell as unknown as LstmCellFields;
    }

    /** Activation codes and output layout when the fused path applies to this call, else null. */
    private fusedOptions(inputs: Tensor | Tensor[], kwargs: CallKwargs): LstmOptions | null {
      const cell = this.lstmCell;
      if (this.stateful || this.goBackwards || this.returnState) return null;
      if (kwargs?.['mask'] != null || kwargs?.['initialState'] != null) return null;
      if (Array.isArray(inputs) && inputs.length !== 1) return null;
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      if (x.rank !== 3 || x.dtype !== 'float32') return null;
      if (kwargs?.['training'] === true && (cell.dropout > 0 || cell.recurrentDropout > 0)) return null;
      const activation = activationCode(cell.activation.getClassName());
      const recurrentActivation = activationCode(cell.recurrentActivation.getClassName());
      if (activation === null || recurrentActivation === null) return null;
      return { activation, recurrentActivation, returnSequences: this.returnSequences };
    }

    override call(inputs: Tensor | Tensor[], kwargs: CallKwargs): Tensor | Tensor[] {
      const options = this.fusedOptions(inputs, kwargs);
      this.fusedLastCall = options !== null;
      if (!options) return super.call(inputs, kwargs);
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const cell = this.lstmCell;
      const kernel = cell.kernel.read();
      const recurrent = cell.recurrentKernel.read();
      const bias = cell.useBias && cell.bias ? cell.bias.read() : null;
      // Off the gradient tape (predict, evaluate) nothing needs keeping for a backward pass.
      if (!tf.engine().isTapeOn()) return this.fusedInfer(x, kernel, recurrent, bias, options);
      const op = this.gradientOp(bias !== null, options);
      return bias ? op(x, kernel, recurrent, bias) : op(x, kernel, recurrent);
    }

    private fusedShape(x: Tensor): LstmShape {
      const [batch, steps, inputs] = x.shape as [number, number, number];
      return { batch, steps, inputs, units: this.lstmCell.units };
    }

    private fusedOutputShape(shape: LstmShape): number[] {
      return this.returnSequences ? [shape.batch, shape.steps, shape.units] : [shape.batch, shape.units];
    }

    private fusedInfer(x: Tensor, kernel: Tensor, recurrent: Tensor, bias: Tensor | null, options: LstmOptions): Tensor {
      const shape = this.fusedShape(x);
      const output = lstmKernel().infer(
        shape,
        floats(x),
        { kernel: floats(kernel), recurrent: floats(recurrent), bias: bias ? floats(bias) : null },
        options,
      );
      return tf.tensor(output, this.fusedOutputShape(shape), 'float32');
    }

    private fusedState(): LstmSequenceState {
      if (!this.sequenceState) {
        this.sequenceState = new LstmSequenceState(lstmKernel());
        released.register(this, this.sequenceState, this);
      }
      return this.sequenceState;
    }

    /**
     * One tape node for the whole sequence: the forward pass keeps its activations in the kernel's memory, the
     * backward pass returns the gradients of the input and of each weight. Options are fixed per layer.
     */
    private gradientOp(withBias: boolean, options: LstmOptions): (...args: Tensor[]) => Tensor {
      const existing = this.gradientOps.get(withBias);
      if (existing) return existing;
      const op = tf.customGrad((...args: unknown[]) => {
        const tensors = args.slice(0, withBias ? 4 : 3) as Tensor[];
        const save = args[args.length - 1] as (saved: Tensor[]) => void;
        const [x, kernel, recurrent, bias] = tensors;
        const shape = this.fusedShape(x);
        const state = this.fusedState();
        const forward = (inputs: Tensor[]) =>
          state.forward(
            shape,
            floats(inputs[0]),
            { kernel: floats(inputs[1]), recurrent: floats(inputs[2]), bias: withBias ? floats(inputs[3]) : null },
            options,
          );
        const output = forward(tensors);
        const generation = state.generation;
        save(tensors);
        return {
          value: tf.tensor(output, this.fusedOutputShape(shape), 'float32'),
          gradFunc: (dy: Tensor, saved: Tensor[]) => {
            // Another forward pass of this layer since ours (the layer applied twice under one tape): redo ours
            // from the saved inputs (the originals may be gone with the scope that made them).
            if (state.generation !== generation) forward(saved);
            const gradients = state.backward(floats(dy), withBias, true);
            const result = [
              tf.tensor(gradients.input!, x.shape, 'float32'),
              tf.tensor(gradients.kernel, kernel.shape, 'float32'),
              tf.tensor(gradients.recurrent, recurrent.shape, 'float32'),
            ];
            if (withBias) result.push(tf.tensor(gradients.bias!, bias.shape, 'float32'));
            return result;
          },
        };
      });
      this.gradientOps.set(withBias, op);
      return op;
    }

    override dispose() {
      const result = super.dispose();
      if (result.refCountAfterDispose === 0 && this.sequenceState) {
        released.unregister(this);
        this.sequenceState.release();
        this.sequenceState = null;
      }
      return result;
    }
  }

  const fused = FusedLSTM as unknown as FusedLstmClass;
  classes.set(tf.serialization, fused);
  return fused;
}

/**
 * A fused LSTM layer for `tf.sequential().add(...)`, taking tfjs's LSTM arguments. Pass Keras's defaults
 * explicitly (recurrentActivation 'sigmoid', unitForgetBias true, glorotUniform): like tf.layers.lstm, it keeps
 * tfjs's own defaults otherwise.
 */
export function fusedLstmLayer(tf: Tf, args: LSTMLayerArgs): FusedLstmLayer {
  return new (fusedLstmClass(tf))(args);
}

/** Which LSTM implementation the model builder uses: `auto` fuses on wasm and cpu, keeps tfjs's on native. */
export const LSTM_IMPLEMENTATIONS = ['auto', 'fused', 'stock'] as const;
export type LstmImplementation = (typeof LSTM_IMPLEMENTATIONS)[number];

/**
 * Whether to build fused LSTMs. On the native backend libtensorflow runs the stock layer's kernels natively and
 * the per-kernel overhead that the fused layer removes is small there, so `auto` leaves it alone.
 */
export function useFusedLstm(backend: string, implementation: LstmImplementation = 'auto'): boolean {
  if (implementation !== 'auto') return implementation === 'fused';
  return backend === 'wasm' || backend === 'cpu';
}

/**
 * The same Sequential model with every LSTM layer fused, sharing the weights (no copy): for a model loaded with
 * tf.loadLayersModel, which builds stock layers. Models that are not Sequential, or have no LSTM, come back as
 * they are.
 */
export function withFusedLstm(tf: Tf, model: LayersModel): LayersModel {
  if (model.getClassName() !== 'Sequential' || !model.layers.some((layer) => layer.getClassName() === 'LSTM')) return model;
  const Fused = fusedLstmClass(tf);
  const classNameMap = tf.serialization.SerializationMap.getMap().classNameMap;
  const layers = model.layers.map((layer) => {
    const className = layer.getClassName();
    const config = layer.getConfig();
    if (className === 'LSTM') return new Fused(config as unknown as LSTMLayerArgs);
    const entry = classNameMap[className];
    if (!entry) throw new Error(`withFusedLstm: no registered class for layer ${layer.name} (${className})`);
    const [cls, fromConfig] = entry;
    return fromConfig(cls, config) as unknown as ReturnType<Tf['layers']['dense']>;
  });
  // Skip the initializers (the orthogonal one is slow): every weight is overwritten right after.
  for (const layer of layers) layer.setFastWeightInitDuringBuild(true);
  const fused = tf.sequential({ layers, name: model.name });
  fused.setWeights(model.getWeights());
  return fused;
}
