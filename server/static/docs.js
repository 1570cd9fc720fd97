// Hubbub API docs: renders /openapi.json with no dependencies and no network beyond this origin.
"use strict";

(function () {
  const TOKEN_KEY = "hubbub.docs.token";
  const MAX_DEPTH = 6;
  let spec = null;

  // Build a DOM node: h("div", {class: "x"}, "text", child, [more]).
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Text with `code` spans, the only markup our descriptions use.
  function prose(text) {
    return String(text).split("`").map((part, i) => (i % 2 ? h("code", {}, part) : part));
  }

  function refName(ref) {
    return ref.split("/").pop();
  }

  function resolve(schema) {
    let seen = 0;
    while (schema && schema.$ref && seen++ < 20) {
      schema = (spec.components.schemas || {})[refName(schema.$ref)] || {};
    }
    return schema || {};
  }

  // A one-line type label: "string", "integer | null", "array of UserSummary", "Page[Post]".
  function typeLabel(schema) {
    if (!schema) return "any";
    if (schema.$ref) {
      const target = resolve(schema);
      return target.title || refName(schema.$ref);
    }
    const union = schema.anyOf || schema.oneOf;
    if (union) return union.map(typeLabel).join(" | ");
    if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
    if ("const" in schema) return JSON.stringify(schema.const);
    const type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
    if (type === "array") return "array of " + typeLabel(schema.items);
    if (type === "object" && schema.additionalProperties && !schema.properties) {
      return "map of " + typeLabel(schema.additionalProperties);
    }
    if (schema.format) return (type || "any") + " (" + schema.format + ")";
    return type || (schema.title ? schema.title : "any");
  }

  function constraints(schema) {
    const parts = [];
    const add = (key, label) => { if (key in schema) parts.push(label + " " + JSON.stringify(schema[key])); };
    add("minimum", ">="); add("maximum", "<="); add("exclusiveMinimum", ">"); add("exclusiveMaximum", "<");
    add("minLength", "min length"); add("maxLength", "max length");
    add("minItems", "min items"); add("maxItems", "max items");
    add("pattern", "pattern"); add("default", "default");
    return parts.join(", ");
  }

  // The object behind a schema whose properties deserve a nested list, if any.
  function nestedObject(schema) {
    if (!schema) return null;
    const union = schema.anyOf || schema.oneOf;
    if (union) {
      const objects = union.map(nestedObject).filter(Boolean);
      return objects.length === 1 ? objects[0] : null;
    }
    if (schema.$ref) return nestedObject(resolve(schema));
    if (schema.type === "array") return nestedObject(schema.items);
    if (schema.properties) return schema;
    return null;
  }

  function renderProps(schema, depth, seen) {
    const object = nestedObject(schema);
    if (!object || depth > MAX_DEPTH || seen.has(object)) return null;
    const inner = new Set(seen).add(object);
    const required = new Set(object.required || []);
    return h("ul", { class: "props" },
      Object.entries(object.properties).map(([name, prop]) => {
        const leaf = prop.$ref ? resolve(prop) : prop;
        return h("li", {},
          h("span", { class: "prop-name" }, name), " ",
          h("span", { class: "type" }, typeLabel(prop)),
          required.has(name) ? h("span", { class: "req" }, "required") : null,
          constraints(prop) ? h("span", { class: "constraint" }, constraints(prop)) : null,
          leaf.description && !prop.$ref ? h("div", { class: "desc" }, prose(leaf.description)) : null,
          renderProps(prop, depth + 1, inner));
      }));
  }

  function renderSchema(schema) {
    const target = resolve(schema);
    return h("div", {},
      h("span", { class: "type" }, typeLabel(schema)),
      target.description ? h("div", { class: "desc" }, prose(target.description)) : null,
      renderProps(schema, 0, new Set()));
  }

  // A plausible example value for a request body, from its schema.
  function example(schema, depth) {
    schema = resolve(schema);
    if (depth > MAX_DEPTH) return null;
    if ("default" in schema) return schema.default;
    if (schema.examples && schema.examples.length) return schema.examples[0];
    if (schema.enum) return schema.enum[0];
    if ("const" in schema) return schema.const;
    const union = schema.anyOf || schema.oneOf;
    if (union) return example(union.find((s) => s.type !== "null") || union[0], depth + 1);
    const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
    switch (type) {
      case "object": {
        const out = {};
        for (const [name, prop] of Object.entries(schema.properties || {})) {
          out[name] = example(prop, depth + 1);
        }
        return out;
      }
      case "array": return [example(schema.items || {}, depth + 1)];
      case "integer": return schema.minimum !== undefined ? schema.minimum : 0;
      case "number": return schema.minimum !== undefined ? schema.minimum : 0;
      case "boolean": return false;
      case "null": return null;
      case "string":
        if (schema.format === "date-time") return new Date().toISOString();
        if (schema.format === "email") return "someone@example.com";
        return (schema.minLength || 0) > 6 ? "x".repeat(schema.minLength) : "string";
      default: return null;
    }
  }

  function jsonContent(content) {
    if (!content) return null;
    const type = Object.keys(content).find((t) => t.includes("json")) || Object.keys(content)[0];
    return type ? { type, schema: content[type].schema } : null;
  }

  function renderParameters(parameters) {
    return h("table", { class: "params" },
      h("tr", {}, h("th", {}, "name"), h("th", {}, "in"), h("th", {}, "type"), h("th", {}, "")),
      parameters.map((p) => h("tr", {},
        h("td", {}, h("span", { class: "prop-name" }, p.name),
          p.required ? h("span", { class: "req" }, "required") : null),
        h("td", { class: "muted" }, p.in),
        h("td", {}, h("span", { class: "type" }, typeLabel(p.schema))),
        h("td", { class: "desc" }, [constraints(p.schema || {}), p.description].filter(Boolean).join(" - ")))));
  }

  function renderResponses(responses) {
    const ok = [];
    const errors = [];
    for (const [status, response] of Object.entries(responses)) {
      (status.startsWith("2") || status.startsWith("3") ? ok : errors).push([status, response]);
    }
    return h("div", {},
      ok.map(([status, response]) => {
        const body = jsonContent(response.content);
        return h("div", { class: "response" },
          h("span", { class: "status ok" }, status),
          h("span", { class: "muted" }, response.description || ""),
          body ? renderSchema(body.schema) : null);
      }),
      errors.length ? h("div", { class: "errors" },
        errors.map(([status, response]) => h("span", { class: "badge", title: "application/problem+json" },
          h("span", { class: "status err" }, status), response.description || ""))) : null);
  }

  function tryIt(path, method, op) {
    const parameters = op.parameters || [];
    const inputs = new Map();
    const fields = parameters.map((p) => {
      const input = h("input", {
        placeholder: p.in === "query" ? typeLabel(p.schema) + (p.required ? "" : " (optional)") : p.name,
        "aria-label": p.name,
      });
      inputs.set(p, input);
      return h("label", {}, h("span", {}, p.in === "path" ? "{" + p.name + "}" : "?" + p.name), input);
    });
    const body = op.requestBody ? jsonContent(op.requestBody.content) : null;
    const textarea = body && body.type.includes("json")
      ? h("textarea", { spellcheck: "false", "aria-label": "request body" },
        JSON.stringify(example(body.schema, 0), null, 2))
      : null;
    const out = h("pre", { class: "out hidden" });
    const curl = h("div", { class: "curl mono hidden" });
    const button = h("button", { type: "button" }, "Send");

    button.addEventListener("click", async () => {
      let url = path;
      const query = new URLSearchParams();
      for (const [p, input] of inputs) {
        const value = input.value.trim();
        if (p.in === "path") url = url.replace("{" + p.name + "}", encodeURIComponent(value));
        else if (p.in === "query" && value !== "") query.append(p.name, value);
      }
      if ([...query].length) url += "?" + query.toString();
      const headers = { Accept: "application/json" };
      const token = document.getElementById("token").value.trim();
      if (token) headers.Authorization = "Bearer " + token;
      const init = { method: method.toUpperCase(), headers };
      if (textarea) {
        headers["Content-Type"] = "application/json";
        init.body = textarea.value;
      }
      curl.textContent = "curl -X " + init.method + " '" + location.origin + url + "'" +
        Object.entries(headers).map(([k, v]) => " -H '" + k + ": " + (k === "Authorization" ? "Bearer …" : v) + "'").join("") +
        (init.body ? " -d '" + init.body.replace(/\s+/g, " ").replace(/'/g, "'\\''") + "'" : "");
      curl.classList.remove("hidden");
      button.disabled = true;
      out.classList.remove("hidden");
      out.textContent = "…";
      const started = performance.now();
      try {
        const response = await fetch(url, init);
        const text = await response.text();
        const elapsed = Math.round(performance.now() - started);
        const shown = ["content-type", "retry-after", "ratelimit-limit", "ratelimit-remaining", "x-request-id", "location"]
          .filter((name) => response.headers.has(name))
          .map((name) => name + ": " + response.headers.get(name));
        let pretty = text;
        try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
        out.textContent = response.status + " " + response.statusText + "  (" + elapsed + " ms)\n" +
          shown.join("\n") + (pretty ? "\n\n" + pretty : "");
      } catch (error) {
        out.textContent = "Request failed: " + error;
      } finally {
        button.disabled = false;
      }
    });

    return h("div", { class: "try" }, h("h3", {}, "Try it"), fields, textarea, h("div", {}, button), curl, out);
  }

  function renderOperation(path, method, op) {
    const body = op.requestBody ? jsonContent(op.requestBody.content) : null;
    const details = h("details", { class: "op", id: op.operationId },
      h("summary", {},
        h("span", { class: "method " + method }, method.toUpperCase()),
        h("span", { class: "path" }, path),
        h("span", { class: "summary-text" }, op.summary || ""),
        op.security && op.security.length ? h("span", { class: "badge auth", title: "Needs a bearer token" }, "auth") : null,
        op["x-roles"] ? h("span", { class: "badge" }, op["x-roles"].join(", ")) : null,
        h("span", { class: "badge mono" }, op.operationId)),
      h("div", { class: "body" },
        op.description ? h("p", {}, prose(op.description)) : null,
        op.parameters && op.parameters.length ? [h("h3", {}, "Parameters"), renderParameters(op.parameters)] : null,
        body ? [h("h3", {}, "Request body ", h("span", { class: "muted" }, body.type)), renderSchema(body.schema)] : null,
        op.requestBody && !body ? [h("h3", {}, "Request body"), Object.keys(op.requestBody.content).join(", ")] : null,
        h("h3", {}, "Responses"), renderResponses(op.responses || {}),
        op["x-rate-limit-per-minute"] ? h("p", { class: "desc" }, "Limited to " + op["x-rate-limit-per-minute"] + " requests per minute per client.") : null));
    let built = false;
    details.addEventListener("toggle", () => {
      if (details.open && !built) {  // the form is built on first open: pages stay light
        built = true;
        details.querySelector(".body").append(tryIt(path, method, op));
      }
      if (details.open && location.hash !== "#" + op.operationId) history.replaceState(null, "", "#" + op.operationId);
    });
    details.dataset.search = [method, path, op.summary, op.operationId, (op.tags || []).join(" ")].join(" ").toLowerCase();
    return details;
  }

  function render() {
    const app = document.getElementById("app");
    document.getElementById("title").textContent = spec.info.title + " API";
    document.getElementById("version").textContent = "v" + spec.info.version + " - OpenAPI " + spec.openapi;
    document.title = spec.info.title + " API";
    const byTag = new Map((spec.tags || []).map((t) => [t.name, []]));
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
        const tag = (op.tags && op.tags[0]) || "other";
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push(renderOperation(path, method, op));
      }
    }
    const sections = [...byTag].filter(([, ops]) => ops.length).map(([tag, ops]) =>
      h("section", { class: "group" }, h("h2", { class: "tag" }, tag), ops));
    const schemas = Object.entries(spec.components.schemas || {}).sort(([a], [b]) => a.localeCompare(b));
    app.replaceChildren(...[
      spec.info.description ? h("p", { class: "intro" }, prose(spec.info.description)) : null,
      sections,
      schemas.length ? h("section", { class: "group schemas" }, h("h2", { class: "tag" }, "schemas"),
        schemas.map(([name, schema]) => h("details", {},
          h("summary", {}, schema.title || name),
          renderSchema({ $ref: "#/components/schemas/" + name })))) : null,
    ].flat().filter(Boolean));
    const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target && target.tagName === "DETAILS") { target.open = true; target.scrollIntoView(); }
  }

  function applyFilter(text) {
    const needle = text.trim().toLowerCase();
    for (const section of document.querySelectorAll("section.group:not(.schemas)")) {
      let visible = 0;
      for (const op of section.querySelectorAll("details.op")) {
        const show = !needle || op.dataset.search.includes(needle);
        op.classList.toggle("hidden", !show);
        visible += show ? 1 : 0;
      }
      section.classList.toggle("hidden", visible === 0);
    }
  }

  async function main() {
    const token = document.getElementById("token");
    token.value = sessionStorage.getItem(TOKEN_KEY) || "";
    token.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, token.value.trim()));
    document.getElementById("filter").addEventListener("input", (e) => applyFilter(e.target.value));
    try {
      const response = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.status + " " + response.statusText);
      spec = await response.json();
      render();
    } catch (error) {
      document.getElementById("app").replaceChildren(
        h("p", { class: "muted" }, "Could not load /openapi.json: " + error.message));
    }
  }

  document.addEventListener("DOMContentLoaded", main);
})();
