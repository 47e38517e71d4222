// The ELN-like page: log in, browse the demo entities, "More..." -> "New Jupyter notebook".
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
      sessionStorage.setItem("openbis-session", openbis.getSession());
      sessionStorage.setItem("openbis-user", openbis.getUserId());
      await showApp();
    } catch (e) {
      $("login-error").textContent = e.message;
    } finally {
      $("login-button").disabled = false;
    }
  }

  async function onLogout() {
    stopPolling();
    sessionStorage.removeItem("openbis-session");
    sessionStorage.removeItem("openbis-user");
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
        el("td", {}, el("code", {}, code)),
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
    $("jn-datasets").replaceChildren(...state.datasets.map(ds => {
      const code = ds.code || permIdOf(ds);
      const label = code + (nameOf(ds) ? ` (${nameOf(ds)})` : "") + (ds.type ? ` [${ds.type.code}]` : "");
      const option = el("option", { value: code }, label);
      option.selected = preselected.has(code);
      return option;
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
    const datasets = Array.from($("jn-datasets").selectedOptions).map(o => {
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
    $("jupyter-workspace").addEventListener("click", e => {
      e.preventDefault();
      window.open(JupyterUtil.getJupyterURL(), "_blank");
    });
    $("jupyter-new").addEventListener("click", e => { e.preventDefault(); openDialog(false); });
    document.addEventListener("click", e => {
      if (!e.target.closest(".more")) document.querySelectorAll(".more-menu").forEach(m => { m.hidden = true; });
    });
    const saved = sessionStorage.getItem("openbis-session");
    if (saved) {
      openbis.session = saved;
      openbis.userId = sessionStorage.getItem("openbis-user");
      try {
        if (await openbis.isSessionActive()) { await showApp(); return; }
      } catch (e) { /* log in again */ }
    }
    showLogin();
  }

  start();
})();
