// Flowyard storage plugin for Node-RED (settings.storageModule).
//
// Keeps an instance's flows, credentials, runtime settings, sessions and
// library in the Flowyard platform instead of the instance's userDir, so a
// restart on another machine or pod finds them again. No npm dependencies:
// only Node's own http/https modules.
//
// Configuration comes from the environment:
//   FLOWYARD_FORGE_URL       platform base URL, e.g. http://127.0.0.1:8080
//   FLOWYARD_INSTANCE_ID     this instance's id
//   FLOWYARD_INSTANCE_TOKEN  sent as "Authorization: Bearer <token>", unless
//                            settings.js hands the token over with useToken
//                            (read from its secrets file) before init
//
// Endpoints, all under {base}/api/v1/runtime/instances/{id}:
//   GET|PUT /flows        JSON array (GET answers [] when none is stored)
//   GET|PUT /credentials  JSON object, the encrypted blob as Node-RED gives it
//   GET|PUT /settings     JSON object
//   GET|PUT /sessions     JSON object
//   GET /library/{type}?name={path}  200 application/json: a directory listing
//         (or a parsed entry); 200 any other type: the entry's text; 404: none
//   PUT /library/{type}   JSON {name, meta, body}
//   GET /context          {limitBytes, usedBytes, scopes: {<scope>: {…}}}: the persistent context
//   PATCH /context        {<scope>: {…} | null}: replace or delete scopes; 413 past the limit
//
// The module also exports contextStore, Node-RED's context store "persistent" (see ContextStore below).
//
// Connection errors, timeouts and 5xx answers are retried with back-off for
// a few seconds, so a platform restart does not crash Node-RED; a 4xx answer
// fails at once.
"use strict";

const fs = require("fs");
const http = require("http");
const https = require("https");
const path = require("path");

const ENV_BASE_URL = "FLOWYARD_FORGE_URL";
const ENV_INSTANCE_ID = "FLOWYARD_INSTANCE_ID";
const ENV_TOKEN = "FLOWYARD_INSTANCE_TOKEN";
const REQUEST_TIMEOUT_MS = 10000;
const RETRY_DELAYS_MS = [200, 400, 800, 1600, 3200];
const ERROR_BODY_EXCERPT = 300;

let target = null;
let log = null;
let givenToken = null; // from useToken; preferred over the environment

function readConfig() {
    const needed = givenToken ? [ENV_BASE_URL, ENV_INSTANCE_ID] : [ENV_BASE_URL, ENV_INSTANCE_ID, ENV_TOKEN];
    const missing = needed.filter((name) => !process.env[name]);
    if (missing.length > 0) {
        throw new Error("flowyard storage: environment variable(s) not set: " + missing.join(", "));
    }
    let base;
    try {
        base = new URL(process.env[ENV_BASE_URL]);
    } catch (err) {
        throw new Error("flowyard storage: " + ENV_BASE_URL + " is not a URL");
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
        throw new Error("flowyard storage: " + ENV_BASE_URL + " must be http or https");
    }
    const prefix = base.href.replace(/\/+$/, "") + "/api/v1/runtime/instances/" +
        encodeURIComponent(process.env[ENV_INSTANCE_ID]);
    return {prefix: prefix, token: givenToken || process.env[ENV_TOKEN]};
}

function endpointURL(path, query) {
    const url = new URL(target.prefix + path);
    for (const [key, value] of Object.entries(query || {})) {
        url.searchParams.set(key, value);
    }
    return url;
}

function excerpt(text) {
    const oneLine = String(text || "").replace(/\s+/g, " ").trim();
    return oneLine.length > ERROR_BODY_EXCERPT ? oneLine.slice(0, ERROR_BODY_EXCERPT) + "…" : oneLine;
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

// sendOnce makes one HTTP request and resolves with {status, type, body}. payload is sent as JSON; a string
// payload is JSON already.
function sendOnce(method, url, payload) {
    return new Promise((resolve, reject) => {
        const headers = {
            "Authorization": "Bearer " + target.token,
            "Accept": "application/json, text/plain;q=0.9",
            "User-Agent": "flowyard-storage",
        };
        let body = null;
        if (payload !== undefined) {
            body = Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload), "utf8");
            headers["Content-Type"] = "application/json";
            headers["Content-Length"] = body.length;
        }
        const transport = url.protocol === "https:" ? https : http;
        const req = transport.request(url, {method: method, headers: headers, timeout: REQUEST_TIMEOUT_MS}, (res) => {
            const chunks = [];
            res.on("data", (chunk) => chunks.push(chunk));
            res.on("error", reject);
            res.on("end", () => resolve({
                status: res.statusCode,
                type: String(res.headers["content-type"] || ""),
                body: Buffer.concat(chunks).toString("utf8"),
            }));
        });
        req.on("timeout", () => req.destroy(new Error("no answer within " + REQUEST_TIMEOUT_MS + " ms")));
        req.on("error", reject);
        req.end(body);
    });
}

// request retries connection failures and 5xx answers with back-off; a 4xx
// (other than an allowed 404) fails at once with the platform's message.
async function request(method, path, options) {
    options = options || {};
    const url = endpointURL(path, options.query);
    const what = method + " " + url.pathname;
    for (let attempt = 0; ; attempt++) {
        let problem;
        try {
            const res = await sendOnce(method, url, options.payload);
            if (res.status >= 200 && res.status < 300) {
                return res;
            }
            if (res.status === 404 && options.allowNotFound) {
                return res;
            }
            if (res.status < 500) {
                throw new PlatformRefusal("flowyard storage: " + what + " answered " + res.status + ": " + excerpt(res.body), res);
            }
            problem = "answered " + res.status + ": " + excerpt(res.body);
        } catch (err) {
            if (err instanceof PlatformRefusal) {
                throw err;
            }
            problem = err && err.message ? err.message : String(err);
        }
        if (attempt >= RETRY_DELAYS_MS.length) {
            throw new Error("flowyard storage: " + what + " failed after " + (attempt + 1) + " attempts: " + problem);
        }
        if (log) {
            log.warn("flowyard storage: " + what + " " + problem + "; retrying");
        }
        await sleep(RETRY_DELAYS_MS[attempt]);
    }
}

// PlatformRefusal is a 4xx answer: the request was understood and refused, so retrying cannot help. It carries
// the platform's error envelope (code, message) when there is one.
class PlatformRefusal extends Error {
    constructor(message, res) {
        super(message);
        this.status = res.status;
        try {
            const envelope = JSON.parse(res.body);
            this.code = envelope.code;
            this.platformMessage = envelope.message;
        } catch (err) {
            this.platformMessage = excerpt(res.body);
        }
    }
}

function parseJSON(what, text) {
    if (text.trim() === "") {
        return undefined;
    }
    try {
        return JSON.parse(text);
    } catch (err) {
        throw new Error("flowyard storage: " + what + " is not JSON: " + err.message);
    }
}

async function getDocument(name, emptyValue) {
    const res = await request("GET", "/" + name);
    const value = parseJSON(name, res.body);
    if (value === undefined || value === null) {
        return emptyValue;
    }
    if (Array.isArray(value) !== Array.isArray(emptyValue) || typeof value !== "object") {
        throw new Error("flowyard storage: " + name + " is not a JSON " + (Array.isArray(emptyValue) ? "array" : "object"));
    }
    return value;
}

async function putDocument(name, value) {
    await request("PUT", "/" + name, {payload: value});
}

function libraryNotFound(name) {
    const err = new Error("Library Entry not found " + name);
    err.code = "not_found";
    err.status = 404;
    return err;
}

async function getLibraryEntry(type, name) {
    name = name || "";
    const res = await request("GET", "/library/" + encodeURIComponent(type), {query: {name: name}, allowNotFound: true});
    if (res.status === 404) {
        // Like Node-RED's file store: a missing folder is an empty listing.
        if (name === "" || name.endsWith("/")) {
            return [];
        }
        throw libraryNotFound(name);
    }
    if (res.type.toLowerCase().startsWith("application/json")) {
        return parseJSON("library " + type + " " + name, res.body);
    }
    return res.body;
}

async function saveLibraryEntry(type, name, meta, body) {
    await request("PUT", "/library/" + encodeURIComponent(type), {payload: {name: name, meta: meta || {}, body: body}});
}

// prepareUserDir does what Node-RED's file storage does at init: the palette
// loader reads userDir/package.json and npm installs into userDir/node_modules.
function prepareUserDir(userDir) {
    if (!userDir) {
        return;
    }
    fs.mkdirSync(path.join(userDir, "node_modules"), {recursive: true});
    const project = {name: "node-red-project", description: "A Node-RED Project", version: "0.0.1", private: true};
    try {
        fs.writeFileSync(path.join(userDir, "package.json"), JSON.stringify(project, null, 4), {flag: "wx"});
    } catch (err) {
        if (err.code !== "EEXIST") {
            throw err;
        }
    }
}

// ---- The persistent context store ----
//
// settings.js makes it the context store "persistent" (contextStorage.persistent.module = contextStore).
// Node-RED reads and writes a context store synchronously unless the flow passes a callback, so the store
// keeps the instance's whole context in memory: open() reads it from the platform (GET /context) before the
// flows start, get/set/keys work on memory, and the scopes that changed are written back (PATCH /context) at
// most every flushInterval seconds and at once by close(), which Node-RED calls when it stops (SIGTERM). Only
// values set after the last write are lost when the process is killed.
//
// The platform caps an instance's context (its instance type's limit) and refuses a write past it. So that a
// flow learns of it where it can act, set() checks the limit before it takes a value: over the limit it throws
// (or calls back with) an error whose code is "context_limit_exceeded", and the context is unchanged. Measuring
// a scope means serialising it, so set() keeps an upper bound of each changed scope's size (the old size plus
// the new value's, plus its key) and measures exactly only when the bound reaches the limit or the key names
// an array element. Values are stored as JSON: what JSON cannot hold (functions, undefined) is dropped as by
// Node-RED's file store, and a value JSON cannot encode (a circular structure) is refused by set().

const CONTEXT_FLUSH_SECONDS = 5;
const CONTEXT_BATCH_BYTES = 1 << 20; // scopes per PATCH, so no request nears the platform's body limit

// nodeRedUtil loads @node-red/util from the Node-RED running this plugin (red.js is the main module), for its
// property expressions ("a.b[0]"), which context keys are.
function nodeRedUtil() {
    const from = require.main || module;
    try {
        return from.require("@node-red/util").util;
    } catch (err) {
        throw new Error("flowyard context: cannot load @node-red/util from Node-RED: " + err.message);
    }
}

function jsonBytes(value) {
    const json = JSON.stringify(value);
    return json === undefined ? 0 : Buffer.byteLength(json, "utf8");
}

function formatBytes(n) {
    return n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + " MiB" : n >= 1024 ? (n / 1024).toFixed(1) + " KiB" : n + " bytes";
}

function contextLimitError(size, limit) {
    const err = new Error(limit === 0 ?
        "persistent context: this instance's type keeps no persistent context; the value was not stored" :
        "persistent context is full: the value was not stored, as it would make this instance's persistent context " +
        formatBytes(size) + ", over its limit of " + formatBytes(limit));
    err.code = "context_limit_exceeded";
    return err;
}

function notJSONError(key, err) {
    const e = new Error("persistent context: the value of \"" + key + "\" was not stored: it cannot be written as JSON (" + err.message + ")");
    e.code = "context_not_json";
    return e;
}

class ContextStore {
    constructor(config) {
        const seconds = config.flushInterval === undefined ? CONTEXT_FLUSH_SECONDS : Number(config.flushInterval);
        this.flushMs = Math.max(0, seconds) * 1000;
        this.data = {};      // scope → its object
        this.sizes = {};     // scope → bytes of its JSON; an upper bound while bounded[scope]
        this.bounded = {};
        this.total = 0;      // the sum of sizes
        this.limit = 0;
        this.dirty = new Set();
        this.timer = null;
        this.writing = Promise.resolve();
        this.util = null;
    }

    async open() {
        if (!target) {
            target = readConfig();
        }
        this.util = nodeRedUtil();
        const res = await request("GET", "/context");
        const doc = parseJSON("context", res.body) || {};
        this.limit = Number(doc.limitBytes) || 0;
        for (const [scope, values] of Object.entries(doc.scopes || {})) {
            this.data[scope] = values;
            this.sizes[scope] = jsonBytes(values);
            this.total += this.sizes[scope];
        }
    }

    close() {
        if (this.timer) {
            clearTimeout(this.timer);
            this.timer = null;
        }
        return this.dirty.size > 0 ? this.flush() : this.writing;
    }

    get(scope, key, callback) {
        let value;
        try {
            value = Array.isArray(key) ? key.map((k) => this.getOne(scope, k)) : this.getOne(scope, key);
        } catch (err) {
            if (callback) {
                return callback(err);
            }
            throw err;
        }
        if (!callback) {
            return value;
        }
        if (Array.isArray(key)) {
            callback(undefined, ...value);
        } else {
            callback(undefined, value);
        }
    }

    getOne(scope, key) {
        if (!this.data[scope]) {
            return undefined;
        }
        try {
            return this.util.getObjectProperty(this.data[scope], key);
        } catch (err) {
            if (err.code === "INVALID_EXPR") {
                throw err;
            }
            return undefined;
        }
    }

    set(scope, key, value, callback) {
        try {
            const keys = Array.isArray(key) ? key : [key];
            let values = [value];
            if (Array.isArray(key)) {
                values = Array.isArray(value) ? value : [value];
            }
            // Like Node-RED's memory store: a key without a value gets null.
            this.setAll(scope, keys, keys.map((k, i) => (i < values.length ? values[i] : null)));
        } catch (err) {
            if (callback) {
                return callback(err);
            }
            throw err;
        }
        if (callback) {
            callback(undefined);
        }
    }

    setAll(scope, keys, values) {
        const growth = this.growthBound(keys, values);
        if (growth !== null && this.total + growth <= this.limit) {
            this.apply(scope, keys, values);
            this.sizes[scope] = (this.sizes[scope] || 0) + growth;
            this.bounded[scope] = true;
            this.total += growth;
        } else {
            this.setMeasured(scope, keys, values);
        }
        this.markDirty(scope);
    }

    // growthBound is how much the scope's JSON can grow at most when keys take values, or null when it cannot
    // be bounded cheaply (an array index may create many elements). It refuses values JSON cannot encode.
    growthBound(keys, values) {
        let growth = 0;
        for (let i = 0; i < keys.length; i++) {
            let bytes;
            try {
                bytes = jsonBytes(values[i]);
            } catch (err) {
                throw notJSONError(keys[i], err);
            }
            if (String(keys[i]).includes("[")) {
                return null;
            }
            // Each segment of a.b.c may add its quoted, escaped name, a colon, braces and a comma.
            growth += bytes + 4 * jsonBytes(String(keys[i])) + 8;
        }
        return growth;
    }

    // setMeasured takes the values only if the context, measured exactly, stays within the limit (or shrinks).
    setMeasured(scope, keys, values) {
        const before = this.measureAll();
        const saved = this.data[scope] === undefined ? undefined : JSON.stringify(this.data[scope]);
        this.apply(scope, keys, values);
        const size = jsonBytes(this.data[scope]);
        const after = before - (this.sizes[scope] || 0) + size;
        if (after > this.limit && after > before) {
            if (saved === undefined) {
                delete this.data[scope];
            } else {
                this.data[scope] = JSON.parse(saved);
            }
            throw contextLimitError(after, this.limit);
        }
        this.sizes[scope] = size;
        this.total = after;
    }

    // measureAll replaces every bound with the scope's exact size and returns the exact total.
    measureAll() {
        for (const scope of Object.keys(this.bounded)) {
            this.total -= this.sizes[scope];
            this.sizes[scope] = jsonBytes(this.data[scope]);
            this.total += this.sizes[scope];
        }
        this.bounded = {};
        return this.total;
    }

    apply(scope, keys, values) {
        if (!this.data[scope]) {
            this.data[scope] = {};
        }
        for (let i = 0; i < keys.length; i++) {
            this.util.setObjectProperty(this.data[scope], keys[i], values[i]);
        }
    }

    keys(scope, callback) {
        let keys = Object.keys(this.data[scope] || {});
        if (scope === "global") {
            keys = keys.filter((k) => k !== "set" && k !== "get" && k !== "keys");
        }
        if (!callback) {
            return keys;
        }
        callback(null, keys);
    }

    delete(scope) {
        if (this.data[scope] !== undefined) {
            this.total -= this.sizes[scope] || 0;
            delete this.data[scope];
            delete this.sizes[scope];
            delete this.bounded[scope];
            this.markDirty(scope);
        }
        return Promise.resolve();
    }

    // clean drops the context of nodes and flows no longer deployed (Node-RED calls it after each deploy).
    clean(activeNodes) {
        const active = new Set(activeNodes || []);
        for (const scope of Object.keys(this.data)) {
            if (scope !== "global" && !active.has(scope.split(":")[0])) {
                this.delete(scope);
            }
        }
        return Promise.resolve();
    }

    markDirty(scope) {
        this.dirty.add(scope);
        if (!this.timer) {
            this.timer = setTimeout(() => {
                this.timer = null;
                this.flush();
            }, this.flushMs);
        }
    }

    // flush writes the changed scopes, one write at a time; a failure is logged, never thrown at Node-RED.
    flush() {
        this.writing = this.writing.then(() => this.writeDirty()).catch((err) => {
            contextLog("error", "persistent context: " + (err && err.message ? err.message : String(err)));
        });
        return this.writing;
    }

    async writeDirty() {
        const scopes = Array.from(this.dirty);
        this.dirty.clear();
        let batch = [];
        let bytes = 0;
        for (const scope of scopes) {
            const entry = this.entryOf(scope);
            if (entry === null) {
                continue;
            }
            if (batch.length > 0 && bytes + entry.length > CONTEXT_BATCH_BYTES) {
                await this.send(batch);
                batch = [];
                bytes = 0;
            }
            batch.push({scope: scope, entry: entry});
            bytes += entry.length;
        }
        if (batch.length > 0) {
            await this.send(batch);
        }
    }

    // entryOf is the scope's part of a PATCH body ("<scope>":{…}, or null for an empty or deleted scope), or
    // null when the scope cannot be written as JSON any more (a flow changed a stored object in place).
    entryOf(scope) {
        const values = this.data[scope];
        let json = "null";
        if (values !== undefined && Object.keys(values).length > 0) {
            try {
                json = JSON.stringify(values);
            } catch (err) {
                contextLog("warn", "persistent context: scope " + scope + " not saved: it cannot be written as JSON (" + err.message + ")");
                return null;
            }
        }
        if (values !== undefined) {
            this.total -= this.sizes[scope] || 0;
            this.sizes[scope] = json === "null" ? 0 : Buffer.byteLength(json, "utf8");
            this.total += this.sizes[scope];
            delete this.bounded[scope];
        }
        return JSON.stringify(scope) + ":" + json;
    }

    async send(batch) {
        try {
            await request("PATCH", "/context", {payload: "{" + batch.map((b) => b.entry).join(",") + "}"});
        } catch (err) {
            if (err instanceof PlatformRefusal) {
                // Refused for good (over the limit after values were changed in place, say): retrying cannot help.
                contextLog("error", "persistent context: not saved: " + (err.platformMessage || err.message));
                return;
            }
            for (const b of batch) {
                this.dirty.add(b.scope);
            }
            if (!this.timer) {
                this.timer = setTimeout(() => {
                    this.timer = null;
                    this.flush();
                }, Math.max(this.flushMs, 1000));
            }
            throw err;
        }
    }
}

function contextLog(level, message) {
    if (log && log[level]) {
        log[level](message);
    } else {
        console.error(message);
    }
}

module.exports = {
    useToken: function (token) {
        givenToken = token;
    },
    init: async function (settings, runtime) {
        target = readConfig();
        log = runtime && runtime.log ? runtime.log : null;
        prepareUserDir(settings && settings.userDir);
    },
    getFlows: () => getDocument("flows", []),
    saveFlows: (flows) => putDocument("flows", flows),
    getCredentials: () => getDocument("credentials", {}),
    saveCredentials: (credentials) => putDocument("credentials", credentials),
    getSettings: () => getDocument("settings", {}),
    saveSettings: (settings) => putDocument("settings", settings),
    getSessions: () => getDocument("sessions", {}),
    saveSessions: (sessions) => putDocument("sessions", sessions),
    getLibraryEntry: getLibraryEntry,
    saveLibraryEntry: saveLibraryEntry,
    // The persistent context store: settings.js names it as contextStorage.persistent.module.
    contextStore: function (config) {
        return new ContextStore(config || {});
    },
};
