/**
 * `npm test`: every test file (`*.test.js`) under dist/test, and nothing else: helpers, fixtures and shared cases
 * live beside the tests they serve but are not test files (node --test given a directory would run every .js file
 * under a folder named test, and Node 20's runner takes no glob).
 *
 *   node dist/scripts/runTests.js [--concurrency N] [path filter ...]
 *
 * Files run N at a time (default 2, the cores of these machines; FORECASTD_TEST_CONCURRENCY overrides): each file that
 * needs a broker, a daemon or a directory starts its own. A path filter keeps only the files whose path contains it.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const distTest = fileURLToPath(new URL('../test/', import.meta.url));

function testFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return testFiles(path);
      return name.endsWith('.test.js') ? [path] : [];
    });
}

const args = process.argv.slice(2);
const concurrencyIndex = args.indexOf('--concurrency');
const concurrency = concurrencyIndex >= 0 ? Number(args.splice(concurrencyIndex, 2)[1]) : Number(process.env.FORECASTD_TEST_CONCURRENCY ?? 2);
if (!Number.isInteger(concurrency) || concurrency < 1) {
  console.error('--concurrency takes a whole number of files run at once, at least 1');
  process.exit(2);
}
const files = testFiles(distTest).filter((path) => args.length === 0 || args.some((filter) => relative(distTest, path).includes(filter)));
if (files.length === 0) {
  console.error(`no test file under ${distTest} matches ${args.join(' ')}`);
  process.exit(2);
}
const run = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...files], { stdio: 'inherit' });
process.exit(run.status ?? 1);
