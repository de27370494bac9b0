/**
 * Builds the web UI (web/src → web/dist): one minified ES module, one stylesheet and
 * the page. The output is committed, so `npm start` serves it with no build step and
 * no network; web/build.test.ts fails when web/dist is older than web/src.
 *
 *   npm run build:web
 */
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const WEB = join(dirname(fileURLToPath(import.meta.url)), '..', 'web');

/** The files of web/dist, by name, as the current sources produce them. */
export async function buildWeb(): Promise<Record<string, string>> {
  const [js, css] = await Promise.all([
    build({ entryPoints: [join(WEB, 'src/main.ts')], bundle: true, minify: true, format: 'esm', target: 'es2022', write: false, legalComments: 'none', charset: 'utf8' }),
    build({ entryPoints: [join(WEB, 'src/style.css')], bundle: true, minify: true, write: false, charset: 'utf8' }),
  ]);
  return {
    'app.js': js.outputFiles[0]!.text,
    'app.css': css.outputFiles[0]!.text,
    'index.html': await readFile(join(WEB, 'index.html'), 'utf8'),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const files = await buildWeb();
  await mkdir(join(WEB, 'dist'), { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(WEB, 'dist', name), text);
  console.log(Object.entries(files).map(([n, t]) => `web/dist/${n} ${Buffer.byteLength(t)} B`).join('\n'));
}
