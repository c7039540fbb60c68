import type { LayersModel } from '@tensorflow/tfjs';
import type { Tf } from './backend.js';
import type { CheckpointContent } from './checkpoint.js';
import { withFusedLstm } from './fused/index.js';
// Registers custom activations (exponential) so a saved model using them deserializes.
import './activations.js';

/** tfjs model → checkpoint content (topology JSON + one weights blob), through an in-memory save handler. */
export async function modelToContent(tf: Tf, model: LayersModel, meta: Record<string, unknown>): Promise<CheckpointContent> {
  let content: CheckpointContent | null = null;
  await model.save(
    // eslint-disable-next-line @typescript-eslint/require-await -- tfjs wants a save handler that returns a promise
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      content = { modelTopology: artifacts.modelTopology, weightSpecs: artifacts.weightSpecs ?? [], weightData, meta };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return content!;
}

/** The inverse: a model that loads in plain tfjs (and Keras via the converter), since it is tfjs's own format. */
export async function modelFromContent(tf: Tf, content: CheckpointContent, options: { fusedLstm?: boolean } = {}): Promise<LayersModel> {
  const loaded = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: content.modelTopology as object,
      weightSpecs: content.weightSpecs as Parameters<typeof tf.io.fromMemory>[0] extends { weightSpecs?: infer W } ? W : never,
      weightData: content.weightData,
    }),
  );
  if (!options.fusedLstm) return loaded;
  // tfjs always rebuilds stock LSTM layers; the fused twin takes over their weights (same layout).
  const fused = withFusedLstm(tf, loaded);
  if (fused !== loaded) loaded.dispose();
  return fused;
}
