/**
 * The documented reference config (config/forecastd.reference.yaml, `forecastd config reference`), in the style of
 * Telegraf's sample.conf: every option, commented out at its default, under the description from the schema.
 *
 * It is rendered from the JSON schema, so it cannot say anything the schema does not; a test keeps the file in
 * config/ equal to this output.
 */
import { stringify } from 'yaml';
import { configJsonSchema } from './jsonSchema.js';

/** The subset of JSON Schema that configJsonSchema() produces and this renderer reads. */
interface SchemaNode {
  type?: string;
  description?: string;
  default?: unknown;
  properties?: Record<string, SchemaNode>;
  required?: string[];
  items?: SchemaNode;
  oneOf?: SchemaNode[];
  anyOf?: SchemaNode[];
  enum?: unknown[];
  const?: unknown;
}

type Values = Record<string, unknown>;

const LINE_WIDTH = 110;
const INDENT = 2;

/** Values shown where the schema has no default: an array with no default entry gets one example entry. */
const EXAMPLES: Values = {
  forecasts: [{ name: 'living_room', target: 'livingroom.temperature' }],
};

const HEADER = `## forecastd reference configuration
##
## Every option, commented out at its default. Lines starting with "##" explain; lines starting with "# " are
## settings: remove the "# " to set one (keep the indentation). <string>, <integer>... mark an option without
## a default. An empty config file means "all defaults" - so does this one, left as it is.
##
## Secrets: keep the broker password out of this file. Set FORECASTD_MQTT_PASSWORD in forecastd's environment
## (e.g. a systemd EnvironmentFile or credential), or point mqtt.passwordFile at a file only forecastd can read.
##
## Generated from the config schema by \`forecastd config reference\`; do not edit by hand.
## Check a config with \`forecastd config check <file.yaml>\`; \`forecastd config schema\` prints a JSON schema
## for editors.
`;

function scalar(value: unknown): string {
  return stringify(value, { lineWidth: 0 }).trimEnd();
}

function formatValue(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(scalar).join(', ')}]`;
  return scalar(value);
}

function placeholder(node: SchemaNode): string {
  if (node.type === 'boolean') return '<true|false>';
  return `<${node.type ?? 'value'}>`;
}

function allowedValues(node: SchemaNode): unknown[] | undefined {
  if (node.enum) return node.enum;
  if (node.anyOf?.every((option) => 'const' in option)) return node.anyOf.map((option) => option.const);
  if (node.type === 'array' && node.items?.enum) return node.items.enum;
  return undefined;
}

function wrap(text: string, prefix: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && prefix.length + line.length + 1 + word.length > LINE_WIDTH) {
      lines.push(prefix + line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(prefix + line);
  return lines;
}

function docLines(node: SchemaNode, indent: number, required: boolean): string[] {
  const prefix = `${' '.repeat(indent)}## `;
  const lines = node.description ? wrap(node.description, prefix) : [];
  const allowed = allowedValues(node);
  if (allowed) lines.push(...wrap(`One of: ${allowed.map(String).join(', ')}.`, prefix));
  // A constant (a layer's `type`) is shown in every example entry; calling it required would only add noise.
  if (required && !('const' in node)) lines.push(`${prefix}Required.`);
  return lines;
}

const isSection = (node: SchemaNode) => node.type === 'object' && node.properties !== undefined;
const isObjectArray = (node: SchemaNode) =>
  node.type === 'array' && node.items !== undefined && (isSection(node.items) || node.items.oneOf !== undefined);

/** The variant of a `oneOf` (layers) that an example entry is, by its `type` constant. */
function variantFor(items: SchemaNode, entry: Values): SchemaNode {
  if (!items.oneOf) return items;
  return items.oneOf.find((option) => option.properties?.type?.const === entry.type) ?? items.oneOf[0];
}

/**
 * One option: its description, then `# key: value`. With `bullet`, the option opens an array entry: its line
 * becomes `# - key: value`, two columns left of its siblings, and its description moves left with it.
 */
function renderOption(key: string, node: SchemaNode, value: unknown, indent: number, required: boolean, bullet: boolean): string[] {
  const lead = bullet ? indent - INDENT : indent;
  const pad = ' '.repeat(lead);
  const dash = bullet ? '- ' : '';
  const lines = docLines(node, lead, required);

  if (isSection(node)) {
    lines.push(`${pad}# ${dash}${key}:`);
    lines.push(...renderObject(node, (value ?? {}) as Values, indent + INDENT, false));
    return lines;
  }
  if (isObjectArray(node)) {
    const entries = (value ?? node.default ?? []) as Values[];
    if (entries.length === 0) {
      lines.push(`${pad}# ${dash}${key}: []`);
      return lines;
    }
    if (value !== undefined) lines.push(`${pad}## Example:`);
    lines.push(`${pad}# ${dash}${key}:`);
    entries.forEach((entry, index) => {
      if (index > 0) lines.push('');
      lines.push(...renderEntry(node.items!, entry, indent + INDENT));
    });
    return lines;
  }
  const shown = value ?? node.default;
  lines.push(`${pad}# ${dash}${key}: ${shown === undefined ? placeholder(node) : formatValue(shown)}`);
  return lines;
}

function renderObject(node: SchemaNode, values: Values, indent: number, bulletFirst: boolean): string[] {
  const lines: string[] = [];
  Object.entries(node.properties ?? {}).forEach(([key, child], index) => {
    const option = renderOption(key, child, values[key], indent, node.required?.includes(key) ?? false, bulletFirst && index === 0);
    // A blank line between documented options; the first option follows its parent directly.
    if (index > 0 && option[0]?.trimStart().startsWith('##')) lines.push('');
    lines.push(...option);
  });
  return lines;
}

/** An array entry at `indent` (the column of its dash); its options sit two columns further in. */
function renderEntry(items: SchemaNode, entry: Values, indent: number): string[] {
  const variant = variantFor(items, entry);
  return [...docLines(variant, indent, false), ...renderObject(variant, entry, indent + INDENT, true)];
}

export function renderReferenceConfig(): string {
  const root = configJsonSchema() as SchemaNode;
  const sections = Object.entries(root.properties ?? {}).map(([key, node]) =>
    renderOption(key, node, EXAMPLES[key], 0, root.required?.includes(key) ?? false, false).join('\n'),
  );
  return `${HEADER}\n${sections.join('\n\n')}\n`;
}
