import { approximateTokens } from '../chunking/index.ts';
import type { ChatMessage, LlmSource } from './types.ts';

const SYSTEM = `You answer questions using only the numbered sources below. Cite every claim with the number of its source in brackets, like [1] or [2][3]. If the sources do not contain the answer, say so plainly; do not invent facts.`;

/**
 * The messages a generative model gets for a RAG answer: instructions and the numbered
 * sources first (as many as fit `sourceBudget` tokens — counted by the model's tokenizer when it has one — best first), then the chat.
 */
export function ragMessages(
  messages: ChatMessage[],
  sources: LlmSource[],
  sourceBudget: number,
  countTokens: (text: string) => number = approximateTokens,
): { messages: ChatMessage[]; used: LlmSource[] } {
  const used: LlmSource[] = [];
  let spent = 0;
  for (const source of sources) {
    const cost = countTokens(source.text) + 16;
    if (spent + cost > sourceBudget) break;
    used.push(source);
    spent += cost;
  }
  if (used.length === 0) {
    const none: ChatMessage = { role: 'system', content: 'No source was found for this question in the user\'s documents: say plainly that their documents do not answer it.' };
    return { messages: [none, ...messages.filter((m) => m.role !== 'system')], used };
  }
  const listing = used.map((s) => `[${s.n}] ${s.title ?? 'Untitled'}${s.page ? `, page ${s.page}` : ''}\n${s.text}`).join('\n\n');
  return { messages: [{ role: 'system', content: `${SYSTEM}\n\nSources:\n\n${listing}` }, ...messages.filter((m) => m.role !== 'system')], used };
}

/** The citation numbers a text uses, e.g. "… [2] … [1][3]" → [1, 2, 3]. */
export function citationsIn(text: string, known: number[]): number[] {
  const found = new Set<number>();
  for (const match of text.matchAll(/\[(\d{1,3})\]/g)) {
    const n = Number(match[1]);
    if (known.includes(n)) found.add(n);
  }
  return [...found].sort((a, b) => a - b);
}
