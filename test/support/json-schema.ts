/**
 * Checks a value against the JSON Schema subset the route declarations use (type,
 * required, properties, items, enum, const, oneOf, $ref into components, string and
 * number bounds). Returns the problems, empty when the value fits.
 */
export function schemaProblems(value: unknown, schema: Record<string, unknown>, root: Record<string, unknown> = {}, at = '$'): string[] {
  if (typeof schema.$ref === 'string') {
    const target = schema.$ref.replace(/^#\//, '').split('/').reduce<unknown>((node, key) => (node as Record<string, unknown>)?.[key], root);
    return schemaProblems(value, target as Record<string, unknown>, root, at);
  }
  if (Array.isArray(schema.oneOf)) {
    const fits = (schema.oneOf as Array<Record<string, unknown>>).filter((s) => schemaProblems(value, s, root, at).length === 0).length;
    return fits === 1 ? [] : [`${at}: fits ${fits} of the oneOf schemas, not exactly one`];
  }
  const problems: string[] = [];
  if ('const' in schema && JSON.stringify(value) !== JSON.stringify(schema.const)) problems.push(`${at}: is not ${JSON.stringify(schema.const)}`);
  if (Array.isArray(schema.enum) && !schema.enum.some((v) => JSON.stringify(v) === JSON.stringify(value))) problems.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
    const actual = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
    const ok = types.some((t) => t === actual || (t === 'integer' && Number.isInteger(value)) || (t === 'number' && actual === 'number'));
    if (!ok) return [...problems, `${at}: is ${actual}, expected ${types.join(' or ')}`];
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const key of (schema.required as string[] | undefined) ?? []) if (!(key in value)) problems.push(`${at}: misses ${key}`);
    for (const [key, sub] of Object.entries((schema.properties as Record<string, Record<string, unknown>> | undefined) ?? {})) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) problems.push(...schemaProblems(v, sub, root, `${at}.${key}`));
    }
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => problems.push(...schemaProblems(v, schema.items as Record<string, unknown>, root, `${at}[${i}]`)));
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) problems.push(`${at}: shorter than ${schema.minLength}`);
    if (typeof schema.maxLength === 'number' && value.length > schema.maxLength) problems.push(`${at}: longer than ${schema.maxLength}`);
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) problems.push(`${at}: below ${schema.minimum}`);
    if (typeof schema.maximum === 'number' && value > schema.maximum) problems.push(`${at}: above ${schema.maximum}`);
  }
  return problems;
}
