// Build the viewer into dist/ (INDEX.HTM + VIEWER/VIEWER.JS + VIEWER/VIEWER.CSS, ISO 9660 Level 1 names), then
// copy it to the Python package (src/dcmseal/media/viewer/). `--tests` bundles test/*.test.ts for node --test.
import { build } from "esbuild";
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const packageData = join(root, "..", "src", "dcmseal", "media", "viewer");

if (process.argv.includes("--tests")) {
  rmSync(join(root, "test-dist"), { recursive: true, force: true });
  const entries = readdirSync(join(root, "test")).filter((f) => f.endsWith(".test.ts")).map((f) => join(root, "test", f));
  await build({
    entryPoints: entries, bundle: true, platform: "node", format: "esm", target: "node20",
    outdir: join(root, "test-dist"), outExtension: { ".js": ".mjs" }, loader: { ".wasm": "binary" },
    external: ["fs", "path", "crypto", "module", "url"], logLevel: "warning",
    // The codecs' Emscripten glue takes its node branch here and wants CommonJS names.
    banner: {
      js: "import { createRequire as __cr } from 'module'; import { fileURLToPath as __fu } from 'url';"
        + " const require = __cr(import.meta.url); const __filename = __fu(import.meta.url);"
        + " const __dirname = __filename.replace(/[\\/][^\\/]*$/, '');",
    },
  });
  process.exit(0);
}

const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "VIEWER"), { recursive: true });
await build({
  entryPoints: [join(root, "src", "main.ts")], bundle: true, platform: "browser", format: "iife",
  target: ["chrome100", "firefox100", "safari15"], minify: true, legalComments: "eof",
  // The codecs' WebAssembly is inlined (file:// pages cannot fetch .wasm); Emscripten's node branch is dead code.
  loader: { ".wasm": "binary" }, external: ["fs", "path", "crypto", "ws"],
  outfile: join(dist, "VIEWER", "VIEWER.JS"), logLevel: "warning",
});
writeFileSync(join(dist, "VIEWER", "VIEWER.CSS"), readFileSync(join(root, "src", "viewer.css")));
writeFileSync(join(dist, "INDEX.HTM"), readFileSync(join(root, "src", "index.html")));
rmSync(packageData, { recursive: true, force: true });
cpSync(dist, packageData, { recursive: true });
console.log(`viewer built: ${dist} -> ${packageData}`);
