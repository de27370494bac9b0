import { randomUUID } from 'node:crypto';
import { appError } from '../../../lib/errors.ts';
import type { Answerer, AnswerEvents, AnswerOptions, AnswerResult } from '../answering.ts';
import { ChatTurns, heldEvents, sameTurns, type KnownTurns } from '../chat-turns.ts';
import type { ChatMessage } from '../../../lib/llm/types.ts';
import { tenantScope } from '../../../lib/ports/tenant-scope.ts';
import type { ChatRow, MessageRow } from '../../../lib/repositories/chats.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import { openSse, type SseStream } from '../sse.ts';
import { endpoint, type ApiRouteModule, type StreamCall } from './module.ts';
import { isUuid } from '../../../lib/ids.ts';

const MAX_QUESTION = 8000;
/** Concurrent answer streams one user may hold across every api replica, unless CHAT_STREAMS_PER_USER says otherwise. */
export const STREAMS_PER_USER = 3;
/** Earlier turns given to the model as context. */
const HISTORY = 10;

interface AskParams {
  id: string;
  content: string;
  rag: boolean;
  tags?: string[];
  sourceIds?: string[];
  maxTokens?: number;
}

/** The question, in a JSON body (POST) or the query string (EventSource can only GET). */
const ASK_PARAMS = {
  id: 'string',
  // Blank once trimmed is EMPTY_MESSAGE, too long MESSAGE_TOO_LONG: meaning, checked by the route.
  content: { type: 'string', default: '' },
  rag: { type: 'boolean', convert: true, default: true },
  tags: { type: 'array', optional: true, convert: true, items: { type: 'string', min: 1, max: 64 }, max: 32 },
  sourceIds: { type: 'array', optional: true, convert: true, items: { type: 'string', min: 1, max: 256 }, max: 100 },
  maxTokens: { type: 'number', optional: true, convert: true, integer: true, positive: true },
};
const ASK_ERRORS = ['CHAT_NOT_FOUND', 'EMPTY_MESSAGE', 'MESSAGE_TOO_LONG', 'TOO_MANY_STREAMS', 'LLM_BUSY', 'LLM_MODEL_NOT_READY', 'LLM_PROMPT_TOO_LONG'] as const;
const SSE = { contentType: 'text/event-stream' } as const;
const CHAT = {
  type: 'object',
  required: ['id', 'title', 'createdAt', 'updatedAt'],
  properties: { id: { type: 'string' }, title: { type: ['string', 'null'] }, createdAt: { type: 'string' }, updatedAt: { type: 'string' } },
};
const MESSAGE = {
  type: 'object',
  required: ['id', 'role', 'content', 'createdAt'],
  properties: { id: { type: 'string' }, role: { enum: ['user', 'assistant'] }, content: { type: 'string' }, sources: {}, usage: {}, createdAt: { type: 'string' } },
};

/** Resolves after `n` setImmediate passes (what was scheduled for the first one meanwhile has run). */
function nextPasses(n: number): Promise<void> {
  return new Promise<void>((resolve) => (n <= 1 ? setImmediate(resolve) : setImmediate(() => void nextPasses(n - 1).then(resolve))));
}

/**
 * Chats: create, list, rename, delete; messages persisted with the sources used. Asking
 * streams the answer over SSE: `meta`, `sources`, `token`…, `done` (usage, citations)
 * or `error`; heartbeats every 15 s. The client closing the connection aborts the
 * generation upstream.
 */
export function chatRoutes(runtime: Runtime, answerer: Answerer): ApiRouteModule {
  const chats = async () => (await runtime.stores.repos()).chats;
  // Each chat's last turns as this process last read or wrote them: an answer starts before its read returns.
  const turns = new ChatTurns(HISTORY);
  const chatOf = async (ctx: RagmeshContext, rawId: unknown): Promise<ChatRow> => {
    const auth = ctx.meta.auth!;
    const id = isUuid(rawId) ? rawId : null;
    const chat = id ? await (await chats()).get(tenantScope(auth.tenantId), auth.userId, id) : null;
    if (!chat) throw appError('CHAT_NOT_FOUND', `No chat ${String(rawId).slice(0, 64)}`);
    return chat;
  };

  // This process's answers in progress, per user (tenant and user): one is started before
  // its stream slot is held only while they are fewer than the user's cap (see `ask`).
  const inProgress = new Map<string, number>();
  const perUserCap = runtime.config.chat.streamsPerUser;

  const ask = async ({ req, res, ctx, params, admitted }: StreamCall<AskParams>): Promise<void> => {
    const auth = ctx.meta.auth!;
    const scope = tenantScope(auth.tenantId);
    const content = params.content.trim();
    const repo = await chats();
    const readable = content && content.length <= MAX_QUESTION && isUuid(params.id);
    // The turns this process knows of the chat, from an earlier read or create by this
    // same user: the answer starts from them at once, and the read checks them.
    const known = readable ? turns.get(scope.tenantId, auth.userId, params.id) : undefined;
    // The chat (owned by the caller) and its context in one statement, read while the
    // gateway takes the stream slot (readsBeforeAdmission); asked below.
    const readChat = () => repo.getWithRecentMessages(scope, auth.userId, params.id, HISTORY);
    let reading: ReturnType<typeof readChat> = Promise.resolve(null);
    const chatId = params.id;
    const question: ChatMessage = { role: 'user', content };
    // The question is stored once the answer's first token has left (the turn after it; an
    // answer with no token: before `done`): neither the insert's round trip nor its work
    // sits between the request and the first token — on an embedded node PGlite runs its
    // statements on the main thread, which during prompt processing takes a core from
    // llama.cpp's threads — and a refused answer (429, 503) leaves nothing to delete. Its id is chosen here so `meta` can name it at
    // once; `done` waits for the row, and a failed insert fails the stream.
    const questionId = randomUUID();
    let storingQuestion: Promise<unknown> | null = null;
    const storeQuestion = (): Promise<unknown> => {
      if (!storingQuestion) {
        storingQuestion = repo.addMessage(scope, chatId, { id: questionId, role: 'user', content });
        storingQuestion.catch(() => undefined);
      }
      return storingQuestion;
    };
    const kv = await runtime.stores.kv();

    // The client may leave before the answer starts as well as during it. Not once the
    // answer is over: an abort builds a DOMException with its stack, for nothing to stop.
    const abort = new AbortController();
    let over = false;
    res.once('close', () => over || abort.abort());
    // Headers go out once the answer is coming, so a busy llm is still a plain 503 + Retry-After.
    let sse: SseStream | null = null;
    const stream = (): SseStream => {
      if (!sse) {
        sse = openSse(req, res);
        sse.send('meta', { requestId: ctx.requestID, chatId, messageId: questionId });
      }
      return sse;
    };
    let firstToken = true;
    const live: AnswerEvents = {
      ready: () => void stream(),
      sources: (sources, degraded) => stream().send('sources', { sources, degraded }),
      token: (text) => {
        const sse = stream();
        sse.send('token', { text });
        if (firstToken) {
          firstToken = false;
          // The first token leaves now, with the headers, rather than after the rest of what came with it.
          sse.flush();
          setImmediate(storeQuestion);
        }
      },
    };
    const options: AnswerOptions = {
      rag: params.rag,
      filters: params.tags || params.sourceIds ? { tags: params.tags, sourceIds: params.sourceIds } : undefined,
      maxTokens: params.maxTokens,
    };
    const attempt = (from: KnownTurns, events: AnswerEvents, signal: AbortSignal) => answerer.answer(ctx, kv, scope, [...from.turns, question], options, events, signal);
    /** An answer from the known turns whose events are held until the slot and the read allow them. */
    const startEarly = (from: KnownTurns) => {
      // Aborted with the request too. Not AbortSignal.any: it costs a WeakRef and a
      // finalization registration per answer, for one listener on a signal that lives as
      // long as the request.
      const speculation = new AbortController();
      if (abort.signal.aborted) speculation.abort();
      else abort.signal.addEventListener('abort', () => speculation.abort(), { once: true });
      const held = heldEvents();
      const early = attempt(from, held.events, speculation.signal);
      early.catch(() => undefined);
      return { speculation, held, early };
    };

    const userKey = `${scope.tenantId}\u0000${auth.userId}`;
    const inProgressBefore = inProgress.get(userKey) ?? 0;
    inProgress.set(userKey, inProgressBefore + 1);
    try {
      // Known turns, a plain chat question and fewer than the cap of this user's answers
      // in progress here: the llm is asked now, while the gateway's slot command is in
      // flight, and nothing of
      // that answer reaches the client (nor is stored) until the slot is held and the read
      // agrees. Refused (429 TOO_MANY_STREAMS, or the store down), it is aborted. Past the
      // cap in this process, the slot is waited for first, as for an unknown chat: a
      // user over the cap starts no generation on one api, and at most (replicas × cap)
      // across replicas, each aborted one store round trip later (docs/sse.md).
      // Plain chat only: a RAG answer starts with its search, work not to do for a refused
      // slot, and tens of ms beside which the slot's round trip is nothing.
      const early = known && !params.rag && inProgressBefore < perUserCap ? startEarly(known) : null;
      // When the turns are known the read is not what the answer waits for: it is asked
      // once the slot's command (sent on the next tick) and the llm call (amqplib writes
      // on a setImmediate pass scheduled meanwhile) have left, so its work delays neither.
      reading = !readable ? Promise.resolve(null) : known ? nextPasses(early ? 2 : 1).then(readChat) : readChat();
      reading.catch(() => undefined);
      try {
        await admitted;
      } catch (err) {
        early?.speculation.abort();
        throw err;
      }
      if (!content) throw appError('EMPTY_MESSAGE', 'The message is empty');
      if (content.length > MAX_QUESTION) throw appError('MESSAGE_TOO_LONG', `At most ${MAX_QUESTION} characters`);
      await answerAfterAdmission(early);
    } finally {
      const left = (inProgress.get(userKey) ?? 1) - 1;
      if (left > 0) inProgress.set(userKey, left);
      else inProgress.delete(userKey);
    }

    async function answerAfterAdmission(earlyStart: ReturnType<typeof startEarly> | null): Promise<void> {
      /** The read's verdict: the chat's turns as they are, or 404 (and nothing known of it any more). */
      const read = async (): Promise<KnownTurns> => {
        const found = await reading;
        if (!found) {
          turns.forget(scope.tenantId, auth.userId, chatId);
          throw appError('CHAT_NOT_FOUND', `No chat ${String(params.id).slice(0, 64)}`);
        }
        return turns.set(scope.tenantId, auth.userId, chatId, found.recent);
      };
      /** The turns the answer used, once the read has confirmed them. */
      let used: KnownTurns | null = null;
      try {
        let result: AnswerResult | null;
        if (known) {
          // This api read (or created) the chat for this same user before: the answer starts
          // from the turns it knows while PostgreSQL is asked, and nothing of it reaches the
          // client until the read agrees. A chat gone (404) or changed meanwhile (another
          // replica, another answer) aborts that generation: the client gets the 404, or the
          // answer to the turns the read found.
          const { speculation, held, early } = earlyStart ?? startEarly(known);
          let confirmed: KnownTurns;
          try {
            confirmed = await read();
          } catch (err) {
            speculation.abort();
            throw err;
          }
          if (sameTurns(confirmed.turns, known.turns)) {
            used = confirmed;
            held.release(live);
            result = await early;
          } else {
            speculation.abort();
            runtime.logger.debug({ chatId }, 'chat turns changed since this api last saw them: answer restarted from the read');
            used = confirmed;
            result = await attempt(confirmed, live, abort.signal);
          }
        } else {
          used = await read();
          result = await attempt(used, live, abort.signal);
        }
        await storeQuestion();
        if (!result) {
          turns.forgetChat(used); // the client left: its question is kept, no answer is
          return;
        }

        const saved = await repo.addMessage(scope, chatId, {
          role: 'assistant',
          content: result.content,
          // With snippet and both legs' ranks, as the live `sources` event had them.
          sources: result.shown,
          usage: { ...result.usage, finishReason: result.finishReason, cached: result.cached },
        });
        turns.advance(used, [question, { role: 'assistant', content: result.content }]);
        stream().send('done', { messageId: saved.id, usage: result.usage, citations: result.citations, finishReason: result.finishReason, cached: result.cached });
      } catch (err) {
        turns.forgetChat(used);
        if (!sse && !res.headersSent) {
          // Refused before it started: the question was not stored, the client gets the HTTP error.
          throw err;
        }
        // The answer started, then failed: the question is kept, as a started answer's is.
        void storeQuestion();
        const e = err as { type?: string; message?: string; code?: number };
        stream().send('error', { code: typeof e.type === 'string' ? e.type : 'INTERNAL', message: (e.code ?? 500) >= 500 && !e.type ? 'The answer failed' : (e.message ?? 'The answer failed') });
        runtime.logger.warn({ err }, 'chat answer failed');
      } finally {
        over = true;
        (sse as SseStream | null)?.close();
      }
    }
  };

  return {
    endpoints: [
      endpoint<{ title?: string }>({
        method: 'POST',
        path: '/api/v1/chats',
        permission: 'chats.write',
        summary: 'Start a chat',
        params: { title: { type: 'string', min: 1, max: 200, optional: true } },
        response: { status: 201, schema: CHAT },
        action: 'chats.create',
        async handler(ctx) {
          const auth = ctx.meta.auth!;
          const chat = await (await chats()).create(tenantScope(auth.tenantId), auth.userId, ctx.params.title);
          // Made by this user just now, with no turns: its first answer need not wait for a read.
          turns.set(auth.tenantId, auth.userId, chat.id, []);
          ctx.meta.$location = `/api/v1/chats/${chat.id}`;
          return chatView(chat);
        },
      }),
      endpoint({
        method: 'GET',
        path: '/api/v1/chats',
        permission: 'chats.read',
        summary: "The caller's chats",
        response: { schema: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: CHAT } } } },
        action: 'chats.list',
        async handler(ctx: RagmeshContext) {
          const auth = ctx.meta.auth!;
          return { items: (await (await chats()).list(tenantScope(auth.tenantId), auth.userId)).map(chatView) };
        },
      }),
      endpoint<{ id: string }>({
        method: 'GET',
        path: '/api/v1/chats/:id',
        permission: 'chats.read',
        summary: 'One chat with its messages',
        params: { id: 'string' },
        response: { schema: { ...CHAT, required: [...CHAT.required, 'messages'], properties: { ...CHAT.properties, messages: { type: 'array', items: MESSAGE } } } },
        errors: ['CHAT_NOT_FOUND'],
        action: 'chats.get',
        async handler(ctx) {
          const chat = await chatOf(ctx, ctx.params.id);
          const messages = await (await chats()).listMessages(tenantScope(chat.tenantId), chat.id, 1000);
          return { ...chatView(chat), messages: messages.map(messageView) };
        },
      }),
      endpoint<{ id: string; title: string }>({
        method: 'PATCH',
        path: '/api/v1/chats/:id',
        permission: 'chats.write',
        summary: 'Rename a chat',
        params: { id: 'string', title: { type: 'string', min: 1, max: 200 } },
        response: { schema: CHAT },
        errors: ['CHAT_NOT_FOUND'],
        action: 'chats.rename',
        async handler(ctx) {
          const chat = await chatOf(ctx, ctx.params.id);
          const renamed = await (await chats()).rename(tenantScope(chat.tenantId), chat.userId, chat.id, ctx.params.title);
          return chatView(renamed!);
        },
      }),
      endpoint<{ id: string }>({
        method: 'DELETE',
        path: '/api/v1/chats/:id',
        permission: 'chats.write',
        summary: 'Delete a chat and its messages',
        params: { id: 'string' },
        response: { schema: { type: 'object', required: ['id', 'deleted'], properties: { id: { type: 'string' }, deleted: { const: true } } } },
        errors: ['CHAT_NOT_FOUND'],
        action: 'chats.delete',
        async handler(ctx) {
          const chat = await chatOf(ctx, ctx.params.id);
          await (await chats()).delete(tenantScope(chat.tenantId), chat.userId, chat.id);
          turns.forget(chat.tenantId, chat.userId, chat.id);
          return { id: chat.id, deleted: true };
        },
      }),
      endpoint<AskParams>({
        method: 'POST',
        path: '/api/v1/chats/:id/messages',
        permission: 'chats.ask',
        summary: 'Ask: the answer streams over SSE (meta, sources, token…, done | error)',
        params: ASK_PARAMS,
        response: SSE,
        errors: ASK_ERRORS,
        streamCap: 'answer',
        readsBeforeAdmission: true,
        stream: ask,
      }),
      endpoint<AskParams>({
        method: 'GET',
        path: '/api/v1/chats/:id/messages/stream',
        permission: 'chats.ask',
        summary: 'Ask with the question in the query string, for EventSource (tags comma-separated)',
        params: ASK_PARAMS,
        response: SSE,
        errors: ASK_ERRORS,
        streamCap: 'answer',
        readsBeforeAdmission: true,
        stream: (call) => ask({ ...call, params: { ...call.params, tags: splitList(call.params.tags), sourceIds: splitList(call.params.sourceIds) } }),
      }),
    ],

    events: {
      // A new llm model version makes new answers: cache keys must not keep the old version.
      'models.switched': {
        handler(ctx: RagmeshContext<{ kind: string }>) {
          if (ctx.params.kind === 'llm') answerer.forgetLlmInfo();
        },
      },
    },

  };
}

/** `tags=a,b` in a query string arrives as one string: a list, as a JSON body sends it. */
function splitList(value: string[] | undefined): string[] | undefined {
  return value?.flatMap((v) => v.split(',')).filter(Boolean);
}

const chatView = (c: ChatRow) => ({ id: c.id, title: c.title, createdAt: c.createdAt.toISOString(), updatedAt: c.updatedAt.toISOString() });
const messageView = (m: MessageRow) => ({ id: m.id, role: m.role, content: m.content, sources: m.sources, usage: m.usage, createdAt: m.createdAt.toISOString() });
