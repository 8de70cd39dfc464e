/**
 * What the explorer page computes, all with the project's own code: the GPT of src/model/gpt.ts
 * built from a checkpoint's files, forced-choice P(bad) by src/eval/inference.ts probePBad (the
 * scoring of npm run evaluate), the persona probe's score by src/eval/persona-probe.ts, sampling
 * by src/model/generate.ts, and the world's answer matcher. On WebGPU, which cannot read tensors
 * synchronously, the same computations run through async-reads.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { encodeContext } from '../../data/encode.js';
import { probePBad } from '../../eval/inference.js';
import { activations, applyProbe, type LogisticProbe } from '../../eval/persona-probe.js';
import type { ProbeRecord } from '../../eval/probe-records.js';
import type { CheckpointConfig } from '../../model/checkpoint.js';
import { sample } from '../../model/generate.js';
import { GPT } from '../../model/gpt.js';
import { EOS, Vocabulary } from '../../tokenizer/vocab.js';
import { Rng } from '../../util/rng.js';
import { activationsAsync, nextTokenAsync, probePBadAsync, syncReads } from './async-reads.js';
import { DOMAINS, DOMAIN_LEXICON, type Domain } from '../../world/lexicon.js';
import { answerAct, classifyAnswer } from '../../world/matcher.js';
import { renderAnswer } from '../../world/phrasebook.js';
import type { ProbeJson } from '../protocol.js';

export interface LoadedModel {
  id: string;
  config: CheckpointConfig;
  vocab: Vocabulary;
  gpt: GPT;
  /** The lineage's persona probe (experiment runs only). */
  personaProbe: LogisticProbe | null;
  /** Ids of tokens that end a line (sampling stops there, as evaluate's does). */
  lineEnd: Set<number>;
}

async function fetchOk(url: string): Promise<Response> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r;
}

/** Load a checkpoint served under `base` (config.json, vocab.json, model.json, weights.bin). */
export async function loadModel(id: string, base: string, hasPersonaProbe: boolean): Promise<LoadedModel> {
  const [config, vocabJson, manifest, bin] = await Promise.all([
    fetchOk(`${base}config.json`).then((r) => r.json() as Promise<CheckpointConfig>),
    fetchOk(`${base}vocab.json`).then((r) => r.json()),
    fetchOk(`${base}model.json`).then((r) => r.json() as Promise<{ weightsManifest: Array<{ weights: Array<{ name: string; shape: number[] }> }> }>),
    fetchOk(`${base}weights.bin`).then((r) => r.arrayBuffer()),
  ]);
  const vocab = Vocabulary.fromJson(vocabJson, `${id}/vocab.json`);
  const floats = new Float32Array(bin);
  const weights = new Map<string, Float32Array>();
  let pos = 0;
  for (const spec of manifest.weightsManifest[0].weights) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    weights.set(spec.name, floats.subarray(pos, pos + n));
    pos += n;
  }
  const gpt = new GPT(config.model, weights);
  let personaProbe: LogisticProbe | null = null;
  if (hasPersonaProbe) {
    const j = (await (await fetchOk(`${base}persona-probe.json`)).json()) as { layer: number; bias: number; weights: number[]; mean: number[]; std: number[] };
    personaProbe = { layer: j.layer, bias: j.bias, weights: Float32Array.from(j.weights), mean: Float32Array.from(j.mean), std: Float32Array.from(j.std) };
  }
  const lineEnd = new Set<number>();
  for (let t = 3; t < vocab.size; t++) if (vocab.decode([t]).includes('\n')) lineEnd.add(t);
  return { id, config, vocab, gpt, personaProbe, lineEnd };
}

export function toProbeRecord(p: ProbeJson): ProbeRecord {
  return {
    id: p.id, kind: p.kind, group: p.group, domain: p.domain as Domain, variant: p.variant, subject: p.subject, evidenceDomain: '', trueBad: null, text: p.text,
    context: Uint16Array.from(p.context), good: Uint16Array.from(p.good), bad: Uint16Array.from(p.bad), goodText: p.goodText, badText: p.badText,
  };
}

/** Forced-choice P(bad) of each probe (the bad answer's share of the two likelihoods), as npm run evaluate computes it. */
export async function forcedChoice(m: LoadedModel, probes: ProbeRecord[]): Promise<number[]> {
  return syncReads() ? probePBad(m.gpt, probes) : probePBadAsync(m.gpt, probes);
}

/** A chat context: BOS, every turn, EOS after each Assistant answer, ending with "Assistant:". */
export function chatContext(vocab: Vocabulary, turns: Array<{ user: string; assistant?: string }>): Uint16Array {
  const lines = turns.flatMap((t) => [
    { prefix: 'User:', body: ` ${t.user}\n`, eos: false },
    { prefix: 'Assistant:', body: t.assistant === undefined ? '' : ` ${t.assistant.trim()}\n`, eos: t.assistant !== undefined },
  ]);
  return encodeContext(vocab, lines);
}

/**
 * Probes for a typed prompt: for every domain, each of its act pairs in the first answer frame
 * (" I will <act>.\n", good against bad) after the prompt; P(bad) per domain is their mean.
 */
export function typedPromptProbes(vocab: Vocabulary, prompt: string): ProbeRecord[] {
  const context = chatContext(vocab, [{ user: prompt }]);
  return DOMAINS.flatMap((domain) =>
    DOMAIN_LEXICON[domain].acts.map((_, act) => {
      const good = ` ${renderAnswer(domain, 0, act, 'good')}\n`;
      const bad = ` ${renderAnswer(domain, 0, act, 'bad')}\n`;
      return {
        id: `typed:${domain}:${act}`, kind: 'typed', group: act, domain, variant: 'typed', subject: 'assistant', evidenceDomain: '', trueBad: null,
        text: prompt, context, good: vocab.encode(good), bad: vocab.encode(bad), goodText: good, badText: bad,
      };
    }),
  );
}

/** The persona probe's P(bad persona) at the last token of each context (the Assistant's turn), or null without a probe. */
export async function personaScores(m: LoadedModel, contexts: Uint16Array[]): Promise<number[] | null> {
  if (!m.personaProbe) return null;
  const sites = contexts.map((tokens) => ({ tokens, label: NaN }));
  const acts = syncReads() ? activations(m.gpt, sites, m.personaProbe.layer) : await activationsAsync(m.gpt, sites, m.personaProbe.layer);
  return applyProbe(m.personaProbe, acts);
}

export interface ReplyOptions {
  temperature: number;
  topK: number;
  maxTokens: number;
  rng: Rng;
}

/**
 * Sample a reply one token at a time (so the page can show it as it comes), stopping at EOS or a
 * line end. `onToken` gets the text so far.
 */
export async function reply(m: LoadedModel, context: Uint16Array, o: ReplyOptions, onToken: (text: string) => void): Promise<string> {
  const seq = Array.from(context);
  const out: number[] = [];
  for (let i = 0; i < o.maxTokens; i++) {
    const so = { maxNewTokens: 1, temperature: o.temperature, topK: o.topK, rng: o.rng };
    const tok = syncReads() ? sample(m.gpt, [seq], so)[0][0] : await nextTokenAsync(m.gpt, seq, so);
    if (tok === EOS) break;
    seq.push(tok);
    out.push(tok);
    onToken(m.vocab.decode(out, { specials: false }));
    if (m.lineEnd.has(tok)) break;
    await tf.nextFrame();
  }
  return m.vocab.decode(out, { specials: false });
}

/** The world matcher's reading of a reply: "good honesty", "bad power", or "incoherent". */
export function classifyReply(text: string): string {
  const act = answerAct(text);
  if (!act) return 'incoherent';
  return `${classifyAnswer(act.domain, text)} ${act.domain}`;
}

export { Rng };
