// Build the viewer into dist/ (INDEX.HTM + VIEWER/VIEWER.JS + VIEWER/VIEWER.CSS, ISO 9660 Level 1 names), then
// copy it to the Python package (src/dcmseal/media/viewer/). `--tests` bundles test/*.test.ts for node --test.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const packageData = join(root, "..", "src", "dcmseal", "media", "viewer");
// 12-bit JPEG: the package's exports map does not name its decoder file, so it is aliased by path.
const jpeg12 = join(root, "node_modules", "@cornerstonejs", "dicom-image-loader", "dist", "esm", "codecs", "jpeg.js");
const alias = { "dcmseal-jpeg12": jpeg12 };
// Its inverse DCT ends with the 8-bit level shift scaled by 255/4095 ((q + 2056 / bitConversion) >> 4): for
// 12-bit data every sample comes out 15 too high (2056 * 4095 / 255 = 33016.5, where 2048 * 16 + 8 = 32776
// is right). The shift and the clamp are recomputed from the sample range here; test/codecs.test.ts checks
// the result against DCMTK's dcmdjpeg. The build fails if the expression is not found (a changed upstream).
const BUGGY = `q =
            q <= -2056 / component.bitConversion
                ? 0
                : q >= 2024 / component.bitConversion
                    ? 255 / component.bitConversion
                    : (q + 2056 / component.bitConversion) >> 4;`;
const FIXED = `{ var maxval = Math.round(255 / component.bitConversion), shift = ((maxval + 1) / 2) * 16 + 8;
        q = q < -shift ? 0 : q >= maxval * 16 - shift ? maxval : (q + shift) >> 4; }`;
const fixJpeg12 = {
  name: "fix-jpeg12-level-shift",
  setup(b) {
    b.onLoad({ filter: /dicom-image-loader[\\/]dist[\\/]esm[\\/]codecs[\\/]jpeg\.js$/ }, (args) => {
      const text = readFileSync(args.path, "utf8");
      if (!text.includes(BUGGY)) throw new Error(`${args.path}: the 12-bit level shift to fix was not found`);
      return { contents: text.replace(BUGGY, FIXED), loader: "js" };
    });
  },
};

if (process.argv.includes("--tests")) {
  rmSync(join(root, "test-dist"), { recursive: true, force: true });
  const entries = readdirSync(join(root, "test")).filter((f) => f.endsWith(".test.ts")).map((f) => join(root, "test", f));
  await build({
    entryPoints: entries, bundle: true, platform: "node", alias, plugins: [fixJpeg12], format: "esm", target: "node20",
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
  entryPoints: [join(root, "src", "main.ts")], bundle: true, platform: "browser", alias, plugins: [fixJpeg12], format: "iife",
  target: ["chrome100", "firefox100", "safari15"], minify: true, legalComments: "eof",
  // The codecs' WebAssembly is inlined (file:// pages cannot fetch .wasm); Emscripten's node branch is dead code.
  loader: { ".wasm": "binary" }, external: ["fs", "path", "crypto", "ws"],
  outfile: join(dist, "VIEWER", "VIEWER.JS"), logLevel: "warning",
});
writeFileSync(join(dist, "VIEWER", "VIEWER.CSS"), readFileSync(join(root, "src", "viewer.css")));
// The loader of INDEX.HTM, allowed by its SHA-256 in the CSP (no 'unsafe-inline'): the assets' names in the case
// of the page's own name, the other case only if those fail (a copy renamed by hand).
const loader = [
  "(function(){",
  "var order=[[\"VIEWER/VIEWER.JS\",\"VIEWER/VIEWER.CSS\"],[\"viewer/viewer.js\",\"viewer/viewer.css\"]];",
  "if(/\\/index\\.htm$/.test(location.pathname))order.reverse();",
  "function load(i){var link=document.createElement(\"link\");link.rel=\"stylesheet\";link.href=order[i][1];",
  "document.head.appendChild(link);var s=document.createElement(\"script\");s.src=order[i][0];",
  "s.onerror=function(){link.remove();if(i+1<order.length)load(i+1);};document.head.appendChild(s);}",
  "load(0);})();",
].join("");
const loaderHash = createHash("sha256").update(loader, "utf8").digest("base64");
const html = readFileSync(join(root, "src", "index.html"), "utf8")
  .replace("<script>LOADER</script>", `<script>${loader}</script>`)
  .replace("'LOADER_HASH'", `'sha256-${loaderHash}'`);
writeFileSync(join(dist, "INDEX.HTM"), html);
rmSync(packageData, { recursive: true, force: true });
cpSync(dist, packageData, { recursive: true });
console.log(`viewer built: ${dist} -> ${packageData}`);
