/** The GSM 03.38 default alphabet: one septet each. */
const GSM7_BASIC = new Set(
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà',
);
/** The extension table: an escape plus one septet, so two each. */
const GSM7_EXTENDED = new Set('^{}\\[~]|€\f');

/** One segment: 160 GSM-7 septets, or 70 UCS-2 characters when anything is outside GSM-7. */
export const GSM7_SEGMENT = 160;
export const UCS2_SEGMENT = 70;

const lookalikes: Record<string, string> = {
  '`': "'", '‘': "'", '’': "'", '‚': "'", '′': "'", '“': '"', '”': '"', '„': '"', '″': '"',
  '–': '-', '—': '-', '‐': '-', '‑': '-', '−': '-', '…': '...', '•': '*', '·': '.', '→': '->', '←': '<-',
  '\u00a0': ' ', '\u2009': ' ', '\u202f': ' ', '\t': ' ', '×': 'x', '✓': 'ok', '✗': 'x',
};

/** Septets a GSM-7 text takes, or undefined when a character is outside GSM-7. */
export function gsm7Length(text: string): number | undefined {
  let n = 0;
  for (const ch of text) {
    if (GSM7_BASIC.has(ch)) n += 1;
    else if (GSM7_EXTENDED.has(ch)) n += 2;
    else return undefined;
  }
  return n;
}

/**
 * Makes a text fit one SMS segment where it can: typographic characters become their GSM-7
 * look-alikes; text that still needs UCS-2 stays so when it fits 70 characters, otherwise the
 * odd characters become "?" so 160 fit; what is still too long is cut with "...".
 */
export function fitOneSegment(input: string): string {
  const text = [...input.replace(/\s*\n\s*/g, ' ')].map((ch) => lookalikes[ch] ?? ch).join('');
  if (gsm7Length(text) === undefined && [...text].length <= UCS2_SEGMENT) return text;
  const gsm = [...text].map((ch) => (GSM7_BASIC.has(ch) || GSM7_EXTENDED.has(ch) ? ch : '?')).join('');
  if (gsm7Length(gsm)! <= GSM7_SEGMENT) return gsm;
  let out = '';
  let used = 0;
  const budget = GSM7_SEGMENT - 3;
  for (const ch of gsm) {
    const cost = GSM7_EXTENDED.has(ch) ? 2 : 1;
    if (used + cost > budget) break;
    out += ch;
    used += cost;
  }
  return `${out.trimEnd()}...`;
}
