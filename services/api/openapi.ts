import { ROLES } from '../../lib/auth/jwt.ts';
import { PERMISSIONS } from '../../lib/auth/permissions.ts';
import { ERROR_CATALOGUE, type ErrorCode } from '../../lib/errors.ts';
import type { Endpoint, JsonSchema, ParamsSchema } from './routes/module.ts';

/** Codes any authenticated route may answer, besides those it declares. */
const COMMON_ERRORS: ErrorCode[] = ['MISSING_TOKEN', 'INVALID_TOKEN', 'TOKEN_EXPIRED', 'VALIDATION_FAILED', 'OVERLOADED', 'SERVICE_UNAVAILABLE', 'UPSTREAM_TIMEOUT', 'INTERNAL'];

export const ERROR_BODY_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message', 'status', 'retryable'],
      properties: {
        code: { enum: Object.keys(ERROR_CATALOGUE) },
        message: { type: 'string' },
        status: { type: 'integer' },
        retryable: { type: 'boolean' },
        request_id: { type: 'string' },
        details: {},
      },
    },
  },
};

type Rule = string | Record<string, unknown> | Rule[];

/** One fastest-validator rule as JSON Schema (the subset ragmesh's routes use). */
export function ruleToSchema(rule: Rule): JsonSchema {
  if (Array.isArray(rule)) return { oneOf: rule.map(ruleToSchema) };
  const r: Record<string, unknown> = typeof rule === 'string' ? { type: rule.replace(/\|optional$/, '') } : rule;
  const out: JsonSchema = {};
  switch (r.type) {
    case 'string':
      out.type = 'string';
      if (typeof r.min === 'number') out.minLength = r.min;
      if (typeof r.max === 'number') out.maxLength = r.max;
      if (r.pattern instanceof RegExp) out.pattern = r.pattern.source;
      break;
    case 'uuid':
      out.type = 'string';
      out.format = 'uuid';
      break;
    case 'number':
      out.type = r.integer ? 'integer' : 'number';
      if (typeof r.min === 'number') out.minimum = r.min;
      if (typeof r.max === 'number') out.maximum = r.max;
      if (r.positive) out.exclusiveMinimum = 0;
      break;
    case 'boolean':
      out.type = 'boolean';
      break;
    case 'date':
      out.type = 'string';
      out.format = 'date-time';
      break;
    case 'enum':
      out.enum = r.values;
      break;
    case 'array':
      out.type = 'array';
      if (r.items) out.items = ruleToSchema(r.items as Rule);
      if (typeof r.min === 'number') out.minItems = r.min;
      if (typeof r.max === 'number') out.maxItems = r.max;
      break;
    case 'object':
      Object.assign(out, paramsToSchema((r.props ?? {}) as ParamsSchema));
      break;
    default:
      break;
  }
  if (r.default !== undefined) out.default = r.default;
  return out;
}

const isOptional = (rule: unknown): boolean =>
  typeof rule === 'string' ? rule.endsWith('|optional') : Array.isArray(rule) ? false : Boolean((rule as { optional?: boolean; default?: unknown }).optional || (rule as { default?: unknown }).default !== undefined);

export function paramsToSchema(params: ParamsSchema): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const [name, rule] of Object.entries(params)) {
    if (name.startsWith('$$')) continue;
    properties[name] = ruleToSchema(rule as Rule);
    if (!isOptional(rule)) required.push(name);
  }
  return { type: 'object', properties, ...(required.length ? { required } : {}) };
}

const openApiPath = (path: string) => path.replace(/:([A-Za-z_]+)/g, '{$1}');

/**
 * The OpenAPI 3.1 document of every declared route: parameters and request bodies from
 * the same schemas the gateway validates with, response schemas, roles, and the error
 * codes each route may answer with their statuses. Served at /api/openapi.json.
 */
export function openApiDocument(endpoints: Endpoint[], info: { version: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const e of endpoints) {
    const pathParams = [...e.path.matchAll(/:([A-Za-z_]+)/g)].map((m) => m[1]!);
    const schema = e.params ? paramsToSchema(e.params) : { type: 'object', properties: {} };
    const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
    const required = new Set((schema.required as string[] | undefined) ?? []);
    const parameters: unknown[] = pathParams.map((name) => ({ name, in: 'path', required: true, schema: props[name] ?? { type: 'string' } }));
    const rest = Object.entries(props).filter(([name]) => !pathParams.includes(name));
    let requestBody: unknown;
    if (e.body === 'multipart') {
      requestBody = { required: true, content: { 'multipart/form-data': { schema: { type: 'object', required: ['file'], properties: { file: { type: 'string', contentMediaType: 'application/octet-stream' }, source_id: { type: 'string' }, tags: { type: 'string' }, title: { type: 'string' } } } } } };
    } else if (e.body === 'binary') {
      requestBody = { required: true, content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } };
    } else if (e.method === 'GET' || e.method === 'DELETE') {
      for (const [name, s] of rest) parameters.push({ name, in: 'query', required: required.has(name), schema: s });
    } else if (rest.length > 0) {
      const bodyRequired = rest.map(([name]) => name).filter((name) => required.has(name));
      requestBody = {
        required: bodyRequired.length > 0,
        content: { 'application/json': { schema: { type: 'object', properties: Object.fromEntries(rest), ...(bodyRequired.length ? { required: bodyRequired } : {}) } } },
      };
    }
    const status = String(e.response?.status ?? 200);
    const contentType = e.response?.contentType ?? 'application/json';
    const success =
      contentType === 'none'
        ? { description: 'Done' }
        : { description: e.summary, content: { [contentType]: { schema: e.response?.schema ?? (contentType === 'application/json' ? { type: 'object' } : { type: 'string' }) } } };
    const allowed = e.permission ? PERMISSIONS[e.permission].roles : null;
    const someRefused = allowed !== null && allowed.length < ROLES.length;
    const codes = [...new Set([...(e.errors ?? []), ...(e.public ? [] : COMMON_ERRORS), ...(someRefused ? (['FORBIDDEN'] as ErrorCode[]) : [])])];
    const byStatus = new Map<number, ErrorCode[]>();
    for (const code of codes) {
      const s = ERROR_CATALOGUE[code].status;
      byStatus.set(s, [...(byStatus.get(s) ?? []), code]);
    }
    const responses: Record<string, unknown> = { [status]: success };
    for (const [s, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
      responses[String(s)] = { description: list.join(', '), content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    }
    const operation: Record<string, unknown> = {
      operationId: `${e.method.toLowerCase()}${e.path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      summary: e.summary,
      ...(allowed ? { description: `Permission \`${e.permission}\`: ${allowed.join(', ')}` } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(requestBody ? { requestBody } : {}),
      responses,
      ...(e.public ? { security: [] } : {}),
      'x-error-codes': codes,
    };
    paths[openApiPath(e.path)] = { ...(paths[openApiPath(e.path)] ?? {}), [e.method.toLowerCase()]: operation };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'ragmesh', version: info.version, description: 'Generated from the route declarations (services/api/routes/). Error codes: docs/api.md.' },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: { Error: ERROR_BODY_SCHEMA },
    },
    paths,
  };
}
