import { z } from 'zod';
import { VERSION } from '../version.ts';

/**
 * The OpenAPI document is built from the same zod schemas that validate requests: each route
 * module describes its operations here next to its handlers.
 */
export interface OperationSpec {
  method: 'get' | 'put' | 'post' | 'delete' | 'patch';
  /** OpenAPI path, e.g. /{orcid}/webhook/{callback} */
  path: string;
  summary: string;
  description?: string;
  tag: 'ORCID API' | 'Client' | 'Admin' | 'Operations';
  security?: 'bearer' | 'admin' | 'none';
  pathParams?: Record<string, string>;
  query?: z.ZodObject;
  body?: z.ZodType;
  bodyType?: string;
  responses: Record<number, { description: string; schema?: z.ZodType }>;
}

const operations: OperationSpec[] = [];

export function describeOperation(op: OperationSpec): void {
  if (!operations.some((o) => o.method === op.method && o.path === op.path)) operations.push(op);
}

export const orcidErrorSchema = z.object({
  'response-code': z.number().int(),
  'developer-message': z.string(),
  'user-message': z.string(),
  'error-code': z.number().int(),
  'more-info': z.string(),
}).meta({ description: "ORCID's error body (XML with namespace http://www.orcid.org/ns/error when Accept asks for XML)" });

export const oauthErrorSchema = z.object({ error: z.string(), error_description: z.string() });

function schema(s: z.ZodType): unknown {
  return z.toJSONSchema(s, { unrepresentable: 'any', io: 'input' });
}

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const parameters: unknown[] = [];
    for (const [name, description] of Object.entries(op.pathParams ?? {})) parameters.push({ name, in: 'path', required: true, description, schema: { type: 'string' } });
    if (op.query) {
      for (const [name, s] of Object.entries(op.query.shape)) {
        const zs = s as z.ZodType;
        parameters.push({ name, in: 'query', required: !zs.safeParse(undefined).success, schema: schema(zs), ...(zs.description && { description: zs.description }) });
      }
    }
    const responses: Record<string, unknown> = {};
    for (const [code, r] of Object.entries(op.responses)) {
      responses[code] = { description: r.description, ...(r.schema && { content: { 'application/json': { schema: schema(r.schema) } } }) };
    }
    paths[op.path] ??= {};
    paths[op.path]![op.method] = {
      summary: op.summary,
      ...(op.description && { description: op.description }),
      tags: [op.tag],
      ...(parameters.length && { parameters }),
      ...(op.body && { requestBody: { required: true, content: { [op.bodyType ?? 'application/json']: { schema: schema(op.body) } } } }),
      responses,
      security: op.security === 'none' ? [] : op.security === 'admin' ? [{ adminToken: [] }] : [{ bearer: [] }],
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'orcid-webhooks',
      version: VERSION,
      description: "ORCID-compatible webhook registration API, client read endpoints and the admin API. Errors use ORCID's format.",
    },
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A /webhook token from POST /oauth/token' },
        adminToken: { type: 'http', scheme: 'bearer', description: 'The admin token (--admin-token, or the generated file in the data directory)' },
      },
    },
  };
}
