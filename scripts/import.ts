/** `npm run import`: a Hugging Face GPT-2 safetensors file (as npm run export writes it) back into a checkpoint. */
import { cli, runCli } from '../src/cli/run.js';
import { importSafetensors } from '../src/interchange/hf-gpt2.js';

await runCli(async () => {
  const argv = await cli('npm run import --', 'Read a GPT-2 safetensors file with its config.json and vocab_map.json (by default beside it) into a\ncheckpoint folder that every command loads.\n\nUsage: npm run import -- --from <file>.safetensors --out <dir>')
    .option('from', { type: 'string', demandOption: true, describe: 'the .safetensors file' })
    .alias('from', 'from-safetensors')
    .option('out', { type: 'string', demandOption: true, describe: 'checkpoint folder to write (replaced whole)' })
    .option('config', { type: 'string', describe: 'GPT-2 config.json (default: beside the file)' })
    .option('vocab', { type: 'string', describe: 'vocab_map.json (default: beside the file)' })
    .option('data', { type: 'string', describe: 'the data folder recorded in the checkpoint (default: the exported one if it exists, else data/default)' })
    .example('npm run import -- --from export/assistant/model.safetensors --out checkpoints/imported', '')
    .parse();
  const r = importSafetensors(argv.from, argv.out, { config: argv.config, vocab: argv.vocab, data: argv.data });
  const m = r.model;
  process.stdout.write(`wrote checkpoint ${r.out} (${m.n_layer} layers x ${m.n_embd}, ${m.n_head} heads, context ${m.block_size}, vocabulary ${m.vocab_size}; stage ${r.stage}, data ${r.data})\n`);
});
