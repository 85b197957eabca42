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

// sendOnce makes one HTTP request and resolves with {status, type, body}.
function sendOnce(method, url, payload) {
    return new Promise((resolve, reject) => {
        const headers = {
            "Authorization": "Bearer " + target.token,
            "Accept": "application/json, text/plain;q=0.9",
            "User-Agent": "flowyard-storage",
        };
        let body = null;
        if (payload !== undefined) {
            body = Buffer.from(JSON.stringify(payload), "utf8");
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
                throw new PlatformRefusal("flowyard storage: " + what + " answered " + res.status + ": " + excerpt(res.body));
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

class PlatformRefusal extends Error {}

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
};
