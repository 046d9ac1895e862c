// The radiopath page: reads /info, sends one patient's files to /predict, shows the answer.
"use strict";
const $ = (id) => document.getElementById(id);
let INFO = null;

const MODALITY = { us: "ultrasound", cytology: "cytology", clinical: "clinical data" };
const pct = (p) => (100 * p).toFixed(1) + "%";
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

async function loadInfo() {
  const res = await fetch("/info");
  INFO = await res.json();
  const primary = INFO.models.find((m) => m.primary);
  $("bundle").textContent = `model ${INFO.name} ${INFO.version} · ${primary.label} · ${INFO.runtime}, ${INFO.precision}`;
  $("footer-bundle").textContent = `bundle fingerprint ${INFO.fingerprint.slice(0, 16)}`;
  $("intended-use").textContent = INFO.intended_use;
  const warnings = [...(INFO.warnings || [])];
  if (!Object.keys(INFO.eval_metrics || {}).length && INFO.eval_metrics_note) warnings.push(INFO.eval_metrics_note);
  $("bundle-warnings").innerHTML = warnings.map((w) => `<div class="warning">${esc(w)}</div>`).join("");
  const perf = (INFO.eval_metrics || {})[primary.name] || {};
  const f3 = (m) => (m && m.value !== null && m.value !== undefined ? m.value.toFixed(2) : "–");
  const ci = (m) => (m && m.ci_low !== null && m.ci_low !== undefined ? ` (${m.ci_low.toFixed(2)}–${m.ci_high.toFixed(2)})` : "");
  const rows = Object.values(perf).map((c) => `<tr><td>${esc(c.label)}</td><td>${c.n} (${c.n_pos} with LNM)</td>` +
    `<td>${f3(c.auc)}${ci(c.auc)}</td><td>${f3(c.sensitivity)}</td><td>${f3(c.specificity)}</td></tr>`).join("");
  $("validation").innerHTML = rows
    ? `<h3>How ${esc(primary.label)} performed in the study</h3><table id="metrics"><tr><th>cohort</th><th>patients</th>` +
      `<th>AUC (95% CI)</th><th>sensitivity</th><th>specificity</th></tr>${rows}</table>` +
      `<p class="hint">Sensitivity and specificity at the frozen threshold of ${pct(primary.threshold)}.</p>`
    : `<p class="hint">${esc(INFO.eval_metrics_note || "No validation metrics were bundled.")}</p>`;
  const inputs = INFO.inputs || {};
  if (!inputs.ultrasound) $("us-fields").hidden = true;
  else if (inputs.ultrasound.region_in_training) $("region-hint").textContent = inputs.ultrasound.region_in_training;
  if (!inputs.cytology) $("cy-fields").hidden = true;
  if (INFO.cytology_default_mpp) {
    $("cytology_mpp").value = INFO.cytology_default_mpp;
    $("mpp-hint").innerHTML =
      `Used only for images that record no resolution (PNG or JPEG patches, plain images); slide files ` +
      `(SVS, NDPI, TIFF with a resolution) use their own. Pre-filled with ${INFO.cytology_default_mpp} µm/px, ` +
      `the resolution of the ${inputs.cytology.tiles} tiles this model reads per slide (patches exported by ` +
      `<code>radiopath tile --export-patches</code> have it). A wrong value rescales the nuclei and changes the risk.`;
  }
  if (inputs.clinical) {
    $("clin-fields").hidden = false;
    $("clin-inputs").innerHTML = inputs.clinical.columns.map((c) => {
      const label = esc(c.name.replace(/^clin_/, ""));
      if (c.kind === "numeric") return `<label>${label}<input type="number" step="any" name="${esc(c.name)}"></label>`;
      const opts = c.levels.map((l) => `<option>${esc(l)}</option>`).join("");
      return `<label>${label}<select name="${esc(c.name)}"><option value="">unknown</option>${opts}</select></label>`;
    }).join("");
  }
}

function showError(title, message, fix, field) {
  $("placeholder").hidden = true;
  $("result").hidden = true;
  const box = $("error");
  box.hidden = false;
  box.innerHTML = `<h2>${esc(title)}</h2><p id="error-message">${esc(message)}</p>` +
    (fix ? `<p><b>What to do:</b> <span id="error-fix">${esc(fix)}</span></p>` : "");
  box.dataset.field = field || "";
  if (field && $(field)) $(field).focus();
}

function bar(r) {
  const lo = 100 * r.prob_min, hi = 100 * r.prob_max;
  return `<div class="bar" title="fold models ${pct(r.prob_min)}–${pct(r.prob_max)}">
      <div class="spread" style="left:${lo}%;width:${Math.max(hi - lo, 0.6)}%"></div>
      <div class="thr" style="left:${100 * r.threshold}%"></div>
      <div class="mean" style="left:calc(${100 * r.prob}% - 1px)"></div></div>
    <div class="scale"><span>0%</span><span>dashed line: threshold ${pct(r.threshold)} · bar: range of the ${r.n_folds} fold models</span><span>100%</span></div>`;
}

function decisionText(r) {
  return r.decision
    ? ["high", "Metastasis predicted", `risk at or above the model's threshold of ${pct(r.threshold)}`]
    : ["low", "No metastasis predicted", `risk below the model's threshold of ${pct(r.threshold)}`];
}

function showResult(a) {
  $("placeholder").hidden = true;
  $("error").hidden = true;
  const box = $("result");
  box.hidden = false;
  const r = a.results.find((x) => x.primary) || a.results[0];
  const [cls, head, why] = decisionText(r);
  const used = r.modalities.map((m) => MODALITY[m] || m).join(" + ");
  const mpp = a.inputs.cytology_mpp;
  const expected = INFO.models.find((m) => m.name === r.model).modalities;
  const missing = expected.filter((m) => !r.modalities.includes(m)).map((m) => MODALITY[m] || m);
  let html = `<h2>Result · ${esc(r.label)} <span class="hint">(the study's primary model)</span></h2>
    <div class="risk-card" id="primary" data-model="${esc(r.model)}" data-prob="${r.prob}" data-decision="${r.decision}">
      <div><div class="hint">estimated risk of lymph-node metastasis</div><div class="risk" id="risk">${pct(r.prob)}</div></div>
      <div><div class="decision ${cls}" id="decision">${head}</div><div class="hint">${why}</div></div>
    </div>${bar(r)}
    <dl class="facts">
      <dt>Fold models</dt><dd id="spread">${r.n_folds} models: ${pct(r.prob_min)} to ${pct(r.prob_max)} (sd ${r.prob_sd === null ? "–" : pct(r.prob_sd)})</dd>
      <dt>Inputs used</dt><dd id="modalities">${esc(used)}</dd>
      ${mpp ? `<dt>Cytology resolution</dt><dd>${mpp.mpp} µm/px (${mpp.source === "file" ? "recorded in the file" : "from this form"})</dd>` : ""}
    </dl>`;
  if (r.missing_modality) {
    html += `<div class="flag" id="missing">Scored without ${esc(missing.join(" and ") || "one input")}: this model was validated
      with all of its inputs, so this estimate is less certain. Add the missing files for a complete assessment.</div>`;
  }
  const others = a.results.filter((x) => x !== r);
  if (others.length) {
    html += `<details open><summary>The study's other models</summary><table id="others"><tr><th>model</th><th>risk</th><th>decision</th><th>fold range</th><th>threshold</th></tr>` +
      others.map((o) => `<tr data-model="${esc(o.model)}" data-prob="${o.prob}"><td>${esc(o.label)}${o.missing_modality ? " (flagged: input missing)" : ""}</td><td>${pct(o.prob)}</td><td>${o.decision ? "metastasis predicted" : "no metastasis predicted"}</td><td>${pct(o.prob_min)}–${pct(o.prob_max)}</td><td>${pct(o.threshold)}</td></tr>`).join("") +
      `</table><p class="hint">Secondary: the decision rests on the primary model, named before the study.</p></details>`;
  }
  html += `<details ${a.explanations && a.explanations.length ? "open" : ""}><summary>Grad-CAM overlays</summary>`;
  if (a.explanations && a.explanations.length) {
    html += `<div class="overlays" id="overlays">` + a.explanations.map((e) =>
      `<figure><img src="${esc(e.image)}" alt="${esc(e.title)}"><figcaption>${esc(e.title)}</figcaption></figure>`).join("") + `</div>`;
  } else {
    html += `<p class="hint" id="no-overlays">No overlays: this installation has no explanation module for served models.</p>`;
  }
  html += `</details><details><summary>Record of this prediction</summary><dl class="facts">
      <dt>Request</dt><dd class="mono">${esc(a.request_id)}</dd>
      <dt>Model bundle</dt><dd>${esc(a.bundle.name)} ${esc(a.bundle.version)}, ${esc(a.runtime)}, ${esc(a.precision)}</dd>
      <dt>Fingerprint</dt><dd class="mono">${esc(a.bundle.fingerprint)}</dd>
      <dt>Input checksums</dt><dd class="mono">${Object.entries(a.inputs).filter(([k]) => k !== "cytology_mpp").map(([k, v]) => `${esc(k)}: ${v.map((f) => f.sha256.slice(0, 16)).join(", ")}`).join("<br>")}</dd>
      <dt>Time</dt><dd>${a.seconds.toFixed(2)} s</dd></dl></details>`;
  if (a.warnings && a.warnings.length) html += a.warnings.map((w) => `<div class="flag">${esc(w)}</div>`).join("");
  box.innerHTML = html;
}

function check(form) {
  const f = (n) => form.elements[n] && form.elements[n].files ? form.elements[n].files : [];
  if (!f("us_1").length && !f("cytology").length) {
    return ["No images chosen", "Choose ultrasound view 1 (and view 2) and the cytology.", "", "us_1"];
  }
  if (f("us_2").length && !f("us_1").length) return ["View 2 without view 1", "Put a single view in view 1.", "", "us_1"];
  const limit = INFO.limits.max_image_mb * 1048576;
  for (const n of ["us_1", "us_2"]) {
    if (f(n).length && f(n)[0].size > limit) {
      return ["File too large", `Ultrasound ${n === "us_1" ? "view 1" : "view 2"} is larger than ${INFO.limits.max_image_mb} MB.`, "Export a smaller image.", n];
    }
  }
  return null;
}

$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const bad = check(form);
  if (bad) return showError(bad[0], bad[1], bad[2], bad[3]);
  const data = new FormData();
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === "file") for (const file of el.files) data.append(el.name, file, file.name);
    else if (el.value !== "") data.append(el.name, el.value);
  }
  $("submit").disabled = true;
  $("status").textContent = "Scoring… this takes a few seconds.";
  try {
    const res = await fetch("/predict", { method: "POST", body: data });
    const body = await res.json().catch(() => ({ error: `the server answered ${res.status}` }));
    if (!res.ok) showError("These files could not be scored", body.error, body.fix, body.field);
    else showResult(body);
  } catch (e) {
    showError("The server could not be reached", String(e), "Check that radiopath serve is still running.", "");
  } finally {
    $("submit").disabled = false;
    $("status").textContent = "";
  }
});

// Drag a box on the preview of a view (PNG, JPEG, BMP, GIF: what the browser can show).
function roi(view) {
  const input = $(view), canvas = $(view + "_canvas"), box = $(view + "_box"), ctx = canvas.getContext("2d");
  let img = null, start = null;
  const draw = (r) => {
    if (!img) return;
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    if (!r) return;
    const k = canvas.width / img.naturalWidth;
    ctx.strokeStyle = "#ffd23f"; ctx.lineWidth = 2;
    ctx.strokeRect(r[0] * k, r[1] * k, (r[2] - r[0]) * k, (r[3] - r[1]) * k);
  };
  const parse = () => { const v = box.value.split(/[ ,;]+/).map(Number); return v.length === 4 && v.every(isFinite) ? v : null; };
  const at = (e) => {
    const b = canvas.getBoundingClientRect();
    const x = Math.round((e.clientX - b.left) * img.naturalWidth / b.width);
    const y = Math.round((e.clientY - b.top) * img.naturalHeight / b.height);
    return [Math.max(0, Math.min(img.naturalWidth, x)), Math.max(0, Math.min(img.naturalHeight, y))];
  };
  const rect = (a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
  input.addEventListener("change", () => {
    $(view + "_roi").hidden = true; box.value = ""; img = null;
    const file = input.files[0];
    if (!file || !/^image\/(png|jpeg|bmp|gif)$/.test(file.type)) return;
    const im = new Image();
    im.onload = () => {
      img = im;
      const k = Math.min(1, 380 / im.naturalWidth);
      canvas.width = Math.round(im.naturalWidth * k); canvas.height = Math.round(im.naturalHeight * k);
      $(view + "_roi").hidden = false; draw(parse());
    };
    im.src = URL.createObjectURL(file);
  });
  canvas.addEventListener("mousedown", (e) => { if (img) start = at(e); });
  canvas.addEventListener("mousemove", (e) => { if (img && start) draw(rect(start, at(e))); });
  window.addEventListener("mouseup", (e) => {
    if (!img || !start) return;
    const r = rect(start, at(e)); start = null;
    if (r[2] - r[0] >= 4 && r[3] - r[1] >= 4) box.value = r.join(","); else draw(parse());
  });
  box.addEventListener("input", () => draw(parse()));
}
roi("us_1"); roi("us_2");

$("reset").addEventListener("click", () => {
  $("result").hidden = true; $("error").hidden = true; $("placeholder").hidden = false;
  setTimeout(() => { if (INFO && INFO.cytology_default_mpp) $("cytology_mpp").value = INFO.cytology_default_mpp; }, 0);
});
$("show-use").addEventListener("click", (ev) => { ev.preventDefault(); $("intended-use").hidden = !$("intended-use").hidden; });
loadInfo().catch((e) => showError("The model could not be loaded", String(e), "Restart radiopath serve.", ""));
