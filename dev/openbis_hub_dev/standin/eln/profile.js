// The ELN's profile settings (InstanceProfile.js). `openbis-hub demo` serves its own
// profile.js in place of this file; with this default the Jupyter entries stay hidden,
// as in an ELN whose administrator has not configured a hub.
window.profile = {
  jupyterIntegrationServerEndpoint: null,
  jupyterEndpoint: null,
  demoUsers: [],
  openbisLabel: "openBIS stand-in"
};
