import iconv from 'iconv-lite';

/**
 * Decodes plain text in any common encoding: UTF-8 (with or without BOM), UTF-16 LE/BE
 * (BOM, or NUL bytes on one side of each pair), else the charset the document declares
 * (an HTML meta tag), else Windows-1251 or KOI8-R — the one whose decoding reads more
 * like Russian — or Windows-1252 when neither reads as Russian words.
 */
export function decodeText(bytes: Buffer, declared?: string): { text: string; encoding: string } {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return { text: bytes.subarray(3).toString('utf8'), encoding: 'utf-8' };
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return { text: iconv.decode(bytes.subarray(2), 'utf16le'), encoding: 'utf-16le' };
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return { text: iconv.decode(bytes.subarray(2), 'utf16be'), encoding: 'utf-16be' };
  const utf16 = utf16WithoutBom(bytes);
  if (utf16) return { text: iconv.decode(bytes, utf16), encoding: utf16 };
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), encoding: 'utf-8' };
  } catch {
    // Not UTF-8: a single-byte Cyrillic code page, or Latin-1 if nothing reads as Russian.
  }
  const named = declared?.trim().toLowerCase();
  if (named && !/^utf-?(8|16)/.test(named) && iconv.encodingExists(named)) return { text: iconv.decode(bytes, named), encoding: named };
  // Scored on a sample: a code page shows in the first few hundred kilobytes.
  const sample = bytes.subarray(0, 256 * 1024);
  const candidates = (['windows-1251', 'koi8-r'] as const).map((encoding) => {
    const text = iconv.decode(sample, encoding);
    return { text, encoding, score: russianScore(text) };
  });
  candidates.sort((a, b) => b.score - a.score);
  const best = candidates[0]!;
  if (best.score > 0 && !mostlyMixedWords(best.text)) return { text: iconv.decode(bytes, best.encoding), encoding: best.encoding };
  return { text: iconv.decode(bytes, 'windows-1252'), encoding: 'windows-1252' };
}

export function utf16WithoutBom(bytes: Buffer): 'utf16le' | 'utf16be' | null {
  const n = Math.min(bytes.length, 4096) & ~1;
  if (n < 4) return null;
  let evenNul = 0;
  let oddNul = 0;
  for (let i = 0; i < n; i += 2) {
    if (bytes[i] === 0) evenNul++;
    if (bytes[i + 1] === 0) oddNul++;
  }
  const pairs = n / 2;
  // Cyrillic UTF-16 has 0x04 as its high byte, not 0x00; count those too.
  let evenCyr = 0;
  let oddCyr = 0;
  for (let i = 0; i < n; i += 2) {
    if (bytes[i] === 0x04) evenCyr++;
    if (bytes[i + 1] === 0x04) oddCyr++;
  }
  if ((oddNul + oddCyr) / pairs > 0.6 && (evenNul + evenCyr) / pairs < 0.1) return 'utf16le';
  if ((evenNul + evenCyr) / pairs > 0.6 && (oddNul + oddCyr) / pairs < 0.1) return 'utf16be';
  return null;
}

// The most frequent Russian letters, lower case; KOI8-R decoded as CP1251 (and back)
// turns them into upper case or rare letters, so the right decoding scores highest.
const FREQUENT = new Set('оеаинтсрвлкмдпуяыь');

function russianScore(text: string): number {
  let score = 0;
  for (const ch of text) {
    if (FREQUENT.has(ch)) score += 2;
    else if (/[а-яё]/.test(ch)) score += 1;
    else if (/[А-ЯЁ]/.test(ch)) score -= 1;
  }
  return score;
}

/**
 * Western text read as a Cyrillic code page puts single Cyrillic letters inside Latin
 * words ("cafй"); real Russian has whole Cyrillic words.
 */
function mostlyMixedWords(text: string): boolean {
  let mixed = 0;
  let cyrillic = 0;
  for (const word of text.slice(0, 100_000).match(/\p{L}+/gu) ?? []) {
    const hasCyrillic = /[\u0400-\u04ff]/.test(word);
    if (!hasCyrillic) continue;
    if (/[A-Za-z]/.test(word)) mixed++;
    else cyrillic++;
  }
  return mixed > cyrillic;
}
