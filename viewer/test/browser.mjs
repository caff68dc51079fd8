// Drive the viewer in headless Chromium (playwright-core, Debian's /usr/bin/chromium) over a medium folder and
// print one JSON document of what the page showed. tests/viewer/test_viewer_browser.py makes the media, runs
// this script and asserts on its output; this script only observes (and saves screenshots).
//
//   node test/browser.mjs '<json config>'
//   config: { scenario: "encrypted" | "wrong" | "tampered" | "plain" | "bench", medium: "<dir>",
//             password?: "...", artifacts?: "<dir>", select?: [modality...], chromium?: "/usr/bin/chromium" }
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const config = JSON.parse(process.argv[2]);
const profileDir = mkdtempSync(join(tmpdir(), "dcmseal-chromium-"));
// The flags of the machine notes: no background traffic (this machine's network is closed), no GPU, root; a new
// empty profile (--user-data-dir, which playwright sets from the persistent context's folder).
const context = await chromium.launchPersistentContext(profileDir, {
  executablePath: config.chromium ?? "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 1000 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const result = { scenario: config.scenario, console: [], requests: [], pageErrors: [] };
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") result.console.push(m.text());
  });
  page.on("pageerror", (e) => result.pageErrors.push(String(e)));
  page.on("request", (r) => result.requests.push(r.url()));
  await page.goto(pathToFileURL(join(config.medium, config.index ?? "INDEX.HTM")).href);
  await page.waitForFunction(() => document.body.dataset.state === "start");
  await page.setInputFiles("#folder", config.medium);
  if (config.drop) {
    // An emulated drop of the medium's files on the page (what a user dragging the folder does): Chromium's
    // file:// pages refuse to read them; the page must say so, not fail silently.
    const dataTransfer = await page.evaluateHandle(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(["x"], "DICOMDIR"));
      return dt;
    });
    await page.dispatchEvent("#drop", "drop", { dataTransfer });
    await page.waitForFunction(() => ["drop-refused", "need-key", "listed", "image", "error"].includes(document.body.dataset.state));
    result.afterDrop = await snapshot(page);
  }
  await page.setInputFiles("#folder", config.medium);
  await page.waitForFunction(() => ["need-key", "listed", "image", "error", "document", "damaged"].includes(document.body.dataset.state));
  result.afterFolder = await page.evaluate(() => document.body.dataset.state);
  result.keyStep = await page.evaluate(() => {
    const field = document.getElementById("password");
    return { insideForm: field.closest("form") !== null, type: field.type, autocomplete: field.getAttribute("autocomplete"), label: field.labels?.[0]?.textContent ?? null };
  });
  if (result.afterFolder === "need-key") {
    await page.fill("#password", config.password ?? "");
    if (config.keyfile) await page.setInputFiles("#keyfile", config.keyfile);
    await page.click("#open");
  }
  await page.waitForFunction(
    () => ["image", "document", "wrong-key", "key-kind", "damaged", "error", "no-image"].includes(document.body.dataset.state),
    undefined, { timeout: 30000 },
  );
  result.passwordAfter = await page.evaluate(() => document.getElementById("password").value);
  Object.assign(result, await snapshot(page));
  if (config.firstPixels) result.firstPixels = await readCanvas(page);
  if (config.artifacts) mkdirSync(config.artifacts, { recursive: true });
  const shot = async (name) => {
    if (config.artifacts) await page.screenshot({ path: join(config.artifacts, `${config.scenario}-${name}.png`), fullPage: true });
  };
  await shot("first");
  result.images = {};
  for (const modality of config.select ?? []) {
    // "US" picks the first US series; "US@<Patient ID>" the US series of that patient.
    // "CT#Prior CT" the CT series whose description is "Prior CT".
    const [selector, description] = modality.split("#");
    const [wanted, patient] = selector.split("@");
    const scope = patient ? `[data-testid=patient][data-patient-id="${patient}"] ` : "";
    let rows = page.locator(`${scope}tr[data-testid=series][data-modality="${wanted}"]`);
    if (description) rows = rows.filter({ has: page.locator(".description", { hasText: description }) });
    const row = rows.first();
    if (await page.locator("#back").isVisible()) await page.click("#back");
    // Every outcome of showing an instance sets the state again, so a marker tells this outcome from the last.
    await page.evaluate(() => { document.body.dataset.state = "selecting"; });
    await row.click();
    await page.waitForFunction(() => document.body.dataset.state !== "selecting", undefined, { timeout: 20000 });
    const info = await snapshot(page);
    info.pixels = await readCanvas(page);
    info.document = await page.evaluate(() => {
      const box = document.getElementById("pdf-box");
      return box.hidden ? null : {
        src: document.getElementById("pdf").src, link: document.getElementById("pdf-link").href,
        title: document.getElementById("pdf").title, heading: document.getElementById("pdf-title").textContent,
        save: document.getElementById("pdf-save").download,
      };
    });
    result.images[modality] = info;
    await shot(`image-${modality}`);
    if (config.scroll === modality) {
      // Scroll the multi-frame series: the wheel over the image moves to the next frame.
      const before = info.frame;
      await page.locator("#image").hover();
      await page.mouse.wheel(0, 120);
      await page.waitForFunction((f) => document.getElementById("image").dataset.frame !== f, before, { timeout: 10000 });
      await page.keyboard.press("ArrowDown");
      await page.waitForFunction(() => document.getElementById("image").dataset.frame === "2", undefined, { timeout: 10000 });
      const after = await snapshot(page);
      after.pixels = await readCanvas(page);
      result.scroll = { before: info, after };
      await shot(`scrolled-${modality}`);
    }
    if (config.drag === modality) {
      await page.locator("#image").scrollIntoViewIfNeeded();
      const box = await page.locator("#image").boundingBox();
      const before = await page.evaluate(() => document.getElementById("image").dataset.window);
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width / 2 + 80, box.y + box.height / 2 + 40, { steps: 4 });
      await page.mouse.up();
      const after = await page.evaluate(() => document.getElementById("image").dataset.window);
      result.drag = { before, after };
    }
  }
  if (config.steps) {
    // Step through the first series with the keyboard (or the wheel), whatever the files are: damaged ones are
    // marked and stepped over, never an end of scrolling.
    result.steps = [];
    await page.locator("#stage").hover();
    for (let i = 0; i < config.steps; i++) {
      const before = await page.evaluate(() => `${document.getElementById("image").dataset.instance}/${document.getElementById("image").dataset.frame}`);
      if (config.wheel) await page.mouse.wheel(0, 120);
      else await page.keyboard.press("ArrowDown");
      await page.waitForFunction((b) => {
        const c = document.getElementById("image");
        return `${c.dataset.instance}/${c.dataset.frame}` !== b && ["image", "damaged", "document", "no-image"].includes(document.body.dataset.state);
      }, before, { timeout: 10000 });
      result.steps.push(await snapshot(page));
    }
  }
  if (config.unprotected) {
    result.unprotectedBox = await page.evaluate(() => !document.getElementById("unprotected-box").hidden);
    if (result.unprotectedBox) {
      await page.evaluate(() => { document.body.dataset.state = "selecting"; });
      await page.click("#accept-unprotected");
      await page.waitForFunction(() => ["image", "damaged", "error"].includes(document.body.dataset.state), undefined, { timeout: 20000 });
      result.afterAccept = await snapshot(page);
      await page.locator("#stage").hover();
      await page.keyboard.press("ArrowDown");
      await page.waitForFunction(() => document.getElementById("image").dataset.instance === "1" && document.body.dataset.state !== "selecting", undefined, { timeout: 10000 });
      result.acceptedNext = await snapshot(page);
      await shot("accepted");
    }
  }
  if (config.actions) {
    // The reading tools, driven as a user would: keys, buttons, drags in image coordinates (mapped to the page
    // with the display transform the page exposes), and snapshots (canvas pixels, a screenshot of the stage).
    result.actions = {};
    const toPage = async (p) => page.evaluate(([x, y]) => {
      const d = window.dcmseal.display;
      const r = document.getElementById("stage").getBoundingClientRect();
      return [r.left + d.tx + x * d.scale, r.top + d.ty + y * d.scale * d.aspect];
    }, p);
    const settle = () => page.waitForFunction(() => ["image", "damaged", "document", "no-image"].includes(document.body.dataset.state));
    for (const a of config.actions) {
      if (a.do === "key") {
        await page.locator("#stage").hover();
        await page.keyboard.press(a.key);
      } else if (a.do === "click") {
        await page.click(a.selector);
      } else if (a.do === "tool") {
        await page.check(`input[name=tool][value=${a.tool}]`);
      } else if (a.do === "drag") {
        const [x0, y0] = await toPage(a.from);
        const [x1, y1] = await toPage(a.to);
        await page.mouse.move(x0, y0);
        await page.mouse.down({ button: a.button ?? "left" });
        await page.mouse.move(x1, y1, { steps: 5 });
        await page.mouse.up({ button: a.button ?? "left" });
      } else if (a.do === "tap") {
        const [x, y] = await toPage(a.at);
        await page.mouse.click(x, y);
      } else if (a.do === "focus") {
        await page.focus(a.selector);
      } else if (a.do === "press") {
        // Keyboard only: no pointer over the page.
        await page.keyboard.press(a.key);
      } else if (a.do === "compare") {
        // The "Compare" button of the nth series row of that modality (0-based).
        if (await page.locator("#back").isVisible()) await page.click("#back");
        await page.locator(`tr[data-testid=series][data-modality="${a.modality}"]`)
          .filter({ has: page.locator(".description", { hasText: a.description }) }).locator("button.compare").click();
        await page.waitForFunction(() => window.dcmseal.compare.rendered > 0 || window.dcmseal.compare.damaged, undefined, { timeout: 10000 });
      } else if (a.do === "compared") {
        await page.waitForFunction((i) => window.dcmseal.compare.index === i && document.getElementById("compare-title").dataset.instance === String(i), a.index, { timeout: 10000 });
      } else if (a.do === "cine") {
        await page.waitForFunction((n) => window.dcmseal.cine.shown >= n, a.frames, { timeout: 20000 });
        await page.click("#cine");
      } else if (a.do === "snapshot") {
        await settle();
        const info = await snapshot(page);
        info.pixels = await readCanvas(page);
        info.display = await page.evaluate(() => JSON.parse(JSON.stringify(window.dcmseal.display)));
        info.measurements = await page.evaluate(() => JSON.parse(JSON.stringify(window.dcmseal.measurements)));
        info.measurementList = await page.evaluate(() => Array.from(document.querySelectorAll("[data-testid=measurement]"), (li) => li.textContent));
        info.cine = await page.evaluate(() => JSON.parse(JSON.stringify(window.dcmseal.cine)));
        info.compare = await page.evaluate(() => ({
          ...JSON.parse(JSON.stringify(window.dcmseal.compare)),
          title: document.getElementById("compare-title").textContent,
          canvas: { width: document.getElementById("image2").width, height: document.getElementById("image2").height },
        }));
        info.stage = await page.evaluate(() => {
          const r = document.getElementById("stage").getBoundingClientRect();
          return { x: r.left, y: r.top, width: r.width, height: r.height };
        });
        if (a.screenshot) {
          // The stage as the user sees it (image and the layer over it), device pixels = CSS pixels here.
          info.screenshot = (await page.screenshot({ clip: info.stage })).toString("base64");
        }
        // The layer over the image as PNG (toDataURL: no pixel readback warnings in the console).
        info.annotation = await page.evaluate(() => document.getElementById("annot").toDataURL("image/png"));
        result.actions[a.name] = info;
        await shot(`tools-${a.name}`);
      }
    }
  }
  if (config.walk) {
    // Step through the first series image by image (each a file to decrypt and verify), then jump to its end.
    await page.locator("#image").hover();
    const started = Date.now();
    for (let i = 1; i <= config.walk; i++) {
      await page.keyboard.press("ArrowDown");
      await page.waitForFunction((n) => document.getElementById("image").dataset.instance === String(n), i, { timeout: 10000 });
    }
    result.walkMsPerImage = (Date.now() - started) / config.walk;
    await page.evaluate(() => {
      const slider = document.getElementById("slider");
      slider.value = slider.max;
      slider.dispatchEvent(new Event("input"));
    });
    await page.waitForFunction(() => document.getElementById("image").dataset.instance === document.getElementById("slider").max, undefined, { timeout: 10000 });
    result.walked = await snapshot(page);
    result.rendererMemory = rendererMemory();
  }
  if (config.thumbs) await page.waitForFunction(() => window.dcmseal.thumbnails === "done", undefined, { timeout: 20000 });
  if (await page.locator("#back").isVisible()) await page.click("#back");
  await shot("study-list");
  result.final = await snapshot(page);
} finally {
  await context.close();
  rmSync(profileDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result));

// The renderer processes of this run's Chromium (found by their profile folder): resident and peak resident
// memory in MB, from /proc (Linux), the largest of them (the page's own).
function rendererMemory() {
  const out = { rssMb: 0, peakMb: 0, processes: 0 };
  for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    let cmdline;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (!cmdline.includes(profileDir) || !cmdline.includes("--type=renderer")) continue;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key) => Number((status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m")) ?? [0, 0])[1]);
    out.processes += 1;
    out.rssMb = Math.max(out.rssMb, kb("VmRSS") / 1024);
    out.peakMb = Math.max(out.peakMb, kb("VmHWM") / 1024);
  }
  return out;
}

async function snapshot(page) {
  return page.evaluate(() => {
    const canvas = document.getElementById("image");
    const error = document.getElementById("error");
    const patients = Array.from(document.querySelectorAll("[data-testid=patient]"), (p) => ({
      id: p.dataset.patientId,
      name: p.querySelector(".name")?.textContent ?? "",
      studies: Array.from(p.querySelectorAll("[data-testid=study]"), (s) => ({
        series: Number(s.dataset.series),
        instances: Number(s.dataset.instances),
        seriesList: Array.from(s.querySelectorAll("[data-testid=series]"), (r) => ({
          modality: r.dataset.modality, instances: Number(r.dataset.instances),
          description: r.querySelector(".description")?.textContent ?? "",
          thumbnail: r.querySelector("canvas.thumb")?.dataset.drawn === "true",
        })),
      })),
    }));
    return {
      state: document.body.dataset.state,
      error: error.hidden ? null : error.textContent,
      status: document.getElementById("status").textContent,
      patients,
      canvas: { width: canvas.width, height: canvas.height, rendered: canvas.dataset.rendered ?? null },
      sop: canvas.dataset.sop ?? null,
      frame: canvas.dataset.frame ?? null,
      window: canvas.dataset.window ?? null,
      integrity: document.querySelector("[data-testid=integrity]")?.textContent ?? null,
      active: document.activeElement?.id || document.activeElement?.tagName || null,
      // Controls a screen reader could not name: a label, aria-label, aria-labelledby or text of their own.
      unlabelled: Array.from(document.querySelectorAll("input, select, button, [role=button], canvas[tabindex]"))
        .filter((e) => !e.closest("[hidden]"))
        .filter((e) => !((e.labels && e.labels.length) || e.getAttribute("aria-label") || e.getAttribute("aria-labelledby") || e.textContent.trim()))
        .map((e) => e.id || e.outerHTML.slice(0, 60)),
      overlay: document.getElementById("overlay").textContent,
      instance: canvas.dataset.instance ?? null,
      damaged: canvas.dataset.damaged === "true",
      notice: document.getElementById("notice").hidden ? null : document.getElementById("notice").textContent,
      seriesDamage: document.getElementById("series-damage").hidden ? null : document.getElementById("series-damage").textContent,
      attributeRows: document.querySelectorAll("#attributes tr").length,
      damagedFiles: document.querySelector("[data-testid=damaged-files]")?.textContent ?? null,
      dcmseal: JSON.parse(JSON.stringify(window.dcmseal ?? null)),
    };
  });
}

async function readCanvas(page) {
  // The canvas has the image's own size (CSS scales it), so getImageData returns the rendered pixels 1:1.
  return page.evaluate(() => {
    const c = document.getElementById("image");
    if (!c.width || !c.height) return null;
    const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let s = "";
    for (let i = 0; i < data.length; i += 4) s += String.fromCharCode(data[i], data[i + 1], data[i + 2]);
    return { width: c.width, height: c.height, rgb: btoa(s) };
  });
}
