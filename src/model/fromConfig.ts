import type { ForecastConfig } from '../config/schema.js';
import { Sequential, type LayerSpec } from './sequential.js';

/**
 * The Sequential stack a forecast's config describes, with the input shape on the first layer and the
 * Keras-style default for returnSequences: true when another LSTM follows (what users otherwise forget).
 */
export function modelSpecFor(forecast: ForecastConfig, featureCount: number): Sequential {
  const layers = forecast.layers.map((layer, index): LayerSpec => {
    const inputShape = index === 0 ? ([forecast.steps, featureCount] as [number, number]) : undefined;
    if (layer.type === 'dense') {
      return {
        type: 'dense',
        units: layer.units ?? forecast.horizon,
        activation: layer.activation,
        useBias: layer.useBias,
        ...(inputShape && { inputShape }),
      };
    }
    const nextIsLstm = forecast.layers[index + 1]?.type === 'lstm';
    return {
      type: 'lstm',
      units: layer.units,
      activation: layer.activation,
      recurrentActivation: layer.recurrentActivation,
      returnSequences: layer.returnSequences ?? nextIsLstm,
      dropout: layer.dropout,
      recurrentDropout: layer.recurrentDropout,
      ...(inputShape && { inputShape }),
    };
  });
  return new Sequential(layers);
}
