/**
 * Moleculer's runner convention: `MOL_<KEY>` overrides a top-level broker option and
 * `MOL_<KEY>__<SUB>` a nested one, keys matched case-insensitively with underscores
 * dropped (MOL_REQUEST_TIMEOUT → requestTimeout). Values "true"/"false" and numbers
 * are converted. Only keys that already exist in the options are overridden.
 */
export function applyMolEnvOverrides(options: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('MOL_') || raw === undefined) continue;
    const path = name.slice(4).split('__');
    setPath(options, path, convert(raw));
  }
  return options;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  const [head, ...rest] = path;
  if (!head) return;
  const key = Object.keys(target).find((k) => normalize(k) === normalize(head));
  if (key === undefined) return;
  if (rest.length === 0) {
    target[key] = value;
    return;
  }
  const child = target[key];
  if (child && typeof child === 'object') setPath(child as Record<string, unknown>, rest, value);
}

const normalize = (key: string) => key.replaceAll('_', '').toLowerCase();

function convert(raw: string): unknown {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  if (/^-?\d+(\.\d+)?$/.test(raw)) return Number(raw);
  return raw;
}
