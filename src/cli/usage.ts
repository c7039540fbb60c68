export const USAGE = `forecastd — edge forecasting daemon: MQTT sensor readings in, LSTM forecasts out.

Usage:
  forecastd run --config <file.yaml>      run the daemon (SIGTERM/SIGINT stop it, SIGHUP reloads the config)
  forecastd train <forecast> --config <file.yaml> [--verbose 0|1|2]
                                          train one forecast now on the configured database, with a
                                          progress bar (1) or a line per epoch (2); stop the daemon first
  forecastd train <forecast> --config <file.yaml> --daemon
                                          ask the running daemon to train it now, through its own queue
                                          (publishes to <baseTopic>/<forecast>/train)
  forecastd demo [--duration <seconds>]   everything on an embedded broker with a simulated sensor
  forecastd config check <file.yaml>      validate a config file and exit
  forecastd config schema                 print the config's JSON schema (for editors)
  forecastd config reference              print the documented reference config, every option at its default
  forecastd import <file.csv> --config <file.yaml> [options]
                                          backfill history from a CSV file (- reads stdin); options below
  forecastd export --config <file.yaml> --series <name> [--series <name> ...] [--from <time>] [--to <time>] [--out <file.csv>]
                                          write readings as CSV: timestamp (UTC),<series>,...; --from included, --to excluded
  forecastd backtest <forecast> --config <file.yaml> [--train-from <time>] --train-until <time> [--val-until <time>]
                    --from <time> --to <time> [--stride <n>] [--level <q>] [--out <file.csv>] [--json]
                                          train on [train-from, train-until), early-stop on [train-until, val-until)
                                          (else the training range's tail), forecast from every stride-th origin in
                                          [from, to) and score the model and each baseline on the same origins;
                                          --out writes origin,step,ts,actual,predicted,lower,upper (--level interval)
  forecastd status --config <file.yaml> [--json]
                                          per forecast: readiness, what serves and how it scores against the
                                          baselines, last and next training, history, database size, backend
  forecastd forecast <forecast> --config <file.yaml> [--compute] [--json] [--width <columns>]
                                          the current forecast as a table and a terminal chart (the last one
                                          published, or --compute: one now from the serving checkpoint)
  forecastd models <forecast> --config <file.yaml> [--json] [--limit <n>] [--promote <version> | --rollback | --unpin]
                                          list model versions; pin one by hand (recorded: see forecastd models --help)
  forecastd <command> --help              help on one command
  forecastd help                          this text

Import options:
  --timestamp-column <name|n>   the time column (default: one named timestamp/datetime, else date + time, else time or
                                date, else the first; n counts from 1). ISO 8601, YYYY-MM-DD HH:MM:SS, YYYY-MM-DD,
                                YYYY-MM, DD/MM/YYYY [HH.MM.SS], epoch s or ms.   --time-column <name|n>: a separate time of day
  --timezone <zone>             zone of times written without one: local (default, this machine's zone), UTC, +01:00,
                                or an IANA name such as Europe/Rome (export: for --from/--to)
  --map <column>=<series>       the series for a column (default: <prefix><column name, other characters as _>)
  --prefix <text>               prepended to derived series names        --skip <column>   leave a column out
  --delimiter <, ; tab>         default: detected from the header        --decimal-comma   read 2,6 as 2.6 (default with ;)
  --missing=<value>             a value meaning "no value" (--missing=-200 also matches -200,0); empty cells are always gaps

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
Environment: FORECASTD_MQTT_PASSWORD, FORECASTD_MQTT_USERNAME override the config's broker credentials;
FORECASTD_HTTP_TOKEN overrides http.token.
`;

/** Longer help of the commands that have more to say than their USAGE lines. */
const COMMAND_DETAILS: Record<string, string> = {
  import: `Each value column becomes a series; the readings go to the database in storage.stateDir (the daemon may
be running). Empty cells are gaps. A cell that is not a number is rejected and counted for its column,
never fatal: a text column (such as a file name) stores nothing and creates no series.
Importing is idempotent: readings already stored count as duplicates, so an interrupted import can be run
again. Times without a zone are read in --timezone, default this machine's zone: give the file's zone, or a
fixed offset (--timezone +01:00) when its clock ignores daylight saving time. Delimiter and decimal comma
are detected; the summary reports rows/s and each column's rejects.
`,
  export: `Writes timestamp,<series>,... with one row per distinct time, ISO 8601 UTC timestamps, and an empty
cell where a series has no value; stdout unless --out. --from/--to accept the import's time formats,
read in --timezone (default local) when they have no zone.
`,
  status: `Reads the database and the checkpoints in storage.stateDir; the daemon need not be running.
Readiness: ready (a model that beats persistence serves), degraded (a baseline serves), stale (no
forecast for over two intervals), training, warming_up (not enough history yet).
  --json   the same as a JSON document, for scripts
`,
  forecast: `Shows the last forecast the daemon published (kept in its database) after the recent actuals,
with the prediction intervals of the next value when the model has them.
  --compute          make one now from the serving checkpoint and the stored readings instead
  --json             print the forecast message (as published on MQTT) instead
  --width <columns>  width of the chart (default: the terminal's)
Exit code 1 when there is no forecast yet (see forecastd status).
`,
  models: `Lists the trained versions of a forecast, newest first: when, how long, validation MAE against
persistence, whether it was promoted, which one serves (*), and whether its weights are still kept.
  --promote <version>  pin this version (its weights must still be kept: training.keepCheckpoints)
  --rollback           pin the newest kept version before the serving one
  --unpin              remove the pin
A pin is recorded in the database (safe while the daemon runs). The running daemon checks it at
each forecast tick and serves the pinned version from the next one (SIGHUP or a restart apply it
too); while pinned, a training whose model would be promoted keeps it but the pinned version goes
on serving. --unpin returns the forecast to the newest promoted model. A version whose weights are
gone cannot be pinned (exit 1).
`,
};

/** `forecastd <command> --help`: the command's lines of USAGE (and its option section), plus its details. */
export function commandHelp(command: string): string {
  const lines = USAGE.split('\n');
  const picked: string[] = [];
  for (let index = 0; index < lines.length; index++) {
    if (!lines[index].startsWith(`  forecastd ${command} `) && lines[index] !== `  forecastd ${command}`) continue;
    picked.push(lines[index]);
    // Continuation lines are indented further than the command lines.
    while (index + 1 < lines.length && /^ {4,}\S/.test(lines[index + 1])) picked.push(lines[++index]);
  }
  // A section of its own, such as "Import options:", belongs to the command too.
  const heading = `${command[0].toUpperCase()}${command.slice(1)} options:`;
  const start = lines.indexOf(heading);
  if (start >= 0) {
    picked.push('', heading);
    for (let index = start + 1; index < lines.length && lines[index].trim() !== ''; index++) picked.push(lines[index]);
  }
  const details = COMMAND_DETAILS[command];
  return `Usage:\n${picked.join('\n')}\n${details ? `\n${details}` : ''}\nExit codes: 0 ok, 1 runtime failure, 2 usage or config error.\n`;
}

/** A command line that cannot work as typed: exit code 2 with the usage text. */
export class UsageError extends Error {}
