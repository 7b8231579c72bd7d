import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readmeSummaryLines, readReadme } from './readme.ts';

const dir = new URL('./', import.meta.url);
const modelTests = readdirSync(dir).filter((file) => file.endsWith('.model.test.ts')).sort();

describe("README's model-check block", () => {
  it('has one line for each machine `npm run test:model` checks, and no other', () => {
    const names = readmeSummaryLines(readReadme()).map((line) => line.slice(0, line.indexOf(':')));
    expect([...names].sort()).toEqual(modelTests.map((file) => file.replace('.model.test.ts', '')));
  });

  it('is checked line by line against the run: every model test compares its report with it', () => {
    for (const file of modelTests) {
      expect(readFileSync(new URL(file, dir), 'utf8'), `${file} calls expectReadmeShows(report)`).toMatch(/expectReadmeShows\(/);
    }
  });
});
