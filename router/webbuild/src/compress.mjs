// Writes <file>.gz and <file>.br beside every file of the directory given as
// the first argument, at the strongest settings (this runs once, at build time).
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';

const dir = process.argv[2];
for (const name of await readdir(dir)) {
  if (name.endsWith('.gz') || name.endsWith('.br')) continue;
  const file = path.join(dir, name);
  const bytes = await readFile(file);
  await writeFile(`${file}.gz`, zlib.gzipSync(bytes, { level: 9 }));
  await writeFile(
    `${file}.br`,
    zlib.brotliCompressSync(bytes, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
      },
    }),
  );
}
