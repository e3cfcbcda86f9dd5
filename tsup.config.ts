import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    // The command below is built at the same time into the same folder: keep its files.
    clean: ['!cli.js', '!cli.js.map'],
    target: 'node20',
    splitting: false,
  },
  {
    // The `pgferry` command (package.json "bin"); src/cli/main.ts starts with its shebang.
    entry: { cli: 'src/cli/main.ts' },
    format: ['esm'],
    sourcemap: true,
    clean: false,
    target: 'node20',
    splitting: false,
  },
]);
