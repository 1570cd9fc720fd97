// The Socket.IO tab of /docs: the AsyncAPI React component (vendored standalone bundle, see
// vendor/README.md) on /asyncapi.json, fetched from this origin only.
"use strict";

AsyncApiStandalone.render({
  schema: { url: "/asyncapi.json", requestOptions: { credentials: "same-origin" } },
  config: {
    show: { sidebar: true, info: true, servers: true, operations: true, messages: true,
            schemas: true, errors: true },
    expand: { messageExamples: false },
  },
}, document.getElementById("asyncapi"));
