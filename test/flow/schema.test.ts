/** The committed JSON Schema (schema/flow.schema.json) is the one generated from the zod schema. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { flowJsonSchema } from '../../src/flow/schema.js';

describe('flow JSON Schema', () => {
  it('schema/flow.schema.json is up to date (regenerate with `npm run schema`)', () => {
    const committed = JSON.parse(
      readFileSync(join(import.meta.dirname, '../../schema/flow.schema.json'), 'utf8'),
    );
    expect(committed).toEqual(JSON.parse(JSON.stringify(flowJsonSchema())));
  });
  it('describes the step kinds editors complete', () => {
    const s = flowJsonSchema() as { $ref: string; definitions: Record<string, { required?: string[] }> };
    expect(s.$ref).toBe('#/definitions/Flow');
    for (const id of ['IoctlStep', 'RunStep', 'RepeatStep', 'Expect', 'Outcome'])
      expect(s.definitions).toHaveProperty(id);
    expect(s.definitions['Flow']!.required).toEqual([
      'name',
      'title',
      'platform',
      'source',
      'outcomes',
      'steps',
    ]);
  });
});
