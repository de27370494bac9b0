import type { Knex } from 'knex';
import type { TenantScope } from '../ports/tenant-scope.ts';
import { preparedQuery } from './prepared.ts';

export interface ChatRow {
  id: string;
  tenantId: string;
  userId: string;
  title: string;
  createdAt: Date;
  updatedAt: Date;
}

export type MessageRole = 'system' | 'user' | 'assistant';

export interface MessageRow {
  id: string;
  chatId: string;
  role: MessageRole;
  content: string;
  sources: unknown[];
  usage: Record<string, unknown> | null;
  createdAt: Date;
}

/** Chats belong to one user inside one tenant: every read takes both. */
export class ChatsRepository {
  constructor(private readonly knex: Knex) {}

  async create(scope: TenantScope, userId: string, title?: string): Promise<ChatRow> {
    const [row] = await this.knex('chats')
      .insert({ tenant_id: scope.tenantId, user_id: userId, ...(title && { title }) })
      .returning('*');
    return toChat(row);
  }

  async get(scope: TenantScope, userId: string, id: string): Promise<ChatRow | null> {
    const row = await this.knex('chats').where({ tenant_id: scope.tenantId, user_id: userId, id }).first();
    return row ? toChat(row) : null;
  }

  async list(scope: TenantScope, userId: string, limit = 100): Promise<ChatRow[]> {
    const rows = await this.knex('chats')
      .where({ tenant_id: scope.tenantId, user_id: userId })
      .orderBy('updated_at', 'desc')
      .limit(Math.min(Math.max(limit, 1), 500));
    return rows.map(toChat);
  }

  async rename(scope: TenantScope, userId: string, id: string, title: string): Promise<ChatRow | null> {
    const [row] = await this.knex('chats')
      .where({ tenant_id: scope.tenantId, user_id: userId, id })
      .update({ title, updated_at: this.knex.fn.now() })
      .returning('*');
    return row ? toChat(row) : null;
  }

  async delete(scope: TenantScope, userId: string, id: string): Promise<boolean> {
    return (await this.knex('chats').where({ tenant_id: scope.tenantId, user_id: userId, id }).delete()) === 1;
  }

  /** Stores a message and touches its chat in one statement: one round trip on the answer's path. */
  async addMessage(
    scope: TenantScope,
    chatId: string,
    message: { id?: string; role: MessageRole; content: string; sources?: unknown[]; usage?: Record<string, unknown> },
  ): Promise<MessageRow> {
    // Prepared (lib/repositories/prepared.ts), as the read below: every answer stores two.
    // preparedQuery: on PostgreSQL straight to node-pg, without knex's runner.
    const { rows } = await preparedQuery(
      this.knex,
      `with inserted as (
         insert into messages (id, tenant_id, chat_id, role, content, sources, usage)
         values (coalesce(?::uuid, gen_random_uuid()), ?, ?, ?, ?, ?::jsonb, ?::jsonb)
         returning *
       ), touched as (
         update chats set updated_at = now() where tenant_id = ? and id = ?
       )
       select * from inserted`,
      [message.id ?? null, scope.tenantId, chatId, message.role, message.content, JSON.stringify(message.sources ?? []), message.usage ? JSON.stringify(message.usage) : null, scope.tenantId, chatId],
    );
    return toMessage(rows[0]!);
  }

  /**
   * A user's chat with its last `limit` messages, oldest first (the context of the next
   * answer), or null when the chat is not the user's: one statement, so asking costs one
   * round trip before the answer starts, and no message is read unless the chat is owned.
   */
  async getWithRecentMessages(scope: TenantScope, userId: string, id: string, limit: number): Promise<{ chat: ChatRow; recent: MessageRow[] } | null> {
    // Prepared: PostgreSQL parses and plans it once per connection, not on every answer,
    // while the answer's llm call is in flight on the same two cores (docs/sse.md).
    const { rows } = await preparedQuery(
      this.knex,
      `select c.*, coalesce((
         select json_agg(m order by m.seq) from (
           select * from messages where tenant_id = c.tenant_id and chat_id = c.id order by seq desc limit ?
         ) m
       ), '[]'::json) as recent
       from chats c where c.tenant_id = ? and c.user_id = ? and c.id = ?`,
      [Math.min(Math.max(limit, 1), 1000), scope.tenantId, userId, id],
    );
    const row = rows[0] as Record<string, unknown> | undefined;
    return row ? { chat: toChat(row), recent: (json(row.recent) as Array<Record<string, unknown>>).map(toMessage) } : null;
  }

  async listMessages(scope: TenantScope, chatId: string, limit = 200): Promise<MessageRow[]> {
    const rows = await this.knex('messages')
      .where({ tenant_id: scope.tenantId, chat_id: chatId })
      .orderBy('seq')
      .limit(Math.min(Math.max(limit, 1), 1000));
    return rows.map(toMessage);
  }
}

const json = (v: unknown) => (typeof v === 'string' ? JSON.parse(v) : v);

function toChat(row: Record<string, unknown>): ChatRow {
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    userId: row.user_id as string,
    title: row.title as string,
    createdAt: new Date(row.created_at as string),
    updatedAt: new Date(row.updated_at as string),
  };
}

function toMessage(row: Record<string, unknown>): MessageRow {
  return {
    id: row.id as string,
    chatId: row.chat_id as string,
    role: row.role as MessageRole,
    content: row.content as string,
    sources: json(row.sources) as unknown[],
    usage: json(row.usage) as Record<string, unknown> | null,
    createdAt: new Date(row.created_at as string),
  };
}
