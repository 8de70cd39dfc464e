/** `npm run export`: a checkpoint as a Hugging Face GPT-2 safetensors file, with config.json and vocab_map.json beside it. */
import { cli, runCli, UserError } from '../src/cli/run.js';
import { exportCheckpoint } from '../src/interchange/hf-gpt2.js';

await runCli(async () => {
  const argv = await cli('npm run export --', 'Write a checkpoint as safetensors with Hugging Face GPT-2 names and layout (GPT2LMHeadModel, lm_head tied),\nplus a GPT-2 config.json and vocab_map.json (model ids -> cl100k_base ids) in the same folder.\n\nUsage: npm run export -- --checkpoint <dir> --out <folder>/model.safetensors')
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'checkpoint folder' })
    .option('out', { type: 'string', demandOption: true, describe: 'the .safetensors file to write (name it model.safetensors for from_pretrained(<folder>))' })
    .example('npm run export -- --checkpoint checkpoints/assistant --out export/assistant/model.safetensors', '')
    .parse();
  if (!argv.out.endsWith('.safetensors')) throw new UserError(`--out must name a .safetensors file, got ${argv.out}`);
  const r = exportCheckpoint(argv.checkpoint, argv.out);
  process.stdout.write(`wrote ${r.file} (${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(2)} MB), ${r.config}, ${r.vocab}\n`);
});
