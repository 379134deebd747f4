// Bundles GraphiQL for the router: writes index.html and hashed assets
// to $OUT_DIR_WEB (default dist/). The router serves each file
// at /_tessera/graphiql/<file name>; nothing is loaded from any other host.
import * as esbuild from 'esbuild';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, process.env.OUT_DIR_WEB || 'dist');
const PUBLIC_PREFIX = '/_tessera/graphiql/';
const TITLE = 'Tessera — GraphiQL';

await rm(outDir, { recursive: true, force: true });
await mkdir(outDir, { recursive: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { graphiql: 'src/main.jsx' },
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  minify: true,
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"production"' },
  outdir: outDir,
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  publicPath: PUBLIC_PREFIX,
  loader: {
    '.woff': 'file',
    '.woff2': 'file',
    '.ttf': 'file',
    '.eot': 'file',
    '.svg': 'file',
    '.png': 'file',
  },
  // A <style>-free stand-in: see src/shims/react-style-singleton.js.
  alias: { 'react-style-singleton': './src/shims/react-style-singleton.js' },
  legalComments: 'eof',
  metafile: true,
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((p) => path.basename(p));
const js = outputs.filter((f) => f.endsWith('.js'));
const css = outputs.filter((f) => f.endsWith('.css'));
if (js.length !== 1) throw new Error(`expected one JS bundle, got ${js.join(', ')}`);

const favicon =
  'data:image/svg+xml,' +
  encodeURIComponent(
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#e535ab"/><path d="M4 4h8v2H9v6H7V6H4z" fill="#fff"/></svg>',
  );
const html = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta name="referrer" content="no-referrer" />
    <title>${TITLE}</title>
    <link rel="icon" href="${favicon}" />
${css.map((f) => `    <link rel="stylesheet" href="${PUBLIC_PREFIX}${f}" />`).join('\n')}
    <script defer src="${PUBLIC_PREFIX}${js[0]}"></script>
  </head>
  <body>
    <div id="graphiql"><p class="tessera-loading">Loading GraphiQL…</p></div>
  </body>
</html>
`;
await writeFile(path.join(outDir, 'index.html'), html);
