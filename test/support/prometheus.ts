/**
 * A parser of the Prometheus text exposition format (version 0.0.4), strict enough to
 * fail on what a Prometheus server would refuse: bad metric or label names, broken
 * escapes, non-numeric values, a sample of a family declared with another TYPE.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  types: Map<string, string>;
  help: Map<string, string>;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export function parsePrometheusText(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    const where = `line ${i + 1}: ${raw}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)\s*(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in ${where}`);
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`unknown type in ${where}`);
        if (types.has(name)) throw new Error(`second TYPE for ${name} in ${where}`);
        types.set(name, rest);
      } else help.set(name, rest);
      return;
    }
    let pos = 0;
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nameMatch) throw new Error(`bad sample name in ${where}`);
    const name = nameMatch[0];
    pos = name.length;
    const labels: Record<string, string> = {};
    if (line[pos] === '{') {
      pos++;
      while (true) {
        while (line[pos] === ' ') pos++;
        if (line[pos] === '}') {
          pos++;
          break;
        }
        const eq = line.indexOf('=', pos);
        if (eq < 0) throw new Error(`label without value in ${where}`);
        const labelName = line.slice(pos, eq).trim();
        if (!LABEL_NAME.test(labelName)) throw new Error(`bad label name "${labelName}" in ${where}`);
        pos = eq + 1;
        if (line[pos] !== '"') throw new Error(`unquoted label value in ${where}`);
        pos++;
        let value = '';
        while (true) {
          const c = line[pos];
          if (c === undefined) throw new Error(`unterminated label value in ${where}`);
          if (c === '"') break;
          if (c === '\\') {
            const e = line[pos + 1];
            if (e === 'n') value += '\n';
            else if (e === '\\' || e === '"') value += e;
            else throw new Error(`bad escape \\${e} in ${where}`);
            pos += 2;
            continue;
          }
          value += c;
          pos++;
        }
        pos++;
        if (labelName in labels) throw new Error(`label ${labelName} twice in ${where}`);
        labels[labelName] = value;
        while (line[pos] === ' ') pos++;
        if (line[pos] === ',') pos++;
        else if (line[pos] !== '}') throw new Error(`expected , or } in ${where}`);
      }
    }
    const rest = line.slice(pos).trim().split(/\s+/);
    if (rest.length < 1 || rest.length > 2 || rest[0] === '') throw new Error(`bad value in ${where}`);
    const value = parseValue(rest[0]!);
    if (value === null) throw new Error(`bad value in ${where}`);
    if (rest[1] !== undefined && !/^-?\d+$/.test(rest[1])) throw new Error(`bad timestamp in ${where}`);
    const family = familyOf(name, types);
    const type = types.get(family);
    if (type === 'histogram' && name !== family && !/_(bucket|sum|count)$/.test(name)) throw new Error(`histogram sample ${name} in ${where}`);
    if (type === 'histogram' && name.endsWith('_bucket') && labels.le === undefined) throw new Error(`bucket without le in ${where}`);
    samples.push({ name, labels, value });
  });
  return { samples, types, help };
}

/** As Prometheus's Go parser (strconv.ParseFloat): Inf and NaN in any case. */
function parseValue(s: string): number | null {
  const lower = s.toLowerCase();
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  if (lower === 'nan') return NaN;
  const n = Number(s);
  return Number.isNaN(n) ? null : n;
}

function familyOf(name: string, types: Map<string, string>): string {
  if (types.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count', '_total', '_created']) {
    if (name.endsWith(suffix) && types.has(name.slice(0, -suffix.length))) return name.slice(0, -suffix.length);
  }
  return name;
}

/** Sum of the samples named `name` whose labels include `match`. */
export function sumOf(exposition: Exposition, name: string, match: Record<string, string> = {}): number {
  return exposition.samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** Distinct values of `label` over the samples named `name`. */
export function labelValues(exposition: Exposition, name: string, label: string): string[] {
  return [...new Set(exposition.samples.filter((s) => s.name === name && label in s.labels).map((s) => s.labels[label]!))].sort();
}

export async function scrape(url: string): Promise<Exposition> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('text/plain')) throw new Error(`GET ${url}: content-type ${type}`);
  return parsePrometheusText(await res.text());
}
