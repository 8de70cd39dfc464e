/** FLOP accounting and small statistics for `npm run bench`. */
import { countParameters, type ModelConfig } from '../model/model-config.js';

/**
 * Parameters that take part in matrix products: every parameter except the position embedding
 * (a lookup). The token embedding counts once, as the tied output head. This is nanoGPT's
 * `get_num_params(non_embedding=True)`.
 */
export function matmulParameters(cfg: ModelConfig): number {
  return countParameters(cfg).total - cfg.block_size * cfg.n_embd;
}

/**
 * Training FLOPs per token: 6 N (forward 2 N, backward 4 N, N = matmulParameters) plus the
 * attention products 6 n_layer T n_embd (QK^T and PV, forward and backward, causal half of
 * the T x T scores; nanoGPT's 12 L T C counts the full square). T is the sequence length.
 */
export function trainFlopsPerToken(cfg: ModelConfig, T = cfg.block_size): number {
  return 6 * matmulParameters(cfg) + 6 * cfg.n_layer * T * cfg.n_embd;
}

export const FLOPS_FORMULA = '6*N + 6*n_layer*T*n_embd per token (N = parameters without wpe; tied head counted once)';

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}
