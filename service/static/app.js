/* optirec web form.
 *
 * The Profile's fields come from GET /profile/fields (nothing is duplicated here); the form posts
 * to POST /recommend; "Validate with a trial run" posts to POST /trials and follows the trial with
 * the server-sent events of GET /trials/{id}/events (polling GET /trials/{id} as a fallback), then
 * draws the loss curves as an inline SVG.  API data is only ever written with textContent or SVG
 * attributes, never parsed as HTML.
 */
"use strict";

(function () {
  const SVG_NS = "http" + "://www.w3.org/2000/svg";
  const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
  const POLL_MS = 500;
  const KEY_STORAGE = "optirec-api-key";

  const state = {
    fields: [],
    rec: null,
    catalog: null,
    trialId: null,
    abort: null,
    pollTimer: null,
    finished: false,
    apiKey: "",
    sources: null, // GET /sources, indexed for citation look-up
    cited: new Map(), // the sources the shown recommendation cites, for its reference list
  };

  // ------------------------------------------------------------------ small helpers
  function $(id) {
    return document.getElementById(id);
  }

  /** el("div", {class: "x", for: "y"}, "text", child) -> element; strings become text nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    }
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function fmt(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "number") return window.optirecFormat.number(value);
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (Array.isArray(value)) return "[" + value.map(fmt).join(", ") + "]";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function fmtBytes(bytes) {
    if (bytes === null || bytes === undefined) return "—";
    const units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let v = bytes;
    let i = 0;
    while (Math.abs(v) >= 1000 && i < units.length - 1) {
      v /= 1000;
      i += 1;
    }
    return (i === 0 ? String(v) : v.toFixed(v >= 100 ? 0 : 1)) + " " + units[i];
  }

  function fillKV(table, rows) {
    const body = table.tBodies[0];
    clear(body);
    for (const [key, value] of rows) {
      if (value === undefined) continue;
      body.appendChild(el("tr", {}, el("th", { scope: "row" }, key), el("td", {}, typeof value === "string" ? value : fmt(value))));
    }
  }

  function errorText(data, resp) {
    const err = data && data.error;
    if (err && err.message) return err.message;
    if (data && typeof data.detail === "string") return data.detail;
    return "HTTP " + resp.status + " " + (resp.statusText || "");
  }

  async function api(method, path, body, withKey) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (withKey && state.apiKey) headers["X-API-Key"] = state.apiKey;
    const resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
    const text = await resp.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_e) {
        data = null;
      }
    }
    return { resp, data };
  }

  // ------------------------------------------------------------------ the form
  function fieldHint(field) {
    const parts = [];
    if (field.description) parts.push(field.description);
    if (field.type === "integer" || field.type === "number") {
      const lo = field.minimum ?? field.exclusive_minimum;
      const hi = field.maximum ?? field.exclusive_maximum;
      if (lo !== null && lo !== undefined && hi !== null && hi !== undefined) {
        parts.push("(" + (field.minimum !== null && field.minimum !== undefined ? "≥ " : "> ") + fmt(lo) + ", ≤ " + fmt(hi) + ")");
      }
    }
    return parts.join(" ");
  }

  function buildField(field) {
    const id = "field-" + field.name;
    const hintId = "hint-" + field.name;
    const errId = "error-" + field.name;
    const described = hintId + " " + errId;
    const hint = el("span", { class: "hint", id: hintId }, fieldHint(field));
    const error = el("p", { class: "field-error", id: errId, role: "alert", hidden: true });
    const wrap = el("div", { class: "field", id: "wrap-" + field.name, "data-field": field.name });

    if (field.type === "multi_enum") {
      wrap.classList.add("wide");
      const boxes = el("div", { class: "checks" });
      for (const opt of field.options) {
        const boxId = id + "-" + opt.value;
        boxes.appendChild(
          el(
            "label",
            { for: boxId, title: opt.description || opt.value },
            el("input", { type: "checkbox", id: boxId, name: field.name, value: opt.value, "aria-describedby": described }),
            opt.label
          )
        );
      }
      wrap.appendChild(el("fieldset", { id: id }, el("legend", {}, field.label), boxes));
      wrap.append(hint, error);
      return wrap;
    }

    let control;
    if (field.type === "enum" || field.type === "boolean") {
      control = el("select", { id: id, name: field.name, "aria-describedby": described });
      control.appendChild(el("option", { value: "" }, "— not specified —"));
      const options =
        field.type === "boolean"
          ? [
              { value: "true", label: "Yes" },
              { value: "false", label: "No" },
            ]
          : field.options;
      for (const opt of options) {
        control.appendChild(el("option", { value: opt.value, title: opt.description || null }, opt.label));
      }
    } else if (field.type === "integer" || field.type === "number") {
      control = el("input", {
        type: "number",
        id: id,
        name: field.name,
        inputmode: field.type === "integer" ? "numeric" : "decimal",
        step: field.type === "integer" ? "1" : "any",
        min: field.minimum ?? field.exclusive_minimum,
        max: field.maximum ?? field.exclusive_maximum,
        placeholder: "optional",
        "aria-describedby": described,
      });
    } else {
      control = el("input", { type: "text", id: id, name: field.name, placeholder: "optional", "aria-describedby": described });
    }
    wrap.append(el("label", { for: id }, field.label), control, hint, error);
    return wrap;
  }

  async function loadFields() {
    const container = $("profile-fields");
    try {
      const { resp, data } = await api("GET", "/profile/fields");
      if (!resp.ok || !Array.isArray(data)) throw new Error(errorText(data, resp));
      state.fields = data;
      clear(container);
      for (const field of data) container.appendChild(buildField(field));
      show($("fields-loading"), false);
    } catch (e) {
      $("fields-loading").textContent = "Could not load the profile fields: " + e.message;
      $("fields-loading").classList.add("error");
    }
  }

  function clearErrors() {
    for (const node of document.querySelectorAll(".field-error")) {
      node.textContent = "";
      show(node, false);
    }
    for (const node of document.querySelectorAll(".field.invalid")) node.classList.remove("invalid");
    for (const node of document.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    $("form-error").textContent = "";
    show($("form-error"), false);
  }

  function fieldError(name, message) {
    const errNode = $("error-" + name);
    if (!errNode) return false;
    errNode.textContent = message;
    show(errNode, true);
    $("wrap-" + name).classList.add("invalid");
    const control = $("field-" + name);
    if (control) control.setAttribute("aria-invalid", "true");
    return true;
  }

  /** The Profile as JSON, or null after marking client-side errors. */
  function collectProfile() {
    const profile = {};
    let ok = true;
    for (const field of state.fields) {
      if (field.type === "multi_enum") {
        const values = Array.from(document.querySelectorAll('input[type="checkbox"][name="' + CSS.escape(field.name) + '"]:checked')).map(
          (box) => box.value
        );
        if (values.length) profile[field.name] = values;
        continue;
      }
      const control = $("field-" + field.name);
      if (!control) continue;
      if (field.type === "integer" || field.type === "number") {
        if (control.validity && control.validity.badInput) {
          fieldError(field.name, "must be a number");
          ok = false;
          continue;
        }
        if (control.value.trim() === "") continue;
        profile[field.name] = Number(control.value);
      } else if (field.type === "boolean") {
        if (control.value !== "") profile[field.name] = control.value === "true";
      } else if (control.value !== "") {
        profile[field.name] = control.value;
      }
    }
    return ok ? profile : null;
  }

  /** Remove the shown recommendation and its trial view (after Clear, or when a submit fails). */
  function clearResult() {
    stopFollowing();
    state.rec = null;
    state.trialId = null;
    state.finished = true;
    state.cited = new Map();
    show($("result"), false);
    show($("trial"), false);
    $("optimizer-name").textContent = "";
    $("optimizer-display").textContent = "";
    show($("trial-result"), false);
    clear($("trial-plot-container"));
    show($("trial-progress"), false);
    show($("trial-cancel"), false);
    $("trial-button").disabled = false;
    setTrialStatus("", "");
    trialError("");
  }

  function issueText(issue) {
    let text = issue.message;
    if (issue.suggestion) text += " (did you mean '" + issue.suggestion + "'?)";
    return text;
  }

  async function onSubmit(event) {
    event.preventDefault();
    clearErrors();
    const profile = collectProfile();
    if (!profile) {
      clearResult();
      $("form-error").textContent = "Please correct the marked fields.";
      show($("form-error"), true);
      return;
    }
    const button = $("recommend-button");
    button.disabled = true;
    try {
      const { resp, data } = await api("POST", "/recommend", profile);
      if (resp.ok) {
        await loadSources();
        renderRecommendation(data);
        return;
      }
      clearResult();
      const issues = (data && data.error && data.error.issues) || [];
      const unplaced = [];
      for (const issue of issues) {
        const name = String(issue.field || "").split(/[[.]/)[0];
        if (!fieldError(name, issueText(issue))) unplaced.push(issue.field + ": " + issueText(issue));
      }
      const formError = $("form-error");
      formError.textContent = unplaced.length ? unplaced.join("; ") : issues.length ? "Please correct the marked fields." : errorText(data, resp);
      show(formError, true);
      const firstInvalid = document.querySelector("[aria-invalid='true']");
      if (firstInvalid) firstInvalid.focus();
    } catch (e) {
      clearResult();
      $("form-error").textContent = "The service could not be reached: " + e.message;
      show($("form-error"), true);
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ the recommendation
  async function loadCatalog() {
    if (state.catalog) return state.catalog;
    try {
      const { resp, data } = await api("GET", "/optimizers");
      if (resp.ok && Array.isArray(data)) {
        state.catalog = {};
        for (const spec of data) state.catalog[spec.name] = spec;
      }
    } catch (_e) {
      /* the display name is a nicety */
    }
    return state.catalog;
  }

  // ------------------------------------------------------------------ citations (GET /sources)
  // A citation names seeds by id ("004 §2.3 ResNet") and papers by how they are cited ("external: He et al.
  // 2016 ..."), several separated by ";" outside brackets: the same resolution as rules/sources.py.
  async function loadSources() {
    if (state.sources) return state.sources;
    try {
      const { resp, data } = await api("GET", "/sources");
      if (resp.ok && Array.isArray(data)) {
        const byId = {};
        const spellings = [];
        for (const entry of data) {
          byId[entry.id] = entry;
          for (const spelling of entry.cite_as || []) spellings.push([spelling, entry.id]);
        }
        spellings.sort((a, b) => b[0].length - a[0].length);
        state.sources = { byId, spellings };
      }
    } catch (_e) {
      /* citations stay plain text */
    }
    return state.sources;
  }

  function citationParts(text) {
    const parts = [];
    let depth = 0;
    let start = 0;
    for (let i = 0; i < text.length; i += 1) {
      const ch = text[i];
      if (ch === "(" || ch === "[") depth += 1;
      else if (ch === ")" || ch === "]") depth = Math.max(0, depth - 1);
      else if (ch === ";" && depth === 0) {
        parts.push(text.slice(start, i).trim());
        start = i + 1;
      }
    }
    parts.push(text.slice(start).trim());
    return parts.filter((p) => p);
  }

  function resolveCitation(text) {
    const found = [];
    if (!state.sources) return found;
    for (const part of citationParts(String(text || ""))) {
      const seed = /^(00[0-4])(\s|$)/.exec(part);
      let id = seed && state.sources.byId[seed[1]] ? seed[1] : null;
      if (!id) {
        const rest = part.startsWith("external: ") ? part.slice(10) : part;
        const hit = state.sources.spellings.find(([spelling]) => rest.startsWith(spelling) && !/[A-Za-z0-9]/.test(rest.charAt(spelling.length)));
        id = hit ? hit[1] : null;
      }
      if (id && !found.includes(id)) found.push(id);
    }
    return found.map((id) => state.sources.byId[id]);
  }

  function citeEl(text) {
    const entries = resolveCitation(text);
    for (const entry of entries) state.cited.set(entry.id, entry);
    const first = entries.find((e) => e.link);
    if (!first) return el("cite", { class: "source", title: entries.map((e) => e.reference).join("\n") || null }, text);
    return el(
      "cite",
      { class: "source" },
      el("a", { href: first.link, title: entries.map((e) => e.reference).join("\n"), target: "_blank", rel: "noopener noreferrer" }, text)
    );
  }

  function renderRecipe(rec) {
    const recipe = rec.recipe;
    show($("recipe-block"), Boolean(recipe));
    if (!recipe) return;
    const title = $("recipe-title");
    clear(title);
    title.appendChild(el("strong", {}, recipe.title));
    title.appendChild(document.createTextNode(" "));
    title.appendChild(citeEl(recipe.source));
    title.appendChild(el("span", { class: "detail" }, "distance " + fmt(recipe.distance) + " (the seed table's row: " + fmt(recipe.table_distance) + ")"));
    const body = $("recipe-adapted").tBodies[0];
    clear(body);
    for (const a of recipe.adapted || []) {
      body.appendChild(el("tr", {}, el("td", { class: "mono" }, a.field), el("td", { class: "mono" }, fmt(a.from)), el("td", { class: "mono" }, fmt(a.to)), el("td", {}, a.why)));
    }
    if (!(recipe.adapted || []).length) body.appendChild(el("tr", {}, el("td", { class: "muted", colspan: "4" }, "nothing: your job is the recipe's")));
    const near = recipe.nearest || [];
    $("recipe-nearest").textContent = near.length ? "Next nearest: " + near.map((n) => n.title + " (" + n.optimizer + ", " + fmt(n.distance) + ")").join("; ") : "";
  }

  function renderReferences() {
    const list = $("references");
    clear(list);
    for (const entry of state.cited.values()) {
      list.appendChild(el("li", { id: "source-" + entry.id }, entry.link ? el("a", { href: entry.link, target: "_blank", rel: "noopener noreferrer" }, entry.reference) : entry.reference));
    }
    show($("references-block"), state.cited.size > 0);
  }

  function renderRecommendation(rec) {
    state.rec = rec;
    state.cited = new Map();
    $("optimizer-name").textContent = rec.optimizer.name;
    $("optimizer-display").textContent = "";
    loadCatalog().then((catalog) => {
      const spec = catalog && catalog[rec.optimizer.name];
      if (spec && spec.display_name && state.rec === rec) $("optimizer-display").textContent = "(" + spec.display_name + ")";
    });

    fillKV($("hyperparameters"), Object.entries(rec.optimizer.hyperparameters || {}));

    const s = rec.schedule || {};
    const schedRows = [
      ["schedule", s.name],
      ["warmup steps", s.warmup_steps],
      ["warmup ratio", s.warmup_ratio],
      ["total steps", s.total_steps],
    ];
    if (s.milestones) schedRows.push(["milestones", s.milestones]);
    if (s.milestone_fractions) schedRows.push(["milestone fractions", s.milestone_fractions]);
    if (s.gamma !== null && s.gamma !== undefined) schedRows.push(["gamma", s.gamma]);
    fillKV($("schedule"), schedRows);

    const sc = rec.lr_scaling || {};
    const scalingRows = [
      ["batch size", rec.batch_size],
      ["scaling rule", sc.rule],
      ["base lr", sc.base_lr],
      ["base batch size", sc.base_batch_size],
      ["factor", sc.factor],
    ];
    if (sc.reference_model) scalingRows.push(["size factor", `${fmt(sc.size_factor)} (from ${sc.reference_model})`]);
    if (sc.reference_steps) {
      scalingRows.push(["horizon factor", `${fmt(sc.horizon_factor)} (${fmt(sc.reference_steps)} → ${fmt(sc.total_steps)} steps)`]);
    }
    fillKV($("scaling"), scalingRows);
    $("scaling-reason").textContent = sc.reason || "";

    const mem = rec.memory || {};
    const clipRows = [["max grad norm", rec.gradient_clipping ? rec.gradient_clipping.max_norm : "none"]];
    if (rec.ema) clipRows.push(["EMA decay", rec.ema.decay]);
    clipRows.push(["state per parameter", fmt(mem.state_multiplier) + "×"]);
    if (mem.optimizer_state_bytes !== null && mem.optimizer_state_bytes !== undefined) {
      clipRows.push(["optimizer state", fmtBytes(mem.optimizer_state_bytes)]);
    }
    if (mem.total_bytes !== null && mem.total_bytes !== undefined) clipRows.push(["training memory", fmtBytes(mem.total_bytes)]);
    if (mem.fits !== null && mem.fits !== undefined) clipRows.push(["fits the device", mem.fits]);
    fillKV($("clipping"), clipRows);

    const warnings = $("warnings");
    clear(warnings);
    for (const w of rec.warnings || []) warnings.appendChild(el("li", {}, w));
    show($("warnings-block"), (rec.warnings || []).length > 0);

    const groups = $("param-groups").tBodies[0];
    clear(groups);
    for (const g of rec.param_groups || []) {
      const settings = Object.entries(g.hyperparameters || {}).map(([k, v]) => k + "=" + fmt(v));
      if (g.frozen) settings.unshift("frozen");
      if (g.layerwise_lr_decay !== null && g.layerwise_lr_decay !== undefined) settings.push("layer-wise lr decay " + fmt(g.layerwise_lr_decay));
      groups.appendChild(
        el(
          "tr",
          {},
          el("td", { class: "mono" }, g.name),
          el("td", { class: "mono" }, (g.match || []).join(", ")),
          el("td", { class: "mono" }, g.optimizer || rec.optimizer.name),
          el("td", { class: "mono" }, settings.join(", ") || "—"),
          el("td", {}, g.why || "")
        )
      );
    }
    show($("param-groups-block"), (rec.param_groups || []).length > 0);

    const phases = $("phases");
    clear(phases);
    for (const p of rec.phases || []) {
      phases.appendChild(
        el("li", {}, el("strong", { class: "mono" }, p.name + ": " + p.optimizer.name), " ", el("span", { class: "muted" }, p.trigger), el("span", { class: "detail" }, p.why))
      );
    }
    show($("phases-block"), (rec.phases || []).length > 0);

    const rationale = $("rationale");
    clear(rationale);
    for (const r of rec.rationale || []) {
      rationale.appendChild(
        el(
          "li",
          { "data-rule": r.rule },
          el("span", { class: "badge " + String(r.status).replace(/[^a-z_]/g, "") }, r.status),
          el("span", { class: "rule-id" }, r.rule),
          " ",
          citeEl(r.source),
          el("div", {}, r.effect),
          r.detail ? el("span", { class: "detail" }, r.detail) : null
        )
      );
    }

    const alternatives = $("alternatives");
    clear(alternatives);
    for (const a of rec.alternatives || []) {
      alternatives.appendChild(
        el(
          "li",
          {},
          el("strong", { class: "mono" }, a.name),
          " ",
          el("span", { class: "score" }, "score " + fmt(a.score)),
          " ",
          el("span", { class: "mono alt-hp" }, Object.entries(a.hyperparameters || {}).map(([k, v]) => k + "=" + fmt(v)).join(", ")),
          el("span", { class: "detail" }, a.why + (a.rule ? " [" + a.rule + "]" : ""))
        )
      );
    }
    if (!(rec.alternatives || []).length) alternatives.appendChild(el("li", { class: "muted" }, "none"));

    const avoid = $("avoid");
    clear(avoid);
    for (const a of rec.avoid || []) {
      avoid.appendChild(
        el(
          "li",
          {},
          el("strong", { class: "mono" }, a.name),
          el("span", { class: "detail" }, a.why),
          el("span", { class: "detail" }, el("span", { class: "rule-id" }, a.rule), " ", citeEl(a.source))
        )
      );
    }
    if (!(rec.avoid || []).length) avoid.appendChild(el("li", { class: "muted" }, "nothing to avoid"));

    const notes = $("notes");
    clear(notes);
    for (const n of rec.notes || []) notes.appendChild(el("li", {}, n));
    show($("notes-block"), (rec.notes || []).length > 0);

    renderRecipe(rec);
    renderReferences();
    $("rulebook").textContent = rec.rulebook ? "Rulebook " + rec.rulebook.version + " · " + rec.rulebook.hash : "";

    show($("result"), true);
    show($("trial"), true);
    $("result").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  // ------------------------------------------------------------------ trials
  function setTrialStatus(text, cls) {
    const node = $("trial-status");
    node.textContent = text;
    node.className = "status" + (cls ? " " + cls : "");
  }

  function trialError(message) {
    const node = $("trial-error");
    node.textContent = message || "";
    show(node, Boolean(message));
  }

  function stopFollowing() {
    if (state.abort) {
      state.abort.abort();
      state.abort = null;
    }
    if (state.pollTimer) {
      clearTimeout(state.pollTimer);
      state.pollTimer = null;
    }
  }

  function updateTrial(status) {
    if (!status || status.id !== state.trialId || state.finished) return;
    const progress = status.progress || {};
    const bar = $("trial-progress");
    const total = Number(progress.steps_total) || 0;
    const done = Number(progress.steps_done) || 0;
    if (total > 0) {
      bar.max = total;
      bar.value = Math.min(done, total);
    }
    show(bar, true);
    if (TERMINAL.has(status.status)) {
      finishTrial(status);
      return;
    }
    let label = status.status === "queued" ? "Queued…" : "Running: " + done + " / " + (total || "?") + " steps";
    if (status.status !== "queued" && finite(progress.loss)) label += " · loss " + fmt(progress.loss);
    setTrialStatus(label, status.status);
  }

  async function startTrial() {
    trialError("");
    if (!state.rec) return;
    const stepsInput = $("trial-steps");
    const steps = Number(stepsInput.value);
    if (!Number.isInteger(steps) || steps < 1) {
      trialError("Steps must be a whole number of at least 1.");
      stepsInput.focus();
      return;
    }
    state.apiKey = $("api-key").value.trim();
    stopFollowing();
    const button = $("trial-button");
    button.disabled = true;
    show($("trial-result"), false);
    clear($("trial-plot-container"));
    setTrialStatus("Submitting…", "");
    try {
      const { resp, data } = await api(
        "POST",
        "/trials",
        Object.assign(
          { recommendation: state.rec, workload: "auto", steps: steps, device: "auto" },
          $("trial-search").checked ? { validate: true } : {}
        ),
        true
      );
      if (resp.status === 401 || resp.status === 403) {
        show($("api-key-section"), true);
        $("api-key").focus();
        setTrialStatus("", "");
        trialError(
          state.apiKey ? "The API key was refused: " + errorText(data, resp) : "This service needs an API key for trial runs: enter it above and try again."
        );
        button.disabled = false;
        return;
      }
      if (resp.status === 429) {
        const retry = resp.headers.get("Retry-After");
        setTrialStatus("", "");
        trialError("The trial queue is full" + (retry ? "; try again in " + retry + " s." : ".") + " " + errorText(data, resp));
        button.disabled = false;
        return;
      }
      if (!resp.ok || !data || !data.id) {
        setTrialStatus("", "");
        trialError("The trial was not accepted: " + errorText(data, resp));
        button.disabled = false;
        return;
      }
      if (state.apiKey) {
        try {
          sessionStorage.setItem(KEY_STORAGE, state.apiKey);
        } catch (_e) {
          /* storage disabled */
        }
      }
      state.trialId = data.id;
      state.finished = false;
      show($("trial-cancel"), true);
      $("trial-cancel").disabled = false;
      const bar = $("trial-progress");
      bar.max = steps;
      bar.value = 0;
      show(bar, true);
      updateTrial(data);
      if (!state.finished) followEvents(data.id);
    } catch (e) {
      setTrialStatus("", "");
      trialError("The service could not be reached: " + e.message);
      button.disabled = false;
    }
  }

  /** Follow GET /trials/{id}/events (fetch-based, so the API key header can be sent); poll on any failure. */
  async function followEvents(id) {
    const controller = new AbortController();
    state.abort = controller;
    const headers = { Accept: "text/event-stream" };
    if (state.apiKey) headers["X-API-Key"] = state.apiKey;
    try {
      const resp = await fetch("/trials/" + encodeURIComponent(id) + "/events", {
        headers,
        signal: controller.signal,
        cache: "no-store",
      });
      const type = resp.headers.get("Content-Type") || "";
      if (!resp.ok || !resp.body || !type.startsWith("text/event-stream")) {
        if (resp.body) resp.body.cancel().catch(() => {});
        throw new Error("no event stream");
      }
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const finished = await handleEvent(id, block);
          if (finished) {
            controller.abort();
            return;
          }
        }
      }
    } catch (e) {
      if (controller.signal.aborted || (e && e.name === "AbortError")) return; // stopped on purpose
    }
    if (state.trialId === id && !state.finished) poll(id);
  }

  async function handleEvent(id, block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    let payload = null;
    try {
      payload = data.length ? JSON.parse(data.join("\n")) : null;
    } catch (_e) {
      payload = null;
    }
    if (state.trialId !== id) return true;
    if (event === "progress" && payload) {
      // either a whole TrialStatus or a flat {id, status, steps_done, steps_total}
      const status = {
        id: payload.id || id,
        status: payload.status || "running",
        progress: payload.progress || { steps_done: payload.steps_done, steps_total: payload.steps_total, loss: payload.loss },
        result: payload.result || null,
        error: payload.error || null,
      };
      if (TERMINAL.has(status.status)) return false; // the final state comes with "done"
      updateTrial(status);
      return false;
    }
    if (event === "done") {
      // the authoritative final state, result included
      if (payload && payload.id && TERMINAL.has(payload.status) && (payload.result || payload.status !== "succeeded")) {
        updateTrial(payload);
      } else {
        await fetchOnce(id);
      }
      return true;
    }
    return false;
  }

  async function fetchOnce(id) {
    const { resp, data } = await api("GET", "/trials/" + encodeURIComponent(id), undefined, true);
    if (resp.ok) updateTrial(data);
    return { resp, data };
  }

  function poll(id) {
    if (state.trialId !== id || state.finished) return;
    state.pollTimer = setTimeout(async () => {
      state.pollTimer = null;
      try {
        const { resp, data } = await fetchOnce(id);
        if (!resp.ok) {
          trialError("Lost the trial: " + errorText(data, resp));
          finishUI();
          return;
        }
      } catch (_e) {
        /* transient: keep polling */
      }
      poll(id);
    }, POLL_MS);
  }

  async function cancelTrial() {
    const id = state.trialId;
    if (!id || state.finished) return;
    $("trial-cancel").disabled = true;
    setTrialStatus("Cancelling…", "");
    try {
      const { resp, data } = await api("DELETE", "/trials/" + encodeURIComponent(id), undefined, true);
      if (!resp.ok) {
        trialError("Could not cancel: " + errorText(data, resp));
        $("trial-cancel").disabled = false;
        return;
      }
      if (data && data.id === id) updateTrial(data);
      if (!state.finished) {
        stopFollowing();
        poll(id);
      }
    } catch (e) {
      trialError("Could not cancel: " + e.message);
      $("trial-cancel").disabled = false;
    }
  }

  function finishUI() {
    state.finished = true;
    stopFollowing();
    show($("trial-cancel"), false);
    $("trial-button").disabled = false;
  }

  function finishTrial(status) {
    finishUI();
    const result = status.result || null;
    const progress = status.progress || {};
    const bar = $("trial-progress");
    if (status.status === "succeeded" && Number(progress.steps_total) > 0) bar.value = bar.max;
    if (result && result.diverged) {
      setTrialStatus("Diverged" + (result.divergence_reason ? ": " + result.divergence_reason : ""), "diverged");
    } else if (status.status === "succeeded") {
      setTrialStatus("Succeeded: " + (progress.steps_done ?? "?") + " steps", "succeeded");
    } else if (status.status === "cancelled") {
      setTrialStatus("Cancelled after " + (progress.steps_done ?? 0) + " steps", "cancelled");
    } else {
      setTrialStatus("Failed", "failed");
      trialError(status.error ? "The trial failed: " + (typeof status.error === "string" ? status.error : JSON.stringify(status.error)) : "The trial failed.");
    }
    if (result) renderTrialResult(result);
  }

  function renderTrialResult(result) {
    const searchBox = $("trial-search-result");
    if (result && Object.prototype.hasOwnProperty.call(result, "validation")) {
      renderSearchResult(result);
      return;
    }
    show(searchBox, false);
    const workload = result.workload;
    let workloadText = workload;
    if (workload && typeof workload === "object") {
      workloadText = [workload.name, workload.description].filter(Boolean).join(": ");
      if (Array.isArray(workload.traits) && workload.traits.length) workloadText += " (traits: " + workload.traits.join(", ") + ")";
    }
    const rows = [
      ["optimizer", result.optimizer],
      ["workload", workloadText === undefined ? undefined : String(workloadText)],
      ["device", result.device],
      ["model parameters", result.parameters],
      ["final loss", result.final_loss],
    ];
    if (result.final_metric !== null && result.final_metric !== undefined) {
      rows.push([result.metric_name || "metric", result.final_metric]);
    }
    if (result.steps_per_second !== null && result.steps_per_second !== undefined) rows.push(["steps / second", result.steps_per_second]);
    if (result.wall_seconds !== null && result.wall_seconds !== undefined) rows.push(["wall time", fmt(result.wall_seconds) + " s"]);
    if (result.peak_memory_bytes) rows.push(["peak memory", fmtBytes(result.peak_memory_bytes)]);
    if (Array.isArray(result.warnings) && result.warnings.length) rows.push(["warnings", result.warnings.map(String).join("; ")]);
    rows.push(["diverged", result.diverged ? "yes" + (result.divergence_reason ? ": " + result.divergence_reason : "") : "no"]);
    fillKV(
      $("trial-summary"),
      rows.filter(([, v]) => v !== undefined)
    );
    const container = $("trial-plot-container");
    clear(container);
    container.appendChild(drawPlot(result));
    show($("trial-result"), true);
  }

  /** A validate trial: the winner, what changed and every candidate with its rung scores. */
  function renderSearchResult(result) {
    const report = result.validation;
    const rows = [];
    const workload = result.workload;
    if (workload && typeof workload === "object") rows.push(["workload", [workload.name, workload.description].filter(Boolean).join(": ")]);
    if (Array.isArray(result.warnings) && result.warnings.length) rows.push(["warnings", result.warnings.map(String).join("; ")]);
    clear($("trial-plot-container"));
    if (!report) {
      fillKV($("trial-summary"), rows);
      show($("trial-search-result"), false);
      show($("trial-result"), true);
      return;
    }
    const cost = report.cost || {};
    rows.push(["verdict", report.verdict]);
    rows.push(["winner", report.winner]);
    rows.push(["advice", report.advice]);
    rows.push(["cost", (cost.spent_steps ?? "?") + " optimizer steps = " + fmt(cost.full_runs) + " runs of " + report.steps + " steps (budget " + fmt(cost.budget_runs) + ")"]);
    fillKV($("trial-summary"), rows);
    const changes = Array.isArray(report.changes) ? report.changes : [];
    $("trial-winner").textContent = changes.length
      ? "Changed: " + changes.map((c) => c.field + " " + JSON.stringify(c.from) + " → " + JSON.stringify(c.to)).join("; ")
      : "The recommendation held: no candidate beat it by more than 1% at full length.";
    const body = $("trial-candidates").querySelector("tbody");
    clear(body);
    for (const c of report.candidates || []) {
      const tr = document.createElement("tr");
      if (c.label === report.winner) tr.className = "winner";
      const scores = (c.rung_scores || []).map((x) => (x === null ? "diverged" : fmt(x))).join(" → ");
      const outcome = c.label === report.winner ? "winner" : c.diverged ? "diverged" : c.eliminated_at === null ? "finalist" : "stopped after rung " + (c.eliminated_at + 1);
      const lr = c.hyperparameters && c.hyperparameters.lr !== undefined ? fmt(c.hyperparameters.lr) : "";
      for (const text of [c.label, c.optimizer, lr, scores, outcome]) {
        const td = document.createElement("td");
        td.textContent = String(text);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    show($("trial-search-result"), true);
    show($("trial-result"), true);
  }

  // ------------------------------------------------------------------ the plot
  function finite(v) {
    return typeof v === "number" && Number.isFinite(v);
  }

  /** About `count` round tick values covering [lo, hi]. */
  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
    return ticks;
  }

  function scale(d0, d1, r0, r1, log) {
    const f = log ? Math.log10 : (x) => x;
    const a = f(d0);
    const b = f(d1);
    return (x) => r0 + ((f(x) - a) / (b - a || 1)) * (r1 - r0);
  }

  function pathFrom(points) {
    // points: [x, y] pixel pairs, or null to break the line
    let d = "";
    let pen = false;
    for (const p of points) {
      if (!p) {
        pen = false;
        continue;
      }
      d += (pen ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1) + " ";
      pen = true;
    }
    return d.trim();
  }

  function drawPlot(result) {
    const W = 760;
    const H = 380;
    const train = Array.isArray(result.train_loss) ? result.train_loss : [];
    const heldout = (Array.isArray(result.heldout) ? result.heldout : []).filter((h) => h && finite(h.step));
    const metricPoints = heldout.filter((h) => finite(h.metric));
    const hasMetric = metricPoints.length > 0;
    const m = { left: 68, right: hasMetric ? 68 : 24, top: 44, bottom: 52 };

    const losses = train.filter(finite).concat(heldout.map((h) => h.loss).filter(finite));
    const steps = heldout.map((h) => h.step).concat(train.length ? [train.length] : []);
    const root = svg("svg", {
      id: "trial-plot",
      viewBox: "0 0 " + W + " " + H,
      role: "img",
      "aria-labelledby": "trial-plot-title",
      preserveAspectRatio: "xMidYMid meet",
    });
    root.appendChild(svg("title", { id: "trial-plot-title" }, "Loss curves of the trial run (" + (result.optimizer || "optimizer") + ")"));
    if (!losses.length) {
      root.appendChild(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "No finite loss values were recorded."));
      return root;
    }

    let yMin = Math.min(...losses);
    let yMax = Math.max(...losses);
    const useLog = yMin > 0 && yMax / yMin > 100;
    if (!useLog) {
      if (yMax === yMin) {
        yMin -= Math.abs(yMin) * 0.1 || 1;
        yMax += Math.abs(yMax) * 0.1 || 1;
      }
      const pad = (yMax - yMin) * 0.05;
      yMin = yMin >= 0 && yMin - pad < 0 ? 0 : yMin - pad;
      yMax += pad;
    } else {
      yMin = Math.pow(10, Math.floor(Math.log10(yMin)));
      yMax = Math.pow(10, Math.ceil(Math.log10(yMax)));
    }
    const xMax = Math.max(1, ...steps);
    const xMin = 0;
    const x0 = m.left;
    const x1 = W - m.right;
    const y0 = H - m.bottom;
    const y1 = m.top;
    const sx = scale(xMin, xMax, x0, x1, false);
    const sy = scale(yMin, yMax, y0, y1, useLog);

    // grid and y ticks (loss)
    const yTicks = useLog ? logTicks(yMin, yMax) : niceTicks(yMin, yMax, 5);
    const gridG = svg("g", { class: "grid" });
    const leftAxis = svg("g", { class: "axis axis-y" });
    for (const t of yTicks) {
      const y = sy(t);
      if (y < y1 - 0.5 || y > y0 + 0.5) continue;
      gridG.appendChild(svg("line", { class: "grid-line", x1: x0, x2: x1, y1: y, y2: y }));
      leftAxis.appendChild(svg("line", { x1: x0 - 5, x2: x0, y1: y, y2: y }));
      leftAxis.appendChild(svg("text", { x: x0 - 8, y: y + 4, "text-anchor": "end" }, fmt(t)));
    }
    leftAxis.appendChild(svg("line", { x1: x0, x2: x0, y1: y0, y2: y1 }));
    leftAxis.appendChild(
      svg("text", { class: "axis-label", x: 16, y: (y0 + y1) / 2, "text-anchor": "middle", transform: "rotate(-90 16 " + (y0 + y1) / 2 + ")" }, useLog ? "loss (log scale)" : "loss")
    );

    const bottomAxis = svg("g", { class: "axis axis-x" });
    for (const t of niceTicks(xMin, xMax, 8)) {
      if (!Number.isInteger(t)) continue;
      const x = sx(t);
      bottomAxis.appendChild(svg("line", { x1: x, x2: x, y1: y0, y2: y0 + 5 }));
      bottomAxis.appendChild(svg("text", { x: x, y: y0 + 18, "text-anchor": "middle" }, String(t)));
    }
    bottomAxis.appendChild(svg("line", { x1: x0, x2: x1, y1: y0, y2: y0 }));
    bottomAxis.appendChild(svg("text", { class: "axis-label", x: (x0 + x1) / 2, y: H - 12, "text-anchor": "middle" }, "step"));

    root.append(gridG, leftAxis, bottomAxis);

    const legend = [];
    const clampY = (y) => Math.max(y1, Math.min(y0, y));

    if (train.some(finite)) {
      const pts = train.map((v, i) => (finite(v) && (!useLog || v > 0) ? [sx(i + 1), clampY(sy(v))] : null));
      root.appendChild(svg("path", { class: "series-train", d: pathFrom(pts) }));
      legend.push(["series-train", "train loss", false]);
    }

    const heldLoss = heldout.filter((h) => finite(h.loss) && (!useLog || h.loss > 0));
    if (heldLoss.length) {
      const pts = heldLoss.map((h) => [sx(h.step), clampY(sy(h.loss))]);
      root.appendChild(svg("path", { class: "series-heldout", d: pathFrom(pts) }));
      for (const [x, y] of pts) root.appendChild(svg("circle", { class: "marker-heldout", cx: x, cy: y, r: 3 }));
      legend.push(["series-heldout", "held-out loss", true]);
    }

    if (hasMetric) {
      const values = metricPoints.map((h) => h.metric);
      let mMin = Math.min(0, ...values);
      let mMax = Math.max(...values);
      if (mMax === mMin) mMax = mMin + 1;
      if (mMin >= 0 && mMax <= 1) mMax = 1;
      const ticks = niceTicks(mMin, mMax, 5);
      mMin = Math.min(mMin, ticks[0]);
      mMax = Math.max(mMax, ticks[ticks.length - 1]);
      const sm = scale(mMin, mMax, y0, y1, false);
      const rightAxis = svg("g", { class: "axis axis-y2" });
      for (const t of ticks) {
        const y = sm(t);
        rightAxis.appendChild(svg("line", { x1: x1, x2: x1 + 5, y1: y, y2: y }));
        rightAxis.appendChild(svg("text", { x: x1 + 8, y: y + 4, "text-anchor": "start" }, fmt(t)));
      }
      rightAxis.appendChild(svg("line", { x1: x1, x2: x1, y1: y0, y2: y1 }));
      const name = result.metric_name || "metric";
      rightAxis.appendChild(
        svg("text", { class: "axis-label", x: W - 14, y: (y0 + y1) / 2, "text-anchor": "middle", transform: "rotate(90 " + (W - 14) + " " + (y0 + y1) / 2 + ")" }, "held-out " + name)
      );
      root.appendChild(rightAxis);
      const pts = metricPoints.map((h) => [sx(h.step), sm(h.metric)]);
      root.appendChild(svg("path", { class: "series-metric", d: pathFrom(pts) }));
      for (const [x, y] of pts) root.appendChild(svg("circle", { class: "marker-metric", cx: x, cy: y, r: 2.5 }));
      legend.push(["series-metric", "held-out " + name + " (right axis)", true]);
    }

    if (result.diverged) {
      let last = 0;
      train.forEach((v, i) => {
        if (finite(v)) last = i + 1;
      });
      if (finite(result.diverged_at)) last = Math.min(result.diverged_at, xMax);
      const x = sx(Math.max(last, 0));
      root.appendChild(svg("line", { class: "diverged-mark", x1: x, x2: x, y1: y0, y2: y1 }));
      root.appendChild(svg("text", { class: "diverged-text", x: Math.min(x + 4, x1 - 60), y: y1 + 12 }, "diverged"));
    }

    // legend, above the plot area
    const legendG = svg("g", { class: "legend" });
    let lx = x0;
    for (const [cls, label, marker] of legend) {
      legendG.appendChild(svg("line", { class: cls, x1: lx, x2: lx + 22, y1: 18, y2: 18 }));
      if (marker) legendG.appendChild(svg("circle", { class: cls.replace("series", "marker"), cx: lx + 11, cy: 18, r: 3 }));
      legendG.appendChild(svg("text", { class: "legend-text", x: lx + 28, y: 22 }, label));
      lx += 40 + label.length * 6.6;
    }
    root.appendChild(legendG);
    return root;
  }

  function logTicks(lo, hi) {
    const ticks = [];
    for (let e = Math.round(Math.log10(lo)); e <= Math.round(Math.log10(hi)); e += 1) ticks.push(Math.pow(10, e));
    return ticks;
  }

  // ------------------------------------------------------------------ start
  function init() {
    try {
      state.apiKey = sessionStorage.getItem(KEY_STORAGE) || "";
    } catch (_e) {
      state.apiKey = "";
    }
    if (state.apiKey) {
      $("api-key").value = state.apiKey;
      show($("api-key-section"), true);
    }
    $("api-key").addEventListener("change", () => {
      state.apiKey = $("api-key").value.trim();
    });
    $("api-key-section").addEventListener("submit", (event) => {
      event.preventDefault();
      state.apiKey = $("api-key").value.trim();
      startTrial();
    });
    $("profile-form").addEventListener("submit", onSubmit);
    $("profile-form").addEventListener("reset", () =>
      setTimeout(() => {
        clearErrors();
        clearResult();
      }, 0)
    );
    $("trial-button").addEventListener("click", startTrial);
    $("trial-cancel").addEventListener("click", cancelTrial);
    loadFields();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
