// The ELN-like page: log in, browse the demo entities, "More..." -> "New Jupyter notebook", a dataset's
// files with "Use Jupyter Notebook as Template" on each .ipynb. The ELN's own links open here too:
// ?menuUniqueId=null&viewName=showViewDataSetPageFromPermId&viewData=<permId> (and the Sample and
// Experiment views), as the link after "Save to openBIS" does.
"use strict";

(function () {
  const $ = id => document.getElementById(id);
  const profile = window.profile || {};
  const jupyterEnabled = Boolean(profile.jupyterIntegrationServerEndpoint);
  const state = { experiments: [], samples: [], datasets: [], current: null, known: new Set(), timer: null };

  const permIdOf = e => (e && e.permId && (e.permId.permId || e.permId)) || "";
  const identifierOf = e => (e && e.identifier && (e.identifier.identifier || e.identifier)) || "";
  const nameOf = e => (e && e.properties && (e.properties["$NAME"] || e.properties.NAME)) || "";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined) node.setAttribute(k, v);
    }
    for (const c of children.flat(Infinity)) {
      if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  // ------------------------------------------------------------------ login
  function showLogin(message) {
    $("app-view").hidden = true;
    $("who").hidden = true;
    $("logout").hidden = true;
    $("login-view").hidden = false;
    $("login-error").textContent = message || "";
    $("openbis-label").textContent = profile.openbisLabel || "";
    const users = profile.demoUsers || [];
    $("demo-users").hidden = users.length === 0;
    const list = $("demo-users").querySelector("ul");
    list.replaceChildren(...users.map(u => el("li", {},
      el("a", { onclick: () => { $("user").value = u.user; $("password").value = u.password; } },
        `${u.user} / ${u.password}`))));
  }

  async function onLogin(event) {
    event.preventDefault();
    $("login-button").disabled = true;
    $("login-error").textContent = "";
    try {
      await openbis.login($("user").value.trim(), $("password").value);
      localStorage.setItem("openbis-session", openbis.getSession());
      localStorage.setItem("openbis-user", openbis.getUserId());
      await showApp();
    } catch (e) {
      $("login-error").textContent = e.message;
    } finally {
      $("login-button").disabled = false;
    }
  }

  async function onLogout() {
    stopPolling();
    localStorage.removeItem("openbis-session");
    localStorage.removeItem("openbis-user");
    await openbis.logout();
    showLogin();
  }

  // ------------------------------------------------------------------ tree
  async function showApp() {
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    $("who").hidden = false;
    $("who").textContent = "Logged in as " + openbis.getUserId();
    $("logout").hidden = false;
    $("jupyter-workspace").hidden = !profile.jupyterEndpoint;
    $("jupyter-new").hidden = !jupyterEnabled;
    [state.experiments, state.samples] = await Promise.all([openbis.experiments(), openbis.samples()]);
    renderTree();
    await openFromUrl();
  }

  // the ELN's links: ?menuUniqueId=null&viewName=<view>&viewData=<permId>
  async function openFromUrl() {
    const query = new URLSearchParams(window.location.search);
    const view = query.get("viewName");
    const permId = query.get("viewData");
    if (!view || !permId) return;
    if (view === "showViewDataSetPageFromPermId") {
      await openDataset(permId);
      return;
    }
    const kind = { showViewSamplePageFromPermId: "sample", showViewExperimentPageFromPermId: "experiment" }[view];
    const entity = (kind === "sample" ? state.samples : state.experiments).find(e => permIdOf(e) === permId);
    if (entity) await openEntity(kind, entity);
    else $("entity").replaceChildren(el("p", { class: "error" }, `No ${kind || "entity"} ${permId} here.`));
  }

  function setUrl(view, permId) {
    const url = `${window.location.pathname}?menuUniqueId=null&viewName=${view}&viewData=${encodeURIComponent(permId)}`;
    if (window.location.pathname + window.location.search !== url) window.history.replaceState(null, "", url);
  }

  // a note that stays on the page after the dialog closes (e.g. the name a notebook got)
  function showNotice(text) {
    const notice = $("notice");
    notice.replaceChildren(el("span", {}, text),
      el("button", { type: "button", class: "link", onclick: () => { notice.hidden = true; } }, "dismiss"));
    notice.hidden = false;
  }

  function renderTree() {
    const spaces = new Map();
    const spaceNode = code => {
      if (!spaces.has(code)) spaces.set(code, { projects: new Map(), samples: [] });
      return spaces.get(code);
    };
    for (const exp of state.experiments) {
      const parts = identifierOf(exp).split("/");  // /SPACE/PROJECT/CODE
      const space = spaceNode(parts[1]);
      if (!space.projects.has(parts[2])) space.projects.set(parts[2], []);
      space.projects.get(parts[2]).push(exp);
    }
    for (const sample of state.samples) {
      if (!sample.experiment) spaceNode(identifierOf(sample).split("/")[1]).samples.push(sample);
    }
    const samplesOf = exp => state.samples.filter(s => s.experiment && permIdOf(s.experiment) === permIdOf(exp));
    const item = (kind, entity) => el("li", {},
      el("a", {
        "data-permid": permIdOf(entity), "data-kind": kind,
        onclick: () => openEntity(kind, entity),
      }, el("span", { class: "kind" }, kind === "experiment" ? "Collection" : "Object"), entity.code));
    const tree = [];
    for (const [spaceCode, space] of spaces) {
      const projects = [];
      for (const [projectCode, exps] of space.projects) {
        projects.push(el("li", {}, el("span", { class: "kind" }, "Project"), projectCode,
          el("ul", {}, exps.map(exp => [
            item("experiment", exp),
            el("li", {}, el("ul", {}, samplesOf(exp).map(s => item("sample", s)))),
          ]))));
      }
      tree.push(el("li", {}, el("span", { class: "kind" }, "Space"), spaceCode,
        el("ul", {}, projects, space.samples.map(s => item("sample", s)))));
    }
    $("tree").replaceChildren(...tree);
  }

  // ------------------------------------------------------------------ entity form
  async function openEntity(kind, entity) {
    stopPolling();
    setUrl(kind === "experiment" ? "showViewExperimentPageFromPermId" : "showViewSamplePageFromPermId", permIdOf(entity));
    state.current = { kind: kind, entity: entity };
    state.known = new Set();
    document.querySelectorAll(".tree a.selected").forEach(a => a.classList.remove("selected"));
    const link = document.querySelector(`.tree a[data-permid="${permIdOf(entity)}"]`);
    if (link) link.classList.add("selected");

    const menu = el("ul", { class: "more-menu", hidden: "" });
    if (jupyterEnabled) {
      menu.append(el("li", {}, el("a", { id: "new-jupyter-notebook", onclick: () => { menu.hidden = true; openDialog(true); } },
        "New Jupyter notebook")));
    } else {
      menu.append(el("li", {}, el("a", { class: "muted" }, "(no Jupyter endpoint in the profile)")));
    }
    const more = el("div", { class: "more" },
      el("button", { id: "more-button", type: "button", onclick: () => { menu.hidden = !menu.hidden; } }, "More..."), menu);
    const props = Object.entries(entity.properties || {});
    $("entity").replaceChildren(
      el("div", { class: "entity-header" },
        el("h1", {}, (kind === "experiment" ? "Collection: " : "Object: ") + entity.code), more),
      el("dl", { class: "props" },
        el("dt", {}, "Identifier"), el("dd", {}, el("code", {}, identifierOf(entity))),
        el("dt", {}, "PermId"), el("dd", {}, el("code", {}, permIdOf(entity))),
        props.map(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))])),
      el("h2", {}, "Datasets",
        el("button", { type: "button", id: "refresh-datasets", class: "link", onclick: () => refreshDatasets() }, "refresh"),
        el("span", { class: "refresh-note", id: "refresh-note" }, "")),
      el("table", { id: "datasets" },
        el("thead", {}, el("tr", {}, ["Code", "Type", "Name", "Parents", "Registered"].map(h => el("th", {}, h)))),
        el("tbody", {})),
    );
    await refreshDatasets(true);
    // the new dataset saved from the notebook shows up here without a reload
    state.timer = setInterval(() => refreshDatasets().catch(() => {}), 3000);
  }

  function stopPolling() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
  }

  async function refreshDatasets(first) {
    const current = state.current;
    if (!current) return;
    let datasets;
    try {
      datasets = await openbis.datasetsOf(current.kind, permIdOf(current.entity));
    } catch (e) {
      if (/session/i.test(e.message)) { stopPolling(); showLogin("Your openBIS session ended; log in again."); }
      return;
    }
    if (state.current !== current) return;
    datasets.sort((a, b) => (a.registrationDate || 0) - (b.registrationDate || 0));
    const rows = datasets.map(ds => {
      const code = ds.code || permIdOf(ds);
      const isNew = !first && !state.known.has(code);
      return el("tr", { class: isNew ? "new" : null, "data-permid": code },
        el("td", {}, el("a", { class: "dataset-link", href: "#", onclick: e => { e.preventDefault(); openDataset(code); } },
          el("code", {}, code))),
        el("td", {}, (ds.type && ds.type.code) || ""),
        el("td", {}, nameOf(ds)),
        el("td", {}, (ds.parents || []).map(p => permIdOf(p)).join(", ")),
        el("td", {}, ds.registrationDate ? new Date(ds.registrationDate).toLocaleString() : ""));
    });
    datasets.forEach(ds => state.known.add(ds.code || permIdOf(ds)));
    const body = document.querySelector("#datasets tbody");
    if (body) body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No datasets yet."))]));
    const note = $("refresh-note");
    if (note) note.textContent = "updated " + new Date().toLocaleTimeString();
  }

  // ------------------------------------------------------------------ dataset view
  async function openDataset(permId) {
    stopPolling();
    state.current = null;
    setUrl("showViewDataSetPageFromPermId", permId);
    document.querySelectorAll(".tree a.selected").forEach(a => a.classList.remove("selected"));
    const ds = await openbis.dataset(permId);
    if (!ds) {
      $("entity").replaceChildren(el("p", { class: "error", id: "dataset-missing" }, `No dataset ${permId} here.`));
      return;
    }
    const code = ds.code || permIdOf(ds);
    const ownerKind = ds.sample ? "sample" : "experiment";
    const owner = ds.sample || ds.experiment;
    const ownerEntity = (ownerKind === "sample" ? state.samples : state.experiments)
      .find(e => permIdOf(e) === permIdOf(owner));
    const files = (await openbis.files(permId)).filter(f => !f.directory);
    const props = Object.entries(ds.properties || {});
    $("entity").replaceChildren(
      el("div", { class: "entity-header" }, el("h1", { id: "dataset-title" }, "Dataset: " + code)),
      el("dl", { class: "props" },
        el("dt", {}, "Type"), el("dd", {}, (ds.type && ds.type.code) || ""),
        el("dt", {}, ownerKind === "sample" ? "Object" : "Collection"),
        el("dd", {}, ownerEntity
          ? el("a", { href: "#", onclick: e => { e.preventDefault(); openEntity(ownerKind, ownerEntity); } },
            identifierOf(ownerEntity))
          : permIdOf(owner)),
        el("dt", {}, "Parents"),
        el("dd", {}, (ds.parents || []).map(p => permIdOf(p)).join(", ") || "none"),
        props.map(([k, v]) => [el("dt", {}, k), el("dd", { "data-property": k }, String(v))])),
      el("h2", {}, "Files"),
      el("table", { id: "files" },
        el("thead", {}, el("tr", {}, ["File", "Size", ""].map(h => el("th", {}, h)))),
        el("tbody", {}, files.map(f => el("tr", { "data-path": f.path },
          el("td", {}, el("code", {}, f.path)),
          el("td", {}, String(f.fileLength)),
          el("td", {}, f.path.endsWith(".ipynb") && jupyterEnabled
            ? el("button", { type: "button", class: "jupyter-template", title: "Use Jupyter Notebook as Template",
              onclick: () => openTemplateDialog(code, f.path) }, "Jupyter")
            : ""))))),
    );
  }

  // "Use Jupyter Notebook as Template" (the ELN's JupyterCopyNotebookView)
  function openTemplateDialog(datasetCode, path) {
    const dialog = $("jupyter-template-dialog");
    dialog.dataset.dataset = datasetCode;
    dialog.dataset.path = path;
    $("jt-source").textContent = `${datasetCode}/${path}`;
    $("jt-error").textContent = "";
    $("jt-progress").hidden = true;
    $("jt-open").hidden = true;
    $("jt-keep-history").checked = false;
    $("jt-folder").value = "notebooks";
    $("jt-name").value = path.split("/").pop().replace(/\.ipynb$/, "") + " copy";
    dialog.showModal();
  }

  async function onTemplateAccept() {
    const dialog = $("jupyter-template-dialog");
    const folder = $("jt-folder").value.trim();
    const name = $("jt-name").value.trim();
    if (!folder || !name) {
      $("jt-error").textContent = "Give a directory name and a notebook name.";
      return;
    }
    $("jt-error").textContent = "";
    $("jt-accept").disabled = true;
    $("jt-progress").hidden = false;
    $("jt-progress").textContent = "Starting your Jupyter server ...";
    try {
      const url = await openbis.downloadUrl(dialog.dataset.dataset, dialog.dataset.path);
      const result = await JupyterUtil.openJupyterNotebookFromTemplate(folder, name, url, dialog.dataset.dataset,
        $("jt-keep-history").checked, p => { if (p === "write") $("jt-progress").textContent = "Writing the notebook ..."; });
      noteTakenName(folder, result);
      if (result.opened) {
        dialog.close();
      } else {
        const open = $("jt-open");
        open.querySelector("a").href = result.url;
        open.hidden = false;
      }
    } catch (e) {
      $("jt-error").textContent = e.message;
    } finally {
      $("jt-progress").hidden = true;
      $("jt-accept").disabled = false;
    }
  }

  // the real ELN cannot say it (the notebook's first cell does); this page can
  function noteTakenName(folder, result) {
    if (result.fileName !== result.requested) {
      showNotice(`"${result.requested}" was taken in "${folder}", so your new notebook is "${result.fileName}".`);
    }
  }

  // ------------------------------------------------------------------ the dialog
  function ownerOf(ds) {
    if (ds.sample) return { object: permIdOf(ds.sample) };
    if (ds.experiment) return { experiment: permIdOf(ds.experiment) };
    return {};
  }

  async function openDialog(forEntity) {
    const dialog = $("jupyter-dialog");
    $("jn-error").textContent = "";
    $("jn-progress").hidden = true;
    $("jn-open").hidden = true;
    setBusy(false);
    state.datasets = await openbis.allDatasets();
    const current = forEntity ? state.current : null;
    const preselected = new Set();
    if (current) {
      // Object and Experiment forms preselect the entity's datasets
      const mine = await openbis.datasetsOf(current.kind, permIdOf(current.entity));
      mine.forEach(ds => preselected.add(ds.code || permIdOf(ds)));
    }
    // one checkbox per dataset: the whole label shows, wrapped if long (a list box cuts it off)
    $("jn-datasets").replaceChildren(...state.datasets.map(ds => {
      const code = ds.code || permIdOf(ds);
      const label = code + (nameOf(ds) ? ` (${nameOf(ds)})` : "") + (ds.type ? ` [${ds.type.code}]` : "");
      const box = el("input", { type: "checkbox", value: code });
      box.checked = preselected.has(code);
      return el("label", { class: "check" }, box, el("span", {}, label));
    }));
    const owners = [
      ...state.experiments.map(e => ({ kind: "experiment", entity: e, label: "Collection " + identifierOf(e) })),
      ...state.samples.map(s => ({ kind: "sample", entity: s, label: "Object " + identifierOf(s) })),
    ];
    $("jn-owner").replaceChildren(el("option", { value: "" }, "(choose one)"), ...owners.map(o => {
      const option = el("option", { value: o.kind + ":" + identifierOf(o.entity) }, o.label);
      option.selected = Boolean(current && permIdOf(current.entity) === permIdOf(o.entity));
      return option;
    }));
    $("jn-folder").value = current ? current.entity.code : "notebooks";
    $("jn-name").value = "analysis";
    dialog.showModal();
  }

  function dialogValues() {
    const datasets = Array.from($("jn-datasets").querySelectorAll("input:checked")).map(o => {
      const ds = state.datasets.find(d => (d.code || permIdOf(d)) === o.value);
      return { permId: o.value, owner: ownerOf(ds) };
    });
    const ownerValue = $("jn-owner").value;
    if (!ownerValue) throw new Error("Choose an owner (a collection or an object).");
    const [kind, identifier] = [ownerValue.slice(0, ownerValue.indexOf(":")), ownerValue.slice(ownerValue.indexOf(":") + 1)];
    const owner = kind === "sample" ? { object: identifier } : { experiment: identifier };
    const folder = $("jn-folder").value.trim();
    const name = $("jn-name").value.trim();
    if (!name) throw new Error("Give the notebook a name.");
    return { datasets, owner, folder, name };
  }

  function setBusy(busy) {
    ["jn-connect", "jn-download"].forEach(id => { $(id).disabled = busy; });
  }

  async function onConnect() {
    let values;
    try {
      values = dialogValues();
      if (!values.folder) throw new Error("Give a directory name.");
    } catch (e) {
      $("jn-error").textContent = e.message;
      return;
    }
    $("jn-error").textContent = "";
    setBusy(true);
    const progress = $("jn-progress");
    const t0 = Date.now();
    let phase = "";
    const tick = () => {
      const seconds = Math.round((Date.now() - t0) / 1000);
      progress.textContent = phase === "write"
        ? "Writing the notebook ..."
        : `Starting your Jupyter server (this takes a few seconds the first time) ... ${seconds}s`;
    };
    const timer = setInterval(tick, 500);
    progress.hidden = false;
    try {
      const result = await JupyterUtil.createJupyterNotebookAndOpen(values.folder, values.name, values.datasets,
        values.owner, p => { phase = p; tick(); });
      noteTakenName(values.folder, result);
      if (result.opened) {
        $("jupyter-dialog").close();
      } else {
        const open = $("jn-open");
        open.querySelector("a").href = result.url;
        open.hidden = false;
      }
    } catch (e) {
      $("jn-error").textContent = e.message;
    } finally {
      clearInterval(timer);
      progress.hidden = true;
      setBusy(false);
    }
  }

  function onDownload() {
    try {
      const values = dialogValues();
      JupyterUtil.downloadNotebook(values.datasets, values.owner, values.name);
      $("jupyter-dialog").close();
    } catch (e) {
      $("jn-error").textContent = e.message;
    }
  }

  // ------------------------------------------------------------------ start
  async function start() {
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    $("jn-connect").addEventListener("click", onConnect);
    $("jn-download").addEventListener("click", onDownload);
    $("jn-cancel").addEventListener("click", () => $("jupyter-dialog").close());
    $("jt-accept").addEventListener("click", onTemplateAccept);
    $("jt-cancel").addEventListener("click", () => $("jupyter-template-dialog").close());
    $("jupyter-workspace").addEventListener("click", e => {
      e.preventDefault();
      window.open(JupyterUtil.getJupyterURL(), "_blank");
    });
    $("jupyter-new").addEventListener("click", e => { e.preventDefault(); openDialog(false); });
    document.addEventListener("click", e => {
      if (!e.target.closest(".more")) document.querySelectorAll(".more-menu").forEach(m => { m.hidden = true; });
    });
    // kept for every tab, as the ELN's session cookie is: a link from a notebook opens logged in
    const saved = localStorage.getItem("openbis-session");
    if (saved) {
      openbis.session = saved;
      openbis.userId = localStorage.getItem("openbis-user");
      try {
        if (await openbis.isSessionActive()) { await showApp(); return; }
      } catch (e) { /* log in again */ }
    }
    showLogin();
  }

  start();
})();
