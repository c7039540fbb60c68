export const USAGE = `forecastd — edge forecasting daemon: MQTT sensor readings in, LSTM forecasts out.

Usage:
  forecastd run --config <file.yaml>      run the daemon (SIGTERM/SIGINT stop it, SIGHUP reloads the config)
  forecastd demo [--duration <seconds>]   everything on an embedded broker with a simulated sensor
  forecastd config check <file.yaml>      validate a config file and exit
  forecastd config schema                 print the config's JSON schema (for editors)
  forecastd config reference              print the documented reference config, every option at its default
  forecastd help                          this text

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
Environment: FORECASTD_MQTT_PASSWORD, FORECASTD_MQTT_USERNAME override the config's broker credentials.
`;

/** A command line that cannot work as typed: exit code 2 with the usage text. */
export class UsageError extends Error {}
