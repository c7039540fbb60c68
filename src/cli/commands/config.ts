import { configJsonSchema } from '../../config/jsonSchema.js';
import { loadConfigFile } from '../../config/load.js';
import { renderReferenceConfig } from '../../config/reference.js';
import { UsageError } from '../usage.js';

// eslint-disable-next-line @typescript-eslint/require-await -- every subcommand has the same async signature
export async function configCommand([sub, file]: string[]): Promise<number> {
  if (sub === 'schema' && !file) {
    process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
    return 0;
  }
  if (sub === 'reference' && !file) {
    process.stdout.write(renderReferenceConfig());
    return 0;
  }
  if (sub !== 'check' || !file) throw new UsageError('usage: forecastd config check <file.yaml> | config schema | config reference');
  const config = loadConfigFile(file);
  process.stdout.write(`${file}: ok (${config.forecasts.length} forecast(s): ${config.forecasts.map((f) => f.name).join(', ') || 'none'})\n`);
  return 0;
}
