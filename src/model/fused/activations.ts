/**
 * Activation names as tfjs-layers serializes them → the codes lstm.as switches on. An activation missing
 * here is not fused: the layer then runs tfjs's own LSTM cell.
 */
export const ACTIVATION_CODES: Readonly<Record<string, number>> = {
  linear: 0,
  relu: 1,
  tanh: 2,
  sigmoid: 3,
  hardSigmoid: 4,
  softplus: 5,
  softsign: 6,
  selu: 7,
  elu: 8,
};

export function activationCode(name: string): number | null {
  return Object.hasOwn(ACTIVATION_CODES, name) ? ACTIVATION_CODES[name] : null;
}
