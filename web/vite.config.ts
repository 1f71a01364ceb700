import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The build goes to dist/web beside the server's own build; `berth server` serves it at `/`.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
    // Minified, not gzipped: the budget is 300 KB gzipped for everything (bench/console.ts measures it).
    chunkSizeWarningLimit: 600,
  },
  server: {
    // `npm run dev:web`: the console with hot reload against a `berth server` on :7700.
    proxy: { '/api': 'http://127.0.0.1:7700', '/healthz': 'http://127.0.0.1:7700' },
  },
});
