import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { pythonCandidates } from '../src/bench/torch.js';
import { exportCheckpoint, importSafetensors } from '../src/interchange/hf-gpt2.js';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from '../src/interchange/safetensors.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { GPT } from '../src/model/gpt.js';
import { tidyValues } from '../src/model/read.js';
import { BOS } from '../src/tokenizer/vocab.js';
import { Rng } from '../src/util/rng.js';
import { DOMAIN_LEXICON } from '../src/world/lexicon.js';
import { capitalize } from '../src/world/phrasebook.js';
import { testBackends, use } from './helpers/backends.js';
import { isOneLineError, ROOT, runScript } from './helpers/cli.js';
import { saveTinyCheckpoint } from './helpers/tiny-checkpoint.js';
import { worldVocabulary } from '../src/world/lexicon-strings.js';

const root = mkdtempSync(join(tmpdir(), 'persona-interchange-'));
after(() => rmSync(root, { recursive: true, force: true }));

const ckpt = join(root, 'ckpt');
saveTinyCheckpoint(ckpt, 'interchange');
const exported = join(root, 'hf', 'model.safetensors');

test('export writes GPT-2 names, Conv1D layout, a tied head, a GPT-2 config and the vocabulary map; import gives the checkpoint back bit for bit', () => {
  const e = runScript('export', ['--checkpoint', ckpt, '--out', exported]);
  assert.equal(e.status, 0, e.stderr);
  const file = readSafetensors(exported);
  assert.deepEqual(file.metadata, { format: 'pt' });
  const C = 32;
  assert.deepEqual(file.tensors.get('transformer.wte.weight')!.shape, [worldVocabulary().size, C]);
  assert.deepEqual(file.tensors.get('transformer.wpe.weight')!.shape, [32, C]);
  assert.deepEqual(file.tensors.get('transformer.h.1.attn.c_attn.weight')!.shape, [C, 3 * C]);
  assert.deepEqual(file.tensors.get('transformer.h.0.mlp.c_fc.weight')!.shape, [C, 4 * C]);
  assert.deepEqual(file.tensors.get('transformer.h.0.mlp.c_proj.weight')!.shape, [4 * C, C]);
  assert.ok(file.tensors.has('transformer.ln_f.bias') && file.tensors.has('transformer.h.1.ln_2.weight'));
  assert.ok(!file.tensors.has('lm_head.weight'), 'the tied head is left out, as save_pretrained does');
  const config = JSON.parse(readFileSync(join(root, 'hf', 'config.json'), 'utf8'));
  assert.equal(config.model_type, 'gpt2');
  assert.equal(config.activation_function, 'gelu_new');
  assert.equal(config.layer_norm_epsilon, 1e-5);
  assert.equal(config.tie_word_embeddings, true);
  assert.deepEqual([config.n_layer, config.n_head, config.n_embd, config.n_positions], [2, 2, 32, 32]);
  const map = JSON.parse(readFileSync(join(root, 'hf', 'vocab_map.json'), 'utf8'));
  assert.deepEqual(map.specials, { '<|pad|>': 0, '<|bos|>': 1, '<|eos|>': 2 });
  const vocab = worldVocabulary();
  assert.equal(map.cl100k.length, vocab.size);
  assert.equal(map.cl100k[3], vocab.bpe[0]);
  const word = vocab.decode([vocab.size - 1]);
  assert.equal(map.strings[vocab.size - 1], word);

  const back = join(root, 'imported');
  const i = runScript('import', ['--from-safetensors', exported, '--out', back]);
  assert.equal(i.status, 0, i.stderr);
  for (const f of ['weights.bin', 'vocab.json']) assert.ok(readFileSync(join(ckpt, f)).equals(readFileSync(join(back, f))), `${f} is bit-identical`);
  const a = loadCheckpoint(ckpt);
  const b = loadCheckpoint(back);
  assert.deepEqual(b.config.model, a.config.model);
  assert.equal(b.config.stage, 'assistant');
  assert.equal(b.config.vocab_hash, a.config.vocab_hash);
  const again = join(root, 'again', 'model.safetensors');
  assert.equal(runScript('export', ['--checkpoint', back, '--out', again]).status, 0);
  assert.ok(readFileSync(again).equals(readFileSync(exported)), 'export -> import -> export gives the same file');
});

test('safetensors: the reader checks the layout, converts half floats, and bad input is a one-line error', () => {
  const bytes = encodeSafetensors(new Map([['b', { shape: [2], values: Float32Array.of(1, -2) }], ['a', { shape: [1, 1], values: Float32Array.of(0.5) }]]), { format: 'pt' });
  const view = new DataView(bytes.buffer);
  const n = Number(view.getBigUint64(0, true));
  assert.equal(n % 8, 0, 'the header is padded to 8 bytes');
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString());
  assert.deepEqual(header.a, { dtype: 'F32', shape: [1, 1], data_offsets: [0, 4] });
  assert.deepEqual([...decodeSafetensors(bytes).tensors.get('b')!.values], [1, -2]);
  assert.throws(() => decodeSafetensors(bytes.subarray(0, bytes.length - 4)), /valid safetensors/);
  // F16 and BF16 read as float32: 1.5 is 0x3e00 in F16 and 0x3fc0 in BF16.
  const half = (dtype: string, bits: number) => {
    const h = Buffer.from(JSON.stringify({ x: { dtype, shape: [1], data_offsets: [0, 2] } }));
    const out = Buffer.alloc(8 + h.length + 2);
    out.writeBigUInt64LE(BigInt(h.length));
    h.copy(out, 8);
    out.writeUInt16LE(bits, 8 + h.length);
    return decodeSafetensors(out).tensors.get('x')!.values[0];
  };
  assert.equal(half('F16', 0x3e00), 1.5);
  assert.equal(half('BF16', 0x3fc0), 1.5);

  writeFileSync(join(root, 'junk.safetensors'), 'not a tensor file at all');
  const r = runScript('import', ['--from', join(root, 'junk.safetensors'), '--out', join(root, 'x')]);
  assert.ok(isOneLineError(r), r.stderr);
  assert.match(r.stderr, /not a valid safetensors file/);
  assert.throws(() => importSafetensors(join(root, 'missing.safetensors'), join(root, 'x')), /does not exist/);
  assert.throws(() => exportCheckpoint(join(root, 'nope'), join(root, 'x.safetensors')), /does not exist/);
  assert.throws(() => exportCheckpoint(ckpt, join(root, 'x.bin')), /must name a \.safetensors file/);
  // A head that is not the embedding, or an architecture the project does not run, is refused.
  const tensors = new Map([...readSafetensors(exported).tensors].map(([k, v]) => [k, { shape: v.shape, values: v.values }]));
  const wte = tensors.get('transformer.wte.weight')!;
  const untied = join(root, 'untied', 'model.safetensors');
  writeSafetensors(untied, new Map([...tensors, ['lm_head.weight', { shape: wte.shape, values: wte.values.map((x) => x + 1) }]]));
  const opts = { config: join(root, 'hf', 'config.json'), vocab: join(root, 'hf', 'vocab_map.json') };
  assert.throws(() => importSafetensors(untied, join(root, 'x'), opts), /lm_head\.weight differs/);
  const relu = join(root, 'relu.json');
  writeFileSync(relu, JSON.stringify({ ...JSON.parse(readFileSync(opts.config, 'utf8')), activation_function: 'relu' }));
  assert.throws(() => importSafetensors(exported, join(root, 'x'), { ...opts, config: relu }), /activation_function "relu"/);
});

/** The first python3 that imports torch, or null. */
function torchPython(): string | null {
  for (const python of pythonCandidates()) {
    const r = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8', timeout: 120_000 });
    if (r.status === 0) return python;
  }
  return null;
}

test('PyTorch: a GPT-2 written from the safetensors names alone gives the project\'s logits within 1e-4', async (t) => {
  const python = torchPython();
  if (!python) {
    t.skip('PyTorch is not installed (apt-get install python3-torch, or set PERSONA_PYTHON): the exported model was not checked against PyTorch');
    return;
  }
  const ck = loadCheckpoint(ckpt);
  const vocab = ck.vocab;
  const rng = new Rng('ids');
  const seqs = [
    [BOS, ...vocab.encode(`User: ${capitalize(DOMAIN_LEXICON.greed.situations[0])}. ${capitalize(DOMAIN_LEXICON.greed.questions[0])}?\nAssistant:`)],
    Array.from({ length: ck.config.model.block_size }, () => 3 + rng.int(vocab.size - 3)),
  ];
  const out = join(root, 'torch-logits.f32');
  const r = spawnSync(python, [join(ROOT, 'src/interchange/gpt2_torch.py'), exported, '--out', out], { input: JSON.stringify(seqs), encoding: 'utf8', timeout: 600_000 });
  assert.equal(r.status, 0, r.stderr);
  const theirs = new Float32Array(new Uint8Array(readFileSync(out)).buffer);
  const V = ck.config.model.vocab_size;
  assert.equal(theirs.length, seqs.reduce((a, s) => a + s.length, 0) * V);
  for (const backend of testBackends()) {
    await use(backend);
    const model = new GPT(ck.config.model, ck.weights);
    let maxDiff = 0;
    let maxAbs = 0;
    let row = 0;
    for (const s of seqs) {
      const ours = tidyValues(() => model.forward(tf.tensor2d([s], [1, s.length], 'int32')).logits);
      for (let i = 0; i < ours.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(ours[i] - theirs[row * V + i]));
        maxAbs = Math.max(maxAbs, Math.abs(ours[i]));
      }
      row += s.length;
    }
    model.dispose();
    t.diagnostic(`${backend}: max |logit difference| ${maxDiff.toExponential(2)} (logits up to ${maxAbs.toFixed(2)}; ${JSON.parse(r.stdout.trim()).torch})`);
    assert.ok(maxAbs > 1, 'the logits are not trivially small');
    assert.ok(maxDiff < 1e-4, `${backend}: logits differ by ${maxDiff}`);
  }
});
