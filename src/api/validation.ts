/**
 * Request validation: the route schemas (src/api/schemas.ts) compiled by Ajv, and Ajv's errors
 * turned into DCS's: DCS.4063 for a value outside an enumeration, DCS.4800 for anything else,
 * both naming the field the way DCS does (`source_instance.addrs`, `backup_files.files[0]`).
 *
 * Two Ajv instances: bodies are JSON and keep their types (a number is not a name), while query
 * strings and path parameters arrive as text and are coerced (`?limit=5` is the integer 5).
 */
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';
import { ApiError, Errors } from './errors.js';

const common: Options = {
  allErrors: false,
  // Errors carry their schema, so the mapper can use a rule's description as the reason.
  verbose: true,
  strict: true,
  strictRequired: false,
  strictTypes: false,
  // Route schemas hold documentation keywords for the OpenAPI document.
  keywords: ['x-ferry-extension', 'example'],
};

const bodyAjv = new Ajv({ ...common, coerceTypes: false, useDefaults: false, removeAdditional: false });
const textAjv = new Ajv({ ...common, coerceTypes: true, useDefaults: true, removeAdditional: false });

/** Fastify's validator compiler: bodies through one instance, query strings and params through the other. */
export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const validate: ValidateFunction = (httpPart === 'body' ? bodyAjv : textAjv).compile(schema as object);
  return validate as unknown as ReturnType<FastifySchemaCompiler<unknown>>;
};

/** `/backup_files/files/0/file_name` → `backup_files.files[0].file_name`. */
function fieldName(instancePath: string, extra?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

function described(e: ErrorObject): string | undefined {
  const d = (e.parentSchema as { description?: unknown } | undefined)?.description;
  return typeof d === 'string' ? d : undefined;
}

function enumOf(e: ErrorObject): unknown[] | undefined {
  const values = (e.parentSchema as { enum?: unknown } | undefined)?.enum;
  return Array.isArray(values) ? values : undefined;
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/** The reason in words, from the keyword that failed; never the value (it may be a password). */
function why(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return 'It is required.';
    case 'type': {
      const t = Array.isArray(p.type) ? p.type : String(p.type).split(',');
      const wanted = t.filter((x) => x !== 'null').map((x) => (x === 'integer' ? 'an integer' : x === 'object' || x === 'array' ? `an ${x}` : `a ${x}`));
      return `It must be ${wanted.join(' or ')}.`;
    }
    case 'maxLength':
      return `It must be at most ${plural(Number(p.limit), 'character')}.`;
    case 'minLength':
      return Number(p.limit) === 1 ? 'It must not be empty.' : `It must be at least ${plural(Number(p.limit), 'character')}.`;
    case 'maximum':
      return `It must be at most ${p.limit}.`;
    case 'minimum':
      return `It must be at least ${p.limit}.`;
    case 'maxItems':
      return `At most ${plural(Number(p.limit), 'entry')} are allowed.`.replace('entrys', 'entries');
    case 'minItems':
      return `At least ${plural(Number(p.limit), 'entry')} ${Number(p.limit) === 1 ? 'is' : 'are'} needed.`.replace('entrys', 'entries');
    case 'pattern':
      return described(e) ?? 'It has the wrong format.';
    default:
      return described(e) ?? 'It is not valid.';
  }
}

/**
 * The DCS error for a failed validation. With allErrors off Ajv stops at the first failing
 * rule, except inside oneOf/anyOf, whose branch errors come before the combined one: the
 * combined error names the field and its description says what is expected.
 */
export function dcsValidationError(errors: readonly ErrorObject[], part: string): ApiError {
  const combined = errors.find((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf');
  const e = combined ?? errors.find((x) => x.keyword !== 'if') ?? errors[0];
  if (!e) return Errors.invalidParameter(part);
  const field = fieldName(e.instancePath, e.keyword === 'required' ? String((e.params as { missingProperty?: unknown }).missingProperty) : undefined) || part;
  if (combined) return Errors.invalidParameter(field, described(combined) ?? why(combined));
  const allowed = enumOf(e);
  if (e.keyword === 'enum' || (allowed && e.keyword === 'type')) {
    const values = (allowed ?? []).filter((v) => v !== null).map(String);
    return Errors.invalidValue(field, `Allowed values: ${values.join(', ')}.`);
  }
  return Errors.invalidParameter(field, why(e));
}
