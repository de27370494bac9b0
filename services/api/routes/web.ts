import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, gzipSync, constants as zlib } from 'node:zlib';
import { endpoint, type ApiRouteModule } from './module.ts';

/** The built UI (committed; `npm run build:web` refreshes it). */
const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'web', 'dist');

const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/**
 * Nothing but our own origin: no CDN, no outside font, no inline script. Styles set
 * through element.style by the UI need 'unsafe-inline' for style attributes only.
 */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

interface Asset {
  type: string;
  etag: string;
  raw: Buffer;
  gzip: Buffer;
  br: Buffer;
}

/**
 * The web UI at `/` (index) and `/assets/*`, compressed once at first request and kept
 * in memory: three small files, so each request is a header check and a write.
 */
export function webRoutes(): ApiRouteModule {
  let assets: Promise<Map<string, Asset>> | null = null;
  const load = () =>
    (assets ??= (async () => {
      const out = new Map<string, Asset>();
      for (const [name, type] of Object.entries(TYPES)) {
        const raw = await readFile(join(DIST, name)).catch(() => null);
        if (!raw) continue;
        out.set(name, {
          type,
          etag: `"${createHash('sha256').update(raw).digest('base64url').slice(0, 22)}"`,
          raw,
          gzip: gzipSync(raw, { level: 9 }),
          br: brotliCompressSync(raw, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11 } }),
        });
      }
      return out;
    })());

  const serve = (name: string) =>
    function (req: IncomingMessage, res: ServerResponse) {
      void load().then((files) => {
        const asset = files.get(name);
        if (!asset) {
          res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
          res.end('The web UI is not built: run npm run build:web');
          return;
        }
        const headers: Record<string, string> = {
          'Content-Type': asset.type,
          ETag: asset.etag,
          Vary: 'Accept-Encoding',
          // Names are not content-hashed: revalidate by ETag (a 304 costs one small round trip).
          'Cache-Control': 'no-cache',
          'X-Content-Type-Options': 'nosniff',
          'Referrer-Policy': 'no-referrer',
        };
        if (name === 'index.html') {
          headers['Content-Security-Policy'] = CSP;
          headers['X-Frame-Options'] = 'DENY';
        }
        if (req.headers['if-none-match'] === asset.etag) {
          res.writeHead(304, headers);
          res.end();
          return;
        }
        const accepts = String(req.headers['accept-encoding'] ?? '');
        let body = asset.raw;
        if (/\bbr\b/.test(accepts)) {
          body = asset.br;
          headers['Content-Encoding'] = 'br';
        } else if (/\bgzip\b/.test(accepts)) {
          body = asset.gzip;
          headers['Content-Encoding'] = 'gzip';
        }
        headers['Content-Length'] = String(body.length);
        res.writeHead(200, headers);
        res.end(req.method === 'HEAD' ? undefined : body);
      }, (err: unknown) => {
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end(String(err));
      });
    };

  return {
    endpoints: [
      ['/', 'index.html', 'text/html'],
      ['/assets/app.js', 'app.js', 'text/javascript'],
      ['/assets/app.css', 'app.css', 'text/css'],
    ].map(([path, name, type]) =>
      endpoint({
        method: 'GET',
        path: path!,
        summary: `The web UI: ${name}`,
        public: true,
        quiet: true,
        response: { contentType: type!, schema: { type: 'string' } },
        stream: async ({ req, res }) => serve(name!)(req, res),
      }),
    ),
  };
}
