#!/usr/bin/env node
// Validates rendered Kubernetes objects offline against the Kubernetes
// OpenAPI schemas that the npm package kubernetes-models bundles (compiled
// JSON-schema validators, one per kind; nothing is downloaded at run time).
//
//   node validate.cjs FILE.json...   (each file: a JSON array of objects)
//
// The bundled schemas, like the upstream OpenAPI document, do not forbid
// unknown fields, while the API server rejects them (strict field
// validation). So a second pass walks every object along the field lists
// that the package's type declarations (.d.ts) spell out and reports any
// field the API does not know: the typo `readinessprobe` fails here, not at
// `kubectl apply`.
//
// Prints one line per problem and exits 1 if there was any.
"use strict";
const fs = require("fs");
const path = require("path");

const MODELS = path.dirname(require.resolve("kubernetes-models/package.json"));
const NODE_MODULES = path.dirname(MODELS);

// "apps/v1" + "Deployment" -> kubernetes-models/apps/v1/Deployment
function modelFile(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  if (!/^[a-z0-9.-]+(\/v[0-9a-z]+)?$/.test(apiVersion) || !/^[A-Za-z]+$/.test(kind)) return null;
  const f = path.join(MODELS, ...apiVersion.split("/"), kind + ".js");
  return fs.existsSync(f) ? f : null;
}

// ---- strict pass: field names from the .d.ts declarations ----------------

const ifaceCache = new Map(); // .d.ts path -> {props: Map(name -> {ref, file})} | null

function resolveImport(fromFile, spec) {
  const base = spec.startsWith(".") ? path.resolve(path.dirname(fromFile), spec)
                                    : path.join(NODE_MODULES, spec);
  const f = base.replace(/\.js$/, "") + ".d.ts";
  return fs.existsSync(f) ? f : null;
}

// The first `export interface` of a declaration file: its property names
// and, for object-typed properties, the declaration file of their type.
// Types that are not interfaces (Quantity, IntOrString, Time, maps, enums)
// give no `ref` and are not descended into.
function loadInterface(file) {
  if (ifaceCache.has(file)) return ifaceCache.get(file);
  const text = fs.readFileSync(file, "utf8");
  const imports = new Map();
  for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) imports.set(m[1], m[2]);
  const start = text.search(/^export interface \w+/m);
  let result = null;
  if (start >= 0) {
    const body = text.slice(start, text.indexOf("\n}", start));
    const props = new Map();
    for (const m of body.matchAll(/^ {4}"([^"]+)"\??: (.*)$/gm)) {
      const t = m[2].match(/^(?:Array<)?(IIoK8s\w+)>?;$/);
      const spec = t && imports.get(t[1]);
      props.set(m[1], { ref: spec ? resolveImport(file, spec) : null });
    }
    result = { props };
  }
  ifaceCache.set(file, result);
  return result;
}

function strictWalk(value, file, where, problems) {
  const iface = loadInterface(file);
  if (!iface || value === null || typeof value !== "object") return;
  const items = Array.isArray(value) ? value.map((v, i) => [v, `${where}[${i}]`]) : [[value, where]];
  for (const [obj, at] of items) {
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) continue;
    for (const [k, v] of Object.entries(obj)) {
      const p = iface.props.get(k);
      if (!p) { problems.push(`${at}.${k}: unknown field`); continue; }
      if (p.ref) strictWalk(v, p.ref, `${at}.${k}`, problems);
    }
  }
}

// ---- main -----------------------------------------------------------------

let bad = 0, count = 0;
for (const jsonFile of process.argv.slice(2)) {
  const objects = JSON.parse(fs.readFileSync(jsonFile, "utf8"));
  for (const obj of objects) {
    count++;
    const name = `${path.basename(jsonFile, ".json")}: ${obj.kind}/${obj.metadata && obj.metadata.name}`;
    const file = modelFile(obj.apiVersion, obj.kind);
    if (!file) { console.log(`${name}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`); bad++; continue; }
    const Model = require(file)[obj.kind];
    const problems = [];
    try {
      new Model(obj).validate();
    } catch (e) {
      problems.push(String(e.message || e).replace(/\s+/g, " "));
    }
    strictWalk(obj, file.replace(/\.js$/, ".d.ts"), "", problems);
    for (const p of problems) console.log(`${name}: ${p}`);
    if (problems.length) bad++;
  }
}
console.log(`validated ${count} objects, ${bad} invalid`);
process.exit(bad || count === 0 ? 1 : 0);
