// server.cjs is a small SCIM 2.0 service provider built on SCIMMY (npm scimmy 1.3.5,
// scimmy-routers 1.3.2, express 4): a third-party SCIM target for ldapscim's push tests.
//
//   node server.cjs    (env: PORT, TOKEN; NODE_PATH pointing at the installed node_modules)
//
// Users (with the EnterpriseUser extension) and Groups live in in-memory Maps. SCIMMY does not
// filter or enforce uniqueness by itself: egress calls res.filter.match, and ingress answers a
// duplicate userName (users) or displayName (groups) with a SCIM 409 "uniqueness", as real
// targets do. Bulk is off. GET /_state (same bearer token) dumps everything for test asserts.
// The first line on stdout is "listening PORT".
"use strict";
const express = require("express");
const SCIMMY = require("scimmy");
const SCIMMYRouters = require("scimmy-routers").default ?? require("scimmy-routers");
const crypto = require("node:crypto");

const token = process.env.TOKEN || "scimmy-token";
const users = new Map(); // id -> stored user
const groups = new Map(); // id -> stored group
const userNames = new Map(); // lower-cased userName -> id
const groupNames = new Map(); // lower-cased displayName -> id
const stats = {requests: 0, created: 0};

SCIMMY.Config.set("bulk", false);
SCIMMY.Config.set("patch", true);
SCIMMY.Config.set("filter", true);

function plain(instance) {
	return JSON.parse(JSON.stringify(instance));
}

function meta(old) {
	const now = new Date().toISOString();
	return {created: old?.meta?.created ?? now, lastModified: now};
}

// candidates narrows a filter of `attr eq "v"` branches (or-ed) through an index; anything
// else scans. res.filter.match decides in every case, with SCIMMY's own semantics.
function candidates(res, all, index, attr) {
	const f = res.filter;
	if (!f || !Array.isArray(f) || f.length === 0) return [...all.values()];
	const ids = [];
	for (const branch of f) {
		const keys = Object.keys(branch);
		if (keys.length !== 1 || keys[0].toLowerCase() !== attr.toLowerCase()) return [...all.values()];
		const expr = branch[keys[0]];
		if (!Array.isArray(expr) || expr[0] !== "eq" || typeof expr[1] !== "string") return [...all.values()];
		const id = index.get(expr[1].toLowerCase());
		if (id !== undefined) ids.push(id);
	}
	return ids.map(id => all.get(id)).filter(Boolean);
}

function egress(all, index, attr) {
	return (res) => {
		if (res.id) {
			const r = all.get(res.id);
			if (!r) throw new SCIMMY.Types.Error(404, null, `Resource ${res.id} not found`);
			return [r];
		}
		const list = candidates(res, all, index, attr);
		return res.filter ? res.filter.match(list) : list;
	};
}

function ingress(all, index, attr, kind) {
	return (res, instance) => {
		const data = plain(instance);
		const key = String(data[attr] ?? "").toLowerCase();
		const old = res.id ? all.get(res.id) : undefined;
		if (res.id && !old) throw new SCIMMY.Types.Error(404, null, `Resource ${res.id} not found`);
		const holder = index.get(key);
		if (key && holder !== undefined && holder !== res.id)
			throw new SCIMMY.Types.Error(409, "uniqueness", `${kind} ${attr} "${data[attr]}" already exists`);
		const id = res.id ?? crypto.randomUUID();
		if (old) index.delete(String(old[attr] ?? "").toLowerCase());
		const stored = {...data, id, meta: meta(old)};
		delete stored.schemas;
		all.set(id, stored);
		if (key) index.set(key, id);
		if (!old) stats.created++;
		return stored;
	};
}

function degress(all, index, attr) {
	return (res) => {
		const old = all.get(res.id);
		if (!old) throw new SCIMMY.Types.Error(404, null, `Resource ${res.id} not found`);
		all.delete(res.id);
		index.delete(String(old[attr] ?? "").toLowerCase());
	};
}

SCIMMY.Resources.declare(SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false), {
	ingress: ingress(users, userNames, "userName", "User"),
	egress: egress(users, userNames, "userName"),
	degress: degress(users, userNames, "userName"),
});
SCIMMY.Resources.declare(SCIMMY.Resources.Group, {
	ingress: ingress(groups, groupNames, "displayName", "Group"),
	egress: egress(groups, groupNames, "displayName"),
	degress: degress(groups, groupNames, "displayName"),
});

function authorized(req) {
	return req.header("Authorization") === `Bearer ${token}`;
}

const app = express();
// GET /_stats: the counters alone, cheap enough to poll while thousands of users are stored;
// registered before the counter, so polling it does not count as a request.
app.get("/_stats", (req, res) => {
	if (!authorized(req)) return res.status(401).end();
	res.json(stats);
});
app.use((req, res, next) => { stats.requests++; next(); });
app.get("/_state", (req, res) => {
	if (!authorized(req)) return res.status(401).end();
	res.json({users: [...users.values()], groups: [...groups.values()], stats});
});
app.use("/scim/v2", new SCIMMYRouters({
	type: "bearer",
	docUri: "https://example.invalid/scimmy-test",
	handler: (req) => {
		if (!authorized(req)) throw new Error("bad or missing bearer token");
		return "ldapscim";
	},
}));

const server = app.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
	process.stdout.write(`listening ${server.address().port}\n`);
});
server.keepAliveTimeout = 60000;
process.on("SIGTERM", () => server.close(() => process.exit(0)));
