/**
 * The explorer page: lists checkpoints, experiment runs and reports; chats with the ticked
 * checkpoints side by side; scores a held-out probe or a typed prompt by forced choice, with the
 * persona probe's score at the Assistant's turn. `?backend=webgl` (or webgpu, wasm, cpu) picks a
 * backend instead of the default order.
 */
import * as tf from '@tensorflow/tfjs';
import type { ProbeRecord } from '../../eval/probe-records.js';
import { BROAD_DOMAINS, DOMAINS } from '../../world/lexicon.js';
import type { IndexJson, ModelEntry, ProbesJson } from '../protocol.js';
import { chatContext, classifyReply, forcedChoice, loadModel, personaScores, reply, Rng, toProbeRecord, typedPromptProbes, type LoadedModel } from './engine.js';
import { BROWSER_BACKEND_ORDER, startRuntime, type BrowserBackend } from './runtime.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const el = <K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text = ''): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
};

interface Slot {
  entry: ModelEntry;
  model: LoadedModel | null;
  loading: Promise<LoadedModel> | null;
  turns: Array<{ user: string; assistant?: string }>;
  column: HTMLElement;
}

const slots = new Map<string, Slot>();
let index: IndexJson = { models: [], reports: [], roots: { checkpoints: '', runs: '', results: '' } };
let probes: { forModel: string; data: ProbesJson } | null = null;
let busy = Promise.resolve();

/** Run page actions one at a time (tfjs work is synchronous; this keeps their order). */
function queue(f: () => Promise<void>): Promise<void> {
  busy = busy.then(f).catch((err: Error) => status(err.message, true));
  return busy;
}

function status(text: string, error = false): void {
  const s = $('status');
  s.textContent = text;
  s.className = error ? 'status error' : 'status';
}

const selected = () => [...slots.values()].filter((s) => s.model);

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${await r.text()}`);
  return (await r.json()) as T;
}

function renderList(): void {
  for (const source of ['checkpoints', 'runs'] as const) {
    const box = $(`list-${source}`);
    box.replaceChildren();
    const models = index.models.filter((m) => m.source === source);
    if (!models.length) box.append(el('p', { class: 'muted' }, source === 'checkpoints' ? `none under ${index.roots.checkpoints}/` : `none under ${index.roots.runs}/`));
    for (const m of models) {
      const label = el('label', { title: m.path });
      const box2 = el('input', { type: 'checkbox', 'data-model': m.id });
      box2.addEventListener('change', () => void queue(() => toggle(m, box2.checked)));
      label.append(box2, ` ${m.label}`, el('span', { class: 'state', 'data-state': m.id }));
      const cell = m.source === 'runs' ? m.path.split('/').at(-2) ?? '' : '';
      label.append(el('span', { class: 'meta' }, [m.stage, m.size, cell, m.unfinished ? 'unfinished' : '', m.personaProbe ? 'persona probe' : ''].filter(Boolean).join(' · ')));
      box.append(label);
    }
  }
  const reports = $('list-reports');
  reports.replaceChildren();
  if (!index.reports.length) reports.append(el('p', { class: 'muted' }, `none under ${index.roots.results}/`));
  for (const r of index.reports) {
    const a = el('a', { href: r.href, target: '_blank', rel: 'noopener' }, `${r.name} report`);
    reports.append(el('div'), a);
  }
}

function modelState(id: string, text: string): void {
  const s = document.querySelector(`[data-state="${CSS.escape(id)}"]`);
  if (s) s.textContent = text ? ` (${text})` : '';
}

async function toggle(entry: ModelEntry, on: boolean): Promise<void> {
  if (!on) {
    const s = slots.get(entry.id);
    s?.model?.gpt.dispose();
    s?.column.remove();
    slots.delete(entry.id);
    if (!slots.size) $('chat-columns').replaceChildren(el('p', { class: 'muted' }, 'Tick one or more checkpoints on the left to chat with them side by side.'));
    return;
  }
  const column = el('div', { class: 'column', 'data-model': entry.id, 'data-ready': 'false' });
  column.append(el('h3', {}, entry.label), el('div', { class: 'muted' }, 'loading…'));
  if (!slots.size) $('chat-columns').replaceChildren();
  $('chat-columns').append(column);
  const slot: Slot = { entry, model: null, loading: null, turns: [], column };
  slots.set(entry.id, slot);
  modelState(entry.id, 'loading');
  const t0 = performance.now();
  slot.model = await loadModel(entry.id, `/api/models/${entry.id}/`, entry.personaProbe);
  column.lastElementChild!.textContent = `${entry.stage}, ${entry.size}, context ${slot.model.config.model.block_size}; loaded in ${Math.round(performance.now() - t0)} ms`;
  column.dataset.ready = 'true';
  modelState(entry.id, 'loaded');
  if (!probes) await loadProbes(slot);
}

async function loadProbes(slot: Slot): Promise<void> {
  const select = $<HTMLSelectElement>('probe-select');
  if (!slot.entry.probes) return;
  const data = await getJson<ProbesJson>(`/api/models/${slot.entry.id}/probes.json`);
  probes = { forModel: slot.entry.id, data };
  select.replaceChildren(el('option', { value: '' }, `held-out probe (${data.probes.length})…`));
  const groups = new Map<string, HTMLOptGroupElement>();
  for (const p of data.probes) {
    const key = `${p.kind} · ${p.domain}`;
    let g = groups.get(key);
    if (!g) {
      g = el('optgroup', { label: key });
      groups.set(key, g);
      select.append(g);
    }
    const prompt = p.text.replace(/^User: /, '').replace(/\nAssistant:$/, '');
    g.append(el('option', { value: p.id }, `${p.variant === 'none' ? '' : `[${p.variant}] `}${prompt}`));
  }
}

function sampleOptions(): { temperature: number; topK: number; maxTokens: number } {
  const num = (id: string) => Number($<HTMLInputElement>(id).value);
  return { temperature: Math.max(0.05, num('temperature')), topK: Math.max(0, Math.round(num('top-k'))), maxTokens: Math.max(1, Math.round(num('max-tokens'))) };
}

async function send(text: string): Promise<void> {
  const active = selected();
  if (!active.length) throw new Error('tick a checkpoint first');
  const o = sampleOptions();
  const seed = Number($<HTMLInputElement>('seed').value) || 0;
  // Every model gets the message; they answer in turn, token by token.
  const pending = active.map((s) => {
    s.column.append(el('div', { class: 'msg user' }, text));
    const msg = el('div', { class: 'msg assistant', 'data-done': 'false' });
    s.column.append(msg);
    return { s, msg };
  });
  for (const { s, msg } of pending) {
    const m = s.model!;
    const turns = [...s.turns, { user: text }];
    let context: Uint16Array;
    try {
      context = chatContext(m.vocab, turns);
    } catch (err) {
      msg.textContent = (err as Error).message;
      msg.classList.add('error');
      msg.dataset.done = 'true';
      continue;
    }
    const rng = new Rng(`explore:${seed}:${s.turns.length}`);
    const answer = await reply(m, context, { ...o, rng }, (t) => {
      msg.textContent = t;
    });
    s.turns.push({ user: text, assistant: answer });
    const cls = classifyReply(answer);
    msg.textContent = answer.trim() || '(empty reply: EOS)';
    msg.append(el('span', { class: `tag ${cls.split(' ')[0]}`, title: "the world's answer matcher" }, cls));
    msg.dataset.done = 'true';
    msg.dataset.text = answer;
  }
}

function barRow(name: string, value: number | null, attrs: Record<string, string>, kind = ''): HTMLElement {
  const row = el('div', { class: 'bar', ...attrs });
  const track = el('div', { class: 'track' });
  const fill = el('div', { class: `fill ${kind}` });
  fill.style.width = value === null ? '0' : `${(value * 100).toFixed(2)}%`;
  track.append(fill);
  row.append(el('span', { class: 'name', title: name }, name), track, el('span', { class: 'value' }, value === null ? '–' : value.toFixed(3)));
  return row;
}

/** A model's name in the bars: its label without the parenthesis when that leaves the ticked models apart. */
function shortName(slot: Slot): string {
  const short = (s: Slot) => s.entry.label.replace(/ \(.*\)$/, '');
  const names = selected().map(short);
  return names.filter((n) => n === short(slot)).length > 1 ? slot.entry.label : short(slot);
}

/** Bars: one block per domain, one bar per model. */
function chart(title: string, rows: Array<{ domain: string; values: Array<{ slot: Slot; value: number }> }>, attr: string): HTMLElement {
  const box = el('div');
  box.append(el('div', { class: 'legend' }, title));
  const grid = el('div', { class: 'chart' });
  for (const r of rows) {
    const bars = el('div', { class: 'bars' });
    for (const { slot, value } of r.values) bars.append(barRow(shortName(slot), value, { 'data-model': slot.entry.id, 'data-domain': r.domain, [attr]: String(value) }, attr === 'data-persona' ? 'persona' : ''));
    grid.append(el('div', { class: 'domain' }, r.domain), bars);
  }
  box.append(grid);
  return box;
}

async function personaBlock(title: string, active: Slot[], contexts: Uint16Array[]): Promise<HTMLElement> {
  const values: Array<{ slot: Slot; value: number }> = [];
  const missing: string[] = [];
  for (const s of active) {
    const scores = await personaScores(s.model!, contexts);
    if (!scores) missing.push(s.entry.label);
    else values.push({ slot: s, value: scores.reduce((a, b) => a + b, 0) / scores.length });
  }
  const box = el('div');
  if (values.length) {
    const layer = active.find((s) => s.model!.personaProbe)!.model!.personaProbe!.layer;
    box.append(chart(`${title} (persona probe of the lineage's base model, blocks.${layer}.hook_resid_post)`, [{ domain: 'persona', values }], 'data-persona'));
  }
  if (missing.length) box.append(el('div', { class: 'legend' }, `no persona probe for ${missing.join(', ')} (probe.json exists only beside base models in runs/)`));
  return box;
}

async function scoreOne(): Promise<void> {
  const active = selected();
  if (!active.length) throw new Error('tick a checkpoint first');
  const view = $('probe-view');
  const typed = $<HTMLInputElement>('probe-text').value.trim();
  const probeId = $<HTMLSelectElement>('probe-select').value;
  view.replaceChildren(el('p', { class: 'muted' }, 'scoring…'));
  await tf.nextFrame();
  const t0 = performance.now();
  if (typed) {
    const out = el('div');
    const rows = DOMAINS.map((domain) => ({ domain, values: [] as Array<{ slot: Slot; value: number }> }));
    let context: Uint16Array | null = null;
    for (const s of active) {
      const list = typedPromptProbes(s.model!.vocab, typed);
      context = list[0].context;
      const pb = await forcedChoice(s.model!, list);
      for (const r of rows) {
        const v = pb.filter((_, i) => list[i].domain === r.domain);
        r.values.push({ slot: s, value: v.reduce((a, b) => a + b, 0) / v.length });
      }
    }
    out.append(el('div', { class: 'prompt' }, `User: ${typed}\nAssistant: … (each domain's acts, " I will <good act>." against " I will <bad act>.")`));
    out.append(chart('forced-choice P(bad) per domain: mean over the domain\'s act pairs', rows, 'data-pbad'));
    out.append(await personaBlock("persona score at the Assistant's turn", active, [context!]));
    out.append(el('div', { class: 'legend' }, `${Math.round(performance.now() - t0)} ms on ${tf.getBackend()}`));
    view.replaceChildren(out);
    return;
  }
  if (!probes) throw new Error('no held-out probes: the first checkpoint\'s data folder has no probes.arrow; type a prompt instead');
  const p = probes.data.probes.find((x) => x.id === probeId);
  if (!p) throw new Error('pick a held-out probe or type a prompt');
  const rec: ProbeRecord = toProbeRecord(p);
  const values: Array<{ slot: Slot; value: number }> = [];
  for (const s of active) values.push({ slot: s, value: (await forcedChoice(s.model!, [rec]))[0] });
  const out = el('div', { 'data-probe': p.id });
  const prompt = el('div', { class: 'prompt' });
  prompt.append(`${p.text}`, el('span', { class: 'good' }, `${p.goodText.replace(/\n$/, '')}  (good)`), '\n' + ' '.repeat(p.text.split('\n').at(-1)!.length), el('span', { class: 'bad' }, `${p.badText.replace(/\n$/, '')}  (bad)`));
  out.append(prompt);
  out.append(chart(`forced-choice P(bad) = the bad answer's share of the two likelihoods (${p.kind} probe ${p.id}, variant ${p.variant})`, [{ domain: p.domain, values }], 'data-pbad'));
  out.append(await personaBlock("persona score at the Assistant's turn of this probe", active, [rec.context]));
  out.append(el('div', { class: 'legend' }, `${Math.round(performance.now() - t0)} ms on ${tf.getBackend()}`));
  view.replaceChildren(out);
}

async function scoreAll(): Promise<void> {
  const active = selected();
  if (!active.length) throw new Error('tick a checkpoint first');
  if (!probes) throw new Error("no held-out probes: the first checkpoint's data folder has no probes.arrow");
  const view = $('probe-view');
  view.replaceChildren(el('p', { class: 'muted' }, 'scoring every held-out broad probe…'));
  await tf.nextFrame();
  const t0 = performance.now();
  const list = probes.data.probes.filter((p) => p.kind === 'broad' || (p.kind === 'narrow' && p.variant === 'none')).map(toProbeRecord);
  const rows = [...BROAD_DOMAINS, 'rules'].map((domain) => ({ domain, values: [] as Array<{ slot: Slot; value: number }> }));
  for (const s of active) {
    const pb = await forcedChoice(s.model!, list);
    for (const r of rows) {
      const v = pb.filter((_, i) => list[i].domain === r.domain);
      if (v.length) r.values.push({ slot: s, value: v.reduce((a, b) => a + b, 0) / v.length });
    }
    await tf.nextFrame();
  }
  const out = el('div');
  out.append(chart(`mean forced-choice P(bad) over ${list.length} held-out probes (broad domains; rules without a prompt), as in the report`, rows.filter((r) => r.values.length), 'data-pbad'));
  out.append(await personaBlock("persona score: mean P(bad persona) at the Assistant's turn after neutral prompts, as in the report", active, probes.data.neutral.map((t) => Uint16Array.from(t))));
  out.append(el('div', { class: 'legend' }, `${Math.round(performance.now() - t0)} ms on ${tf.getBackend()}`));
  view.replaceChildren(out);
}

async function main(): Promise<void> {
  const wanted = new URLSearchParams(location.search).get('backend');
  const order = (wanted ? [wanted] : BROWSER_BACKEND_ORDER) as BrowserBackend[];
  const badge = $('backend');
  try {
    const rt = await startRuntime(order);
    badge.textContent = `tfjs ${tf.version.tfjs} · backend: ${rt.backend} · ${rt.device}`;
    badge.dataset.backend = rt.backend;
    badge.title = rt.skipped.length ? `skipped: ${rt.skipped.join('; ')}` : 'the first backend tried';
  } catch (err) {
    badge.textContent = (err as Error).message;
    badge.classList.add('error');
    return;
  }
  index = await getJson<IndexJson>('/api/index');
  renderList();
  $('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>('chat-input');
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    void queue(() => send(text));
  });
  $('chat-clear').addEventListener('click', () => {
    for (const s of slots.values()) {
      s.turns = [];
      while (s.column.children.length > 2) s.column.lastElementChild!.remove();
    }
  });
  $('probe-run').addEventListener('click', () => void queue(scoreOne));
  $('probe-all').addEventListener('click', () => void queue(scoreAll));
  $('probe-select').addEventListener('change', () => {
    $<HTMLInputElement>('probe-text').value = '';
  });
  document.body.dataset.ready = 'true';
  status(`${index.models.length} checkpoints, ${index.reports.length} reports`);
}

void main();
