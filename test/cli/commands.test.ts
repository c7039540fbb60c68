/**
 * The forecastd command line as scripts see it: every command answers --help with exit code 0 and fails a wrong
 * command line with exit code 2; `status`, `forecast` and `models` read a daemon's state without the daemon.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { fixtureForecast, startFixture, trainAndForecast, type Fixture } from '../http/daemonFixture.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Runs `argsList` through the CLI, a few at a time (each loads Node and some of TensorFlow.js). */
async function cliAll(argsList: string[][], concurrency = 3): Promise<Run[]> {
  const results: Run[] = new Array(argsList.length);
  let next = 0;
  const worker = async () => {
    while (next < argsList.length) {
      const index = next++;
      results[index] = await cli(...argsList[index]);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}

const scratch = mkdtempSync(join(tmpdir(), 'forecastd-cli-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('every command', () => {
  let commands: string[] = [];

  before(async () => {
    const help = await cli('help');
    assert.equal(help.code, 0);
    commands = [...new Set([...help.stdout.matchAll(/^ {2}forecastd ([a-z]+)\b/gm)].map((match) => match[1]))].filter(
      (command) => command !== 'help',
    );
  });

  it('the usage lists the commands, status, forecast and models among them', () => {
    for (const command of ['run', 'demo', 'config', 'status', 'forecast', 'models']) assert.ok(commands.includes(command), command);
  });

  it('answers --help (and -h) with its usage and exit code 0', async () => {
    const runs = await cliAll(
      commands.map((command) => [command, '--help']),
      4,
    );
    runs.forEach((run, index) => {
      const command = commands[index];
      assert.equal(run.code, 0, `${command} --help: ${run.stderr}`);
      assert.match(run.stdout, new RegExp(`^Usage:\\n {2}forecastd ${command}\\b`), command);
      assert.match(run.stdout, /Exit codes: 0 ok, 1 runtime failure, 2 usage or config error\./);
    });
    const short = await cli('status', '-h');
    assert.equal(short.code, 0);
    assert.match(short.stdout, /^Usage:\n {2}forecastd status /);
  });

  it('fails an unknown option with exit code 2 and the usage', async () => {
    const runs = await cliAll(commands.map((command) => [command, '--no-such-option']));
    runs.forEach((run, index) => {
      assert.equal(run.code, 2, `${commands[index]}: ${run.stderr.slice(0, 300)}`);
      assert.match(run.stderr, /forecastd: /, commands[index]);
    });
  });

  it('no command, or an unknown one, is a usage error too', async () => {
    assert.equal((await cli()).code, 2);
    const unknown = await cli('frobnicate');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
  });
});

describe('status, forecast and models on a state directory', { timeout: 120_000 }, () => {
  let fixture: Fixture;
  let configPath: string;

  before(async () => {
    fixture = await startFixture({ epochs: 2 });
    await fixture.publishHistory(2);
    await trainAndForecast(fixture);
    // The daemon stops: the commands read its database and checkpoints on their own.
    await fixture.daemon.stop();
    configPath = join(scratch, 'forecastd.yaml');
    writeFileSync(
      configPath,
      stringify({
        storage: { stateDir: fixture.stateDir },
        forecasts: [fixtureForecast(2)],
      }),
    );
  });
  after(async () => {
    await fixture?.close();
  });

  it('status: readiness, what serves, accuracy against the baselines, trainings, history, database, backend', async () => {
    const run = await cli('status', '--config', configPath);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^database {3}.*forecastd\.db: [\d.]+ KB/m);
    assert.match(run.stdout, /^backend {4}(wasm|cpu|native)$/m);
    assert.match(run.stdout, /^room {2}(READY|DEGRADED) {2}\(room\.temp\)$/m);
    assert.match(run.stdout, /^ {2}serving {4}\S/m);
    assert.match(run.stdout, /^ {2}accuracy {3}MAE model [\d.]+ °C · .*persistence [\d.]+ °C/m);
    assert.match(run.stdout, /^ {2}trained {4}\d{4}-\d\d-\d\d \d\d:\d\d .*2 epochs/m);
    assert.match(run.stdout, /^ {2}next {7}\d{4}-\d\d-\d\d \d\d:\d\d \(in /m);
    assert.match(run.stdout, /^ {2}history {4}2 days, 288 readings/m);
    assert.match(run.stdout, /^ {2}forecast {3}issued .*: next [\d.]+ °C$/m);

    const json = JSON.parse((await cli('status', '--config', configPath, '--json')).stdout);
    assert.equal(json.forecasts[0].name, 'room');
    assert.ok(['ready', 'degraded'].includes(json.forecasts[0].readiness));
    assert.ok(json.forecasts[0].scores.persistence.mae > 0);
    assert.equal(json.forecasts[0].history.readings, 288);
  });

  it('forecast: the last published forecast as a table and a chart after the actuals', async () => {
    const run = await cli('forecast', 'room', '--config', configPath, '--width', '72');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^room {2}issued \d\d:\d\d/m);
    assert.match(run.stdout, /^ {2}time {3}value$/m);
    assert.equal(run.stdout.match(/^ {2}\d\d:\d\d {2}[\d.]+ °C$/gm)?.length, 6, 'six rows');
    assert.match(run.stdout, /· actual {2}\* forecast {2}\| now/);
    assert.match(run.stdout, /published by the daemon/);
    const message = JSON.parse((await cli('forecast', 'room', '--config', configPath, '--json')).stdout);
    assert.equal(message.points.length, 6);
  });

  it('models: the versions with their scores and which one serves', async () => {
    const run = await cli('models', 'room', '--config', configPath);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^room: 1 version\(s\), newest first$/m);
    assert.match(run.stdout, /room@\d{8}T\d{6}Z {2}\d{4}-\d\d-\d\d \d\d:\d\d +2 /);
    const json = JSON.parse((await cli('models', 'room', '--config', configPath, '--json')).stdout);
    assert.equal(json.versions.length, 1);
    assert.equal(typeof json.versions[0].persistenceMae, 'number');
  });

  it('error paths: what to do instead, with exit code 1 for the state and 2 for the command line', async () => {
    const noForecast = await cli('forecast', 'nope', '--config', configPath);
    assert.equal(noForecast.code, 2);
    assert.match(noForecast.stderr, /no forecast "nope" in .* \(it has: room\)/);

    const both = await cli('models', 'room', '--config', configPath, '--promote', 'x', '--rollback');
    assert.equal(both.code, 2);

    const unknownVersion = await cli('models', 'room', '--config', configPath, '--promote', 'room@19990101T000000Z');
    assert.equal(unknownVersion.code, 1);
    assert.match(unknownVersion.stderr, /no version "room@19990101T000000Z" of room/);

    const emptyConfig = join(scratch, 'empty.yaml');
    writeFileSync(emptyConfig, stringify({ storage: { stateDir: join(scratch, 'never-ran') }, forecasts: [] }));
    const noDatabase = await cli('status', '--config', emptyConfig);
    assert.equal(noDatabase.code, 1);
    assert.match(noDatabase.stderr, /cannot open the database .*has the daemon run with this config\?/s);

    assert.equal((await cli('status')).code, 2, 'status without --config');
    const badConfig = await cli('status', '--config', join(scratch, 'missing.yaml'));
    assert.equal(badConfig.code, 2);
    assert.match(badConfig.stderr, /cannot read the file/);
  });
});
