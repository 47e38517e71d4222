// A very small openBIS V3 JSON-RPC client (the real ELN uses openbis.js / the V3 facade).
// The page is served from openBIS's own origin, so the API is same-origin.
"use strict";

(function () {
  const AS_URL = "/openbis/openbis/rmi-application-server-v3.json";
  const DSS_URL = "/datastore_server/rmi-data-store-server-v3.json";
  let rpcId = 0;

  // openBIS answers with Jackson object ids: an object seen before comes back as its
  // number (@id). Put the objects back in place.
  function resolveRefs(root) {
    const byId = new Map();
    (function collect(v) {
      if (Array.isArray(v)) { v.forEach(collect); return; }
      if (v && typeof v === "object") {
        if (typeof v["@id"] === "number") byId.set(v["@id"], v);
        Object.values(v).forEach(collect);
      }
    })(root);
    const refFields = new Set(["experiment", "sample", "type", "project", "space", "permId",
      "identifier", "dataStore", "registrator", "parents", "children"]);
    (function fix(v) {
      if (Array.isArray(v)) { v.forEach(fix); return; }
      if (v && typeof v === "object") {
        for (const [k, x] of Object.entries(v)) {
          if (refFields.has(k) && typeof x === "number" && byId.has(x)) v[k] = byId.get(x);
          else if (Array.isArray(x) && refFields.has(k)) {
            v[k] = x.map(e => (typeof e === "number" && byId.has(e)) ? byId.get(e) : e);
          }
          fix(v[k]);
        }
      }
    })(root);
    return root;
  }

  async function call(method, params, url) {
    const response = await fetch(url || AS_URL, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: String(++rpcId), method: method, params: params }),
    });
    let answer;
    try {
      answer = await response.json();
    } catch (e) {
      throw new Error(`openBIS answered ${response.status} to ${method}`);
    }
    if (answer.error) {
      const message = (answer.error.data && answer.error.data.message) || answer.error.message;
      throw new Error(message || JSON.stringify(answer.error));
    }
    return resolveRefs(answer.result);
  }

  const fo = (kind, extra) => Object.assign({ "@type": `as.dto.${kind}` }, extra || {});

  function permIdCriteria(kind, permId) {
    return {
      "@type": `as.dto.${kind}.search.${kind === "dataset" ? "DataSet" : kind[0].toUpperCase() + kind.slice(1)}SearchCriteria`,
      operator: "AND",
      criteria: [{
        "@type": "as.dto.common.search.PermIdSearchCriteria",
        fieldValue: { "@type": "as.dto.common.search.StringEqualToValue", value: permId },
      }],
    };
  }

  const datasetFetch = () => fo("dataset.fetchoptions.DataSetFetchOptions", {
    type: fo("dataset.fetchoptions.DataSetTypeFetchOptions"),
    experiment: fo("experiment.fetchoptions.ExperimentFetchOptions"),
    sample: fo("sample.fetchoptions.SampleFetchOptions"),
    properties: fo("property.fetchoptions.PropertyFetchOptions"),
    parents: fo("dataset.fetchoptions.DataSetFetchOptions"),
  });

  window.openbis = {
    session: null,
    userId: null,

    async login(user, password) {
      const token = await call("login", [user, password]);
      if (!token) throw new Error("Wrong user name or password.");
      this.session = token;
      try {
        const info = await call("getSessionInformation", [token]);
        this.userId = (info && info.userName) || null;
      } catch (e) {
        this.userId = null;
      }
      // ServerFacade.getUserId(): the session's user name, else the token up to its last "-"
      if (!this.userId) this.userId = token.substring(0, token.lastIndexOf("-"));
      return token;
    },

    async logout() {
      if (this.session) {
        try { await call("logout", [this.session]); } catch (e) { /* already gone */ }
      }
      this.session = null;
      this.userId = null;
    },

    getSession() { return this.session; },
    getUserId() { return this.userId; },

    async isSessionActive() {
      return this.session ? Boolean(await call("isSessionActive", [this.session])) : false;
    },

    async experiments() {
      const result = await call("searchExperiments", [this.session,
        { "@type": "as.dto.experiment.search.ExperimentSearchCriteria", operator: "AND", criteria: [] },
        fo("experiment.fetchoptions.ExperimentFetchOptions", {
          type: fo("experiment.fetchoptions.ExperimentTypeFetchOptions"),
          project: fo("project.fetchoptions.ProjectFetchOptions", { space: fo("space.fetchoptions.SpaceFetchOptions") }),
          properties: fo("property.fetchoptions.PropertyFetchOptions"),
        })]);
      return result.objects;
    },

    async samples() {
      const result = await call("searchSamples", [this.session,
        { "@type": "as.dto.sample.search.SampleSearchCriteria", operator: "AND", criteria: [] },
        fo("sample.fetchoptions.SampleFetchOptions", {
          type: fo("sample.fetchoptions.SampleTypeFetchOptions"),
          experiment: fo("experiment.fetchoptions.ExperimentFetchOptions"),
          space: fo("space.fetchoptions.SpaceFetchOptions"),
          properties: fo("property.fetchoptions.PropertyFetchOptions"),
        })]);
      return result.objects;
    },

    async allDatasets() {
      const result = await call("searchDataSets", [this.session,
        { "@type": "as.dto.dataset.search.DataSetSearchCriteria", operator: "AND", criteria: [] },
        datasetFetch()]);
      return result.objects;
    },

    async dataset(permId) {
      const result = await call("searchDataSets", [this.session, permIdCriteria("dataset", permId), datasetFetch()]);
      return result.objects[0] || null;
    },

    // the files of a dataset, from the data store server (DSS searchFiles)
    async files(permId) {
      const result = await call("searchFiles", [this.session, {
        "@type": "dss.dto.datasetfile.search.DataSetFileSearchCriteria",
        operator: "AND",
        criteria: [permIdCriteria("dataset", permId)],
      }, { "@type": "dss.dto.datasetfile.fetchoptions.DataSetFileFetchOptions" }], DSS_URL);
      return result.objects;
    },

    // the ELN's file link: <data store downloadUrl>/datastore_server/<code>/<path>?sessionID=<session>
    async downloadUrl(permId, path) {
      const result = await call("searchDataStores", [this.session,
        { "@type": "as.dto.datastore.search.DataStoreSearchCriteria", operator: "AND", criteria: [] },
        fo("datastore.fetchoptions.DataStoreFetchOptions")]);
      const store = result.objects[0] || {};
      const base = store.downloadUrl || window.location.origin;
      return base + "/datastore_server/" + permId + "/" + path.split("/").map(encodeURIComponent).join("/")
        + "?sessionID=" + this.session;
    },

    // the datasets of an experiment (collection) or a sample (object)
    async datasetsOf(kind, permId) {
      const criteria = {
        "@type": "as.dto.dataset.search.DataSetSearchCriteria",
        operator: "AND",
        criteria: [permIdCriteria(kind, permId)],
      };
      const result = await call("searchDataSets", [this.session, criteria, datasetFetch()]);
      return result.objects;
    },
  };
})();
