// Bundles the live shop dashboard: writes index.html and hashed assets
// to $OUT_DIR_WEB (default dist/). The example serves
// /dashboard (index.html) and /dashboard/assets/<file name>; nothing is loaded
// from any other host.
import * as esbuild from 'esbuild';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, process.env.OUT_DIR_WEB || 'dist');
const PUBLIC_PREFIX = '/dashboard/assets/';

await rm(outDir, { recursive: true, force: true });
await mkdir(outDir, { recursive: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { dashboard: 'src/main.js' },
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  minify: true,
  outdir: outDir,
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  publicPath: PUBLIC_PREFIX,
  loader: { '.woff2': 'file', '.svg': 'file', '.png': 'file' },
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
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#3b5bdb"/><path d="M3 12l3-4 3 2 4-6" stroke="#fff" stroke-width="1.8" fill="none"/></svg>',
  );
const assets = [
  ...css.map((f) => `<link rel="stylesheet" href="${PUBLIC_PREFIX}${f}" />`),
  `<script defer src="${PUBLIC_PREFIX}${js[0]}"></script>`,
].join('\n    ');
const template = await readFile(path.join(here, 'src/index.html'), 'utf8');
const html = template.replace('%FAVICON%', favicon).replace('%ASSETS%', assets);
await writeFile(path.join(outDir, 'index.html'), html);
