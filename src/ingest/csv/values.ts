/**
 * Cell values: plain decimal numbers, strictly. `Number()` alone would take `0x10`, `Infinity`, `1_0`-free
 * oddities and turn an empty or blank cell into 0, so the text is checked first.
 */

/** Matches the storage CHECK constraint (and the MQTT payload decoder): beyond it is a broken sensor. */
export const MAX_ABS_VALUE = 1e15;

const ZERO = 48;
const NINE = 57;
const SPACE = 32;
const TAB = 9;
const PLUS = 43;
const MINUS = 45;
const DOT = 46;
const COMMA = 44;
const LOWER_E = 101;
const UPPER_E = 69;

const isDigit = (code: number) => code >= ZERO && code <= NINE;

/**
 * `-12.5`, `+3`, `.5`, `1e-3`, `2,6` (with `decimalComma`; `.` is still accepted then). Surrounding spaces are
 * allowed. Returns NaN for anything else, including an empty cell and thousands separators (`1.234,5`).
 */
export function parseDecimal(text: string, decimalComma: boolean): number {
  const length = text.length;
  let i = 0;
  while (i < length && (text.charCodeAt(i) === SPACE || text.charCodeAt(i) === TAB)) i++;
  let end = length;
  while (end > i && (text.charCodeAt(end - 1) === SPACE || text.charCodeAt(end - 1) === TAB)) end--;
  if (i === end) return Number.NaN;
  let k = i;
  let code = text.charCodeAt(k);
  if (code === PLUS || code === MINUS) code = text.charCodeAt(++k);
  let digits = 0;
  while (isDigit(code)) {
    digits++;
    code = text.charCodeAt(++k);
  }
  let comma = -1;
  if (code === DOT || (code === COMMA && decimalComma)) {
    if (code === COMMA) comma = k;
    code = text.charCodeAt(++k);
    while (isDigit(code)) {
      digits++;
      code = text.charCodeAt(++k);
    }
  }
  if (digits === 0) return Number.NaN;
  if (code === LOWER_E || code === UPPER_E) {
    code = text.charCodeAt(++k);
    if (code === PLUS || code === MINUS) code = text.charCodeAt(++k);
    if (!isDigit(code)) return Number.NaN;
    while (isDigit(code)) code = text.charCodeAt(++k);
  }
  if (k !== end) return Number.NaN;
  const plain = i === 0 && end === length ? text : text.slice(i, end);
  return comma === -1 ? Number(plain) : Number(plain.replace(',', '.'));
}
