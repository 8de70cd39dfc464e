/**
 * The `interventions` section of an experiment spec: causal tests of the persona hypothesis on one
 * world's lineages (its pretraining seeds), each against its control. Steering moves the residual
 * along the persona direction (control: a random direction, and the direction of the rho-0 twin's
 * base); ablation removes it during narrow training (control: a random direction); re-alignment
 * trains the cheat model on N good answers in one broad domain; the dose-response mixes cheat
 * examples with fair or neutral ones; early warning reads every narrow run's persona score early.
 */
import { z } from 'zod';
import { DIRECTION_SOURCES } from '../eval/persona-direction.js';
import { DOMAINS } from '../world/lexicon.js';

const positive = z.int().min(1);
/** Strictly between 0 (the fair arm) and 1 (the cheat arm), which the main grid has already. */
const fraction = z.number().gt(0).lt(1);

export const InterventionsSchema = z.strictObject({
  /** The world whose lineages are intervened on (rho > 0: its rho-0 twin's base gives the twin-direction control). */
  world: z.string(),
  /** Pretraining seeds (lineages) [the spec's pretrain_seeds]. */
  pretrain_seeds: z.array(z.int().min(0)).min(1).optional(),
  /** The fine-tuning seed of every intervention run [the spec's first]. */
  finetune_seed: z.int().min(0).optional(),
  /** The block after which steering and ablation act (blocks.{layer}.hook_resid_post). */
  layer: z.int().min(0),
  /** Which estimate of the persona direction: mean-diff (difference of the personas' mean residuals) or probe. */
  direction_source: z.enum(DIRECTION_SOURCES).default('mean-diff'),
  steer: z
    .strictObject({
      /** Multiples of the unit direction added at the answer positions (0 is added if missing). */
      alphas: z.array(z.number()).min(2),
      /** Which models are steered: the assistant and the final checkpoints of these narrow arms. */
      arms: z.array(z.string()).default(['cheat']),
    })
    .optional(),
  ablate: z
    .strictObject({
      /** Layers the direction is projected out of during the narrow cheat run: a list or "all". */
      layers: z.union([z.literal('all'), z.array(z.int().min(0)).min(1)]).default('all'),
    })
    .optional(),
  realign: z
    .strictObject({
      domain: z.enum(DOMAINS).refine((d) => d !== 'rules', 'must be a broad domain, not rules'),
      examples: z.array(positive).min(1),
      /** Optimizer steps of every re-alignment run (the same for every N, so N varies the data only). */
      steps: positive,
    })
    .optional(),
  dose: z
    .strictObject({
      /** Fractions of cheat examples (the cheat arm is 1, the fair arm 0). */
      fractions: z.array(fraction).min(1),
      with: z.array(z.enum(['fair', 'neutral'])).min(1).default(['fair']),
    })
    .optional(),
  /** The narrow step whose persona score is read as the early warning (one of narrow.eval_steps). */
  early_warning_step: positive.optional(),
  /** Sampled answers per probe when intervention runs are evaluated (forced choice always) [0]. */
  samples: z.int().min(0).default(0),
});

export type InterventionsSpec = z.infer<typeof InterventionsSchema>;
