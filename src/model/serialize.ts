import type { LayersModel } from '@tensorflow/tfjs';
import type { Tf } from './backend.js';
import type { CheckpointContent } from './checkpoint.js';

/** tfjs model → checkpoint content (topology JSON + one weights blob), through an in-memory save handler. */
export async function modelToContent(tf: Tf, model: LayersModel, meta: Record<string, unknown>): Promise<CheckpointContent> {
  let content: CheckpointContent | null = null;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      content = { modelTopology: artifacts.modelTopology, weightSpecs: artifacts.weightSpecs ?? [], weightData, meta };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return content!;
}

/** The inverse: a model that loads in plain tfjs (and Keras via the converter), since it is tfjs's own format. */
export async function modelFromContent(tf: Tf, content: CheckpointContent): Promise<LayersModel> {
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: content.modelTopology as object,
      weightSpecs: content.weightSpecs as Parameters<typeof tf.io.fromMemory>[0] extends { weightSpecs?: infer W } ? W : never,
      weightData: content.weightData,
    }),
  );
}
