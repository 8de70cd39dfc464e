import { CHECKPOINT_FORMAT, saveCheckpoint } from '../../src/model/checkpoint.js';
import { loadModelPreset } from '../../src/model/model-config.js';
import { parameterShapes } from '../../src/model/gpt.js';
import { Rng } from '../../src/util/rng.js';
import { worldVocabulary } from '../../src/world/lexicon-strings.js';

/**
 * A `tiny` checkpoint on the world's vocabulary, without data or training, whose every tensor is
 * random (LayerNorm gains and biases too, so a misplaced tensor shows).
 */
export function saveTinyCheckpoint(dir: string, seed = 'tiny', std = 0.2): void {
  const vocab = worldVocabulary();
  const model = { ...loadModelPreset('tiny'), vocab_size: vocab.size };
  const rng = new Rng(seed);
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of parameterShapes(model)) {
    const w = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const gain = name.includes('ln_') && name.endsWith('.weight');
    for (let i = 0; i < w.length; i++) w[i] = (gain ? 1 : 0) + std * rng.normal();
    weights.set(name, w);
  }
  saveCheckpoint(dir, {
    config: { format: CHECKPOINT_FORMAT, stage: 'assistant', model, vocab_hash: vocab.hash, train: {}, data: `${dir}-no-data`, parent: null, info: { world: 'test' } },
    vocab, weights, optimizer: null, adapters: null, state: {}, metrics: null,
  });
}
