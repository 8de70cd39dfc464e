import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../src');

/**
 * The layers of src/ (docs/DESIGN.md, Layout), lowest first. A folder imports only from folders of
 * lower tiers (and from itself), so no import runs upwards and there are no cycles between folders.
 * A new folder must be placed here on purpose.
 */
const TIERS: readonly (readonly string[])[] = [
  ['util'],
  ['backend', 'tokenizer'],
  ['world'],
  ['data'],
  ['model'],
  ['train'],
  ['eval'],
  ['pipeline', 'cli'],
  ['experiment'],
  ['chat', 'interchange', 'explorer'],
  ['bench'],
];
const tierOf = new Map(TIERS.flatMap((folders, tier) => folders.map((f) => [f, tier] as const)));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}

/** The top folder of src/ a path lies in ('' for a file directly in src/). */
const topFolder = (path: string) => {
  const parts = relative(SRC, path).split(sep);
  return parts.length > 1 ? parts[0] : '';
};

test('every import in src/ points to its own folder or a lower layer', () => {
  const upwards: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = topFolder(file);
    assert.ok(tierOf.has(from), `src/${from || relative(SRC, file)} is in no layer: place it in TIERS (test/layers.test.ts) and docs/DESIGN.md`);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const to = topFolder(resolve(dirname(file), m[1]));
      if (to !== from && !(tierOf.get(to)! < tierOf.get(from)!)) upwards.push(`${relative(SRC, file)} imports ${m[1]} (${from} -> ${to})`);
    }
  }
  assert.deepEqual(upwards, []);
});
