// s62 auditor's console: the views. Purpose first; every view that reads the log is one or more
// AuditQuery calls (each an audit-query entry, whose seq is shown); everything shown is checked
// with verify.js against the verifier key the auditor pinned.
"use strict";

(function () {
  const Pb = window.S62Pb, V = window.S62Verify;
  const KEY_STORE = "s62.console.verifierKey";
  const $ = (id) => document.getElementById(id);

  // ---- state ----
  const state = { purpose: 0, caseRef: "", key: null };

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat()) {
      if (kid === undefined || kid === null || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  const purposeLabel = (p) => Pb.ENUMS.AuditPurpose[p] || String(p);
  const kindLabel = (k) => Pb.ENUMS.EntryKind[k] || "kind " + k;
  const opLabel = (o) => Pb.ENUMS.Operation[o] || "";
  function time(ns) {
    if (!ns) return "";
    const ms = Number(BigInt(ns) / 1000000n);
    return new Date(ms).toISOString().replace(".000Z", "Z");
  }
  function nanos(input) {
    const v = input.value;
    if (!v) return 0n;
    const ms = Date.parse(v + (v.length === 16 ? ":00Z" : "Z"));
    if (Number.isNaN(ms)) throw new Error("not a date: " + v);
    return BigInt(ms) * 1000000n;
  }
  const context = () => ({ purpose: state.purpose, case_reference: state.caseRef });

  // ---- messages ----
  function showError(e) {
    const box = $("error");
    box.hidden = false;
    box.replaceChildren();
    if (e instanceof Pb.GrpcError) {
      box.append(h("strong", {}, "Refused by the server: " + e.codeName),
        e.grpcMessage ? " — " + e.grpcMessage : "",
        h("br"), "The refusal itself is written to the log as a denied entry.");
    } else {
      box.append(h("strong", {}, "Error: "), String(e && e.message ? e.message : e));
    }
    box.focus && box.setAttribute("tabindex", "-1");
  }
  const clearError = () => { $("error").hidden = true; $("error").replaceChildren(); };

  // Audit entries written for a view, shown under it.
  function loggedLine(calls) {
    const parts = calls.filter((c) => c.seq !== null && c.seq !== undefined)
      .map((c) => c.call + " #" + c.seq);
    return h("p", { class: "logged", "data-audit-seqs": calls.map((c) => c.seq).join(",") },
      "In the log as audit-query entr" + (parts.length === 1 ? "y " : "ies ") + parts.join(", ") +
      " (purpose " + purposeLabel(state.purpose) + ", case " + state.caseRef + ").");
  }

  // One logged call; records its audit seq in `calls`.
  async function call(calls, method, reqName, req, resName) {
    req.context = context();
    try {
      const r = await Pb.call(method, reqName, req, resName);
      calls.push({ call: method, seq: r.auditSeq });
      return r.messages;
    } catch (e) {
      if (e.auditSeq !== undefined && e.auditSeq !== null) calls.push({ call: method, seq: e.auditSeq });
      throw e;
    }
  }

  // ---- routing ----
  const DATA_VIEWS = new Set(["search", "entry", "subject", "actor", "alerts", "status"]);
  function route() {
    const [view, arg] = (location.hash.slice(1) || "purpose").split("/");
    let name = document.querySelector('[data-view="' + view + '"]') ? view : "purpose";
    if (DATA_VIEWS.has(name) && !state.purpose) {
      name = "purpose";
      showError("Choose a purpose and enter a case reference first.");
    }
    for (const s of document.querySelectorAll("main > section")) s.hidden = s.dataset.view !== name;
    for (const a of document.querySelectorAll("nav.views a")) {
      if (a.getAttribute("href") === "#" + name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    if (name === "entry" && arg !== undefined && /^[0-9]+$/.test(arg)) {
      $("e-seq").value = arg;
      showEntry(BigInt(arg));
    }
    if (name === "key") renderKey();
    if (name === "about") selfTestSummary();
  }

  // ---- purpose ----
  function setBanner() {
    const b = $("context-banner");
    if (!state.purpose) {
      b.className = "banner unset";
      b.textContent = "No purpose chosen: nothing from the log is shown until you choose one.";
      return;
    }
    b.className = "banner";
    b.replaceChildren("Purpose: ", h("strong", { id: "banner-purpose" }, purposeLabel(state.purpose)),
      " · Case: ", h("strong", { id: "banner-case" }, state.caseRef),
      " · Key: ", state.key ? h("span", { class: "ok" }, "pinned (" + state.key.name + ")")
        : h("a", { href: "#key", class: "pending" }, "none pinned: proofs cannot be checked"),
      " · ", h("a", { href: "#purpose" }, "change"));
  }

  $("purpose-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new FormData(ev.target).get("purpose");
    const c = $("case-ref").value.trim();
    if (!p || !c) { showError("Choose a purpose and enter a case reference."); return; }
    state.purpose = Number(p);
    state.caseRef = c;
    clearError();
    setBanner();
    location.hash = "#search";
  });

  // ---- the pinned key ----
  async function loadKey() {
    const saved = localStorage.getItem(KEY_STORE);
    if (!saved) { state.key = null; return; }
    try { state.key = await V.parseVerifierKey(saved); } catch (_) { state.key = null; }
  }
  function renderKey() {
    const out = $("key-out");
    out.replaceChildren(state.key
      ? h("p", {}, h("span", { class: "ok" }, "Pinned: "), h("code", { id: "pinned-key" }, state.key.text),
        " (name ", state.key.name, ", key id ", V.hex(state.key.keyId), ")")
      : h("p", { class: "pending" }, "No key pinned: checkpoints and proofs are shown unchecked (?)."));
  }
  $("key-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    try {
      const k = await V.parseVerifierKey($("k-vkey").value);
      localStorage.setItem(KEY_STORE, k.text);
      state.key = k;
      $("k-vkey").value = "";
      renderKey();
      setBanner();
    } catch (e) { showError(e); }
  });
  $("k-forget").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORE);
    state.key = null;
    renderKey();
    setBanner();
  });
  $("k-compare").addEventListener("click", async () => {
    clearError();
    if (!state.purpose) { showError("Choose a purpose first: asking the server is a logged call."); return; }
    const calls = [];
    try {
      const [r] = await call(calls, "LatestCheckpoint", "LatestCheckpointRequest", {}, "CheckpointResponse");
      const same = state.key && r.verifier_key.trim() === state.key.text;
      $("key-out").append(h("p", {}, "The server's copy (not pinned): ", h("code", {}, r.verifier_key),
        state.key ? (same ? h("span", { class: "ok" }, " — the same as the pinned key")
          : h("span", { class: "bad" }, " — DIFFERENT from the pinned key")) : ""), loggedLine(calls));
    } catch (e) { showError(e); }
  });

  // ---- verification ----
  let checkpointCache = null;
  // The latest checkpoint, checked against the pinned key (one logged call).
  async function verifiedCheckpoint(calls) {
    const [r] = await call(calls, "LatestCheckpoint", "LatestCheckpointRequest", {}, "CheckpointResponse");
    const cp = r.checkpoint;
    if (!state.key) return { ok: null, cp, why: "no verifier key pinned" };
    const v = await V.verifyCheckpoint(cp, state.key);
    checkpointCache = v.ok ? v : null;
    return { ...v, cp };
  }

  function mark(result) {
    const t = { ok: ["ok", "✔", "verified"], bad: ["bad", "✘", "FAILED"],
      pending: ["pending", "⏳", "not yet in a checkpoint"], nokey: ["unknown", "?", "no key pinned"],
      unchecked: ["unknown", "?", "not fully checked"], busy: ["unknown", "…", "checking"] }[result.state];
    return h("span", { class: "proof " + t[0], "data-proof": result.state, title: result.why || t[2] },
      t[1] + " " + t[2] + (result.why && (result.state === "bad" || result.state === "unchecked")
        ? ": " + result.why : ""));
  }

  // Decodes a leaf and puts its values back after checking them against the leaf: each against its
  // commitment (format 2), or all of them and the kept commitments against values_root (format 3).
  // `valuesBytes` null: no row was sent (a subject report's events), so none is checked.
  async function readEntry(seq, leaf, valuesBytes, redacted) {
    let entry;
    try { entry = Pb.decode("Entry", leaf); } catch (e) {
      return { problems: ["the stored bytes do not parse: " + e.message] };
    }
    const problems = [];
    let removed = [];
    if (entry.seq !== BigInt(seq)) problems.push("the stored bytes are entry " + entry.seq + ", not " + seq);
    let row = { values: [], seed: new Uint8Array(0) };
    const v3 = entry.format_version === 3;
    // Format 3 checks an empty row too: a leaf with a values_root needs one.
    if (valuesBytes && (valuesBytes.length || v3)) {
      try { row = Pb.decode("EntryValues", valuesBytes); } catch (e) {
        problems.push("the value row does not parse");
      }
      const checked = await V.checkRow(entry, row);
      problems.push(...checked.problems);
      removed = checked.removed;
    }
    putBack(entry, row, redacted || []);
    return { entry, problems, removed };
  }

  // The log's redaction entries: { proved } below the verified checkpoint's size, each proved in
  // the signed tree by this page and decoded from its own bytes ([{ seq, targets }]), and
  // { later } past it, decoded but not provable yet; or a string saying why they could not be
  // read. One Search (kind redaction) and one InclusionProof per redaction entry, once per view.
  const REDACTION = 10;
  const MAX_REDACTION_PAGES = 10;
  const redactionsRead = new WeakMap();
  function redactionsBelow(calls, cpv) {
    if (!redactionsRead.has(calls)) redactionsRead.set(calls, readRedactions(calls, cpv));
    return redactionsRead.get(calls);
  }
  async function readRedactions(calls, cpv) {
    const found = [], later = [];
    let token = "";
    for (let page = 0; page < MAX_REDACTION_PAGES; page++) {
      const msgs = await call(calls, "Search", "SearchRequest",
        { filter: { kind: REDACTION }, page_size: 100, page_token: token }, "SearchResponse");
      for (const le of msgs.filter((m) => m.entry).map((m) => m.entry)) {
        let e;
        try { e = Pb.decode("Entry", le.leaf); } catch (_) { return "redaction entry #" + le.seq + " does not parse"; }
        if (e.seq !== BigInt(le.seq) || e.kind !== REDACTION || !e.has_redaction) continue;
        const r = { seq: e.seq, targets: e.redaction.targets };
        if (BigInt(le.seq) >= cpv.size) { later.push(r); continue; }
        const [p] = await call(calls, "InclusionProof", "InclusionProofRequest",
          { seq: le.seq, tree_size: cpv.size }, "InclusionProofResponse");
        if (!(await V.verifyInclusion(le.seq, cpv.size, await V.leafHash(le.leaf), p.proof, cpv.root))) {
          return "redaction entry #" + le.seq + " is not in the signed log";
        }
        found.push(r);
      }
      const end = msgs.find((m) => m.page_end);
      token = end && end.page_end.next_page_token;
      if (!token) return { proved: found, later };
    }
    return "more than " + MAX_REDACTION_PAGES * 100 + " redaction entries: not checked here";
  }

  // Null when a redaction entry after entry `seq` in the signed log accounts for each value it
  // no longer stores; else the entry's state: pending (one not yet in a signed checkpoint names
  // them), bad (a value removed without one), or unchecked (the redaction entries could not all
  // be read here).
  async function unexplainedRemovals(calls, seq, removed, cpv) {
    if (!removed.length) return null;
    const redactions = await redactionsBelow(calls, cpv);
    if (typeof redactions === "string") return { state: "unchecked", why: "its removed values: " + redactions };
    const left = V.uncovered(seq, removed, redactions.proved);
    if (!left.length) return null;
    if (!V.uncovered(seq, left, redactions.later).length) {
      return { state: "pending", why: "a redaction entry not yet in a signed checkpoint removed its values" };
    }
    return { state: "bad", why: left.map((r) => V.fieldName(r.field, r.index)).join(", ") +
      " no longer stored and no redaction entry removed " + (left.length === 1 ? "it" : "them") };
  }

  // Puts a row's values back into the entry's fields. The fields an entry had are its
  // commitments' (format 2: one without a value is shown as not stored, or redacted), or the
  // row's items (format 3: a kept commitment is a value a redaction removed).
  function putBack(entry, row, redacted) {
    const v3 = entry.format_version === 3;
    const byKey = new Map(row.values.filter((v) => !(v3 && v.sha256 && v.sha256.length))
      .map((v) => [v.field + ":" + v.index, v.value]));
    const had = v3 ? row.values : entry.commitments;
    for (const c of had) {
      const p = V.PERSONAL_PATHS[c.field];
      if (!p) continue;
      const [sub, name, rep] = p;
      let obj = entry;
      if (sub) { entry[sub] = entry[sub] || {}; obj = entry[sub]; }
      const key = c.field + ":" + c.index;
      const v = byKey.has(key) ? byKey.get(key)
        : "(" + (v3 || redacted.length ? "redacted" : "not stored") + ")";
      if (rep) { obj[name] = obj[name] || []; obj[name][c.index] = v; } else obj[name] = v;
    }
  }

  // Checks a LoggedEntry: its bytes and values, and its inclusion in the verified checkpoint
  // (one InclusionProof call). Returns { state, why, entry }.
  async function checkLogged(calls, le, cpv) {
    const { entry, problems, removed } = await readEntry(le.seq, le.leaf, le.values, le.redacted);
    if (problems.length) return { state: "bad", why: problems.join("; "), entry };
    if (!cpv || cpv.ok === null) return { state: "nokey", entry };
    if (!cpv.ok) return { state: "bad", why: "the checkpoint is not signed by the pinned key", entry };
    if (BigInt(le.seq) >= cpv.size) return { state: "pending", entry };
    const [p] = await call(calls, "InclusionProof", "InclusionProofRequest",
      { seq: le.seq, tree_size: cpv.size }, "InclusionProofResponse");
    const ok = await V.verifyInclusion(le.seq, cpv.size, await V.leafHash(le.leaf), p.proof, cpv.root);
    if (!ok) return { state: "bad", why: "the inclusion proof does not lead to the signed root", entry };
    const unexplained = await unexplainedRemovals(calls, le.seq, removed, cpv);
    return unexplained ? { ...unexplained, entry } : { state: "ok", entry };
  }

  // ---- rendering entries ----
  function fieldsOf(obj, depth) {
    const dl = h("dl", { class: "fields" });
    for (const [k, v] of Object.entries(obj)) {
      if (k.startsWith("has_")) continue;
      if (v === null || v === "" || v === false || v === 0 || v === 0n) continue;
      if (Array.isArray(v) && v.length === 0) continue;
      if (v instanceof Uint8Array && v.length === 0) continue;
      let shown;
      if (k === "kind") shown = kindLabel(v);
      else if (k === "operation") shown = opLabel(v);
      else if (k === "purpose" && typeof v === "number") shown = purposeLabel(v);
      else if (k === "auth_method") shown = Pb.ENUMS.AuthMethod[v];
      else if (k === "field" && typeof v === "number") shown = Pb.ENUMS.PersonalField[v] || v;
      else if (k.endsWith("unix_nanos")) shown = time(v) + " (" + v + ")";
      else if (v instanceof Uint8Array) shown = h("span", { class: "mono" }, V.hex(v));
      else if (Array.isArray(v)) shown = v.every((x) => typeof x !== "object") ? v.join(", ")
        : h("ol", {}, v.map((x) => h("li", {}, x instanceof Uint8Array ? V.hex(x) : fieldsOf(x, depth + 1))));
      else if (typeof v === "object") shown = fieldsOf(v, depth + 1);
      else shown = String(v);
      dl.append(h("dt", {}, k), h("dd", {}, shown));
    }
    return dl;
  }
  const seqLink = (seq) => h("a", { href: "#entry/" + seq }, "#" + seq);

  // ---- search ----
  let searchState = null;
  for (const [id, e] of [["f-operation", Pb.ENUMS.Operation], ["f-kind", Pb.ENUMS.EntryKind]]) {
    for (const [n, label] of Object.entries(e)) {
      $(id).append(h("option", { value: n }, Number(n) === 0 ? "any" : label));
    }
  }
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    try {
      const f = {
        actor: $("f-actor").value.trim(), subject: $("f-subject").value.trim(),
        record: $("f-record").value.trim(), recipient: $("f-recipient").value.trim(),
        operation: Number($("f-operation").value), kind: Number($("f-kind").value),
        route: $("f-route").value.trim(), case_reference: $("f-case").value.trim(),
        purpose: $("f-purpose").value.trim(),
        since_unix_nanos: nanos($("f-since")), until_unix_nanos: nanos($("f-until")),
      };
      searchState = { filter: f, page_size: Number($("f-size").value) || 20, pages: [""] };
      searchPage("");
    } catch (e) { showError(e); }
  });

  async function searchPage(token) {
    clearError();
    const out = $("search-out");
    out.replaceChildren(h("p", {}, "Searching…"));
    const calls = [];
    try {
      const msgs = await call(calls, "Search", "SearchRequest",
        { filter: searchState.filter, page_size: searchState.page_size, page_token: token }, "SearchResponse");
      const entries = msgs.filter((m) => m.entry).map((m) => m.entry);
      const end = msgs.find((m) => m.page_end);
      const cpv = entries.length ? await verifiedCheckpoint(calls) : null;
      const rows = [];
      const tbody = h("tbody");
      const table = h("table", { class: "cards", id: "search-results" },
        h("thead", {}, h("tr", {}, ["Seq", "Time", "Kind", "Operation", "Actor", "Subjects", "Route", "Status", "Proof"]
          .map((t) => h("th", { scope: "col" }, t)))), tbody);
      for (const le of entries) {
        const cell = h("td", { "data-label": "Proof" }, mark({ state: "busy" }));
        const tr = h("tr", { "data-seq": String(le.seq) });
        tbody.append(tr);
        rows.push({ le, tr, cell });
      }
      out.replaceChildren(
        h("p", {}, entries.length + " entr" + (entries.length === 1 ? "y" : "ies") + " on this page."),
        cpStatusLine(cpv), h("div", { class: "scroll" }, table));
      const nav = h("p", { class: "no-print" });
      if (searchState.pages.length > 1) {
        nav.append(h("button", { type: "button", class: "secondary", onclick: () => {
          searchState.pages.pop();
          searchPage(searchState.pages[searchState.pages.length - 1]);
        } }, "Previous page"), " ");
      }
      if (end && end.page_end.next_page_token) {
        nav.append(h("button", { type: "button", id: "next-page", onclick: () => {
          searchState.pages.push(end.page_end.next_page_token);
          searchPage(end.page_end.next_page_token);
        } }, "Next page"));
      }
      out.append(nav);
      for (const r of rows) {
        const res = await checkLogged(calls, r.le, cpv);
        const e = res.entry || {};
        const actor = e.actor || {};
        r.tr.replaceChildren(
          h("td", { "data-label": "Seq" }, seqLink(r.le.seq)),
          h("td", { "data-label": "Time" }, time(e.time_unix_nanos)),
          h("td", { "data-label": "Kind" }, e.kind !== undefined ? kindLabel(e.kind) : ""),
          h("td", { "data-label": "Operation" }, opLabel(e.operation)),
          h("td", { "data-label": "Actor" }, actor.id || ""),
          h("td", { "data-label": "Subjects" }, (e.subject_ids || []).concat((e.outcome || {}).returned_subject_ids || []).join(", ")),
          h("td", { "data-label": "Route" }, (e.request || {}).route || ""),
          h("td", { "data-label": "Status" }, (e.outcome || {}).status || ""),
          h("td", { "data-label": "Proof" }, mark(res)));
      }
      out.append(loggedLine(calls));
    } catch (e) {
      out.replaceChildren(calls.length ? loggedLine(calls) : "");
      showError(e);
    }
  }

  function cpStatusLine(cpv) {
    if (!cpv) return "";
    if (cpv.ok === null) return h("p", { class: "pending" }, "Checkpoint of " + cpv.cp.size + " entries: not checked (no verifier key pinned).");
    if (!cpv.ok) return h("p", { class: "bad" }, "✘ The latest checkpoint is not signed by the pinned key: " + cpv.why);
    return h("p", {}, h("span", { class: "ok" }, "✔"), " Checked against the checkpoint of " + cpv.size +
      " entries signed by " + state.key.name + ".");
  }

  // ---- entry detail ----
  $("entry-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = "#entry/" + $("e-seq").value;
  });
  async function showEntry(seq) {
    clearError();
    const out = $("entry-out");
    out.replaceChildren(h("p", {}, "Reading entry " + seq + "…"));
    const calls = [];
    try {
      const [r] = await call(calls, "GetEntry", "GetEntryRequest", { seq, tree_size: 0 }, "GetEntryResponse");
      const le = r.entry;
      const { entry, problems, removed } = await readEntry(le.seq, le.leaf, le.values, le.redacted);
      const lh = await V.leafHash(le.leaf);
      let cpv = { ok: null, why: "no verifier key pinned" };
      if (state.key) cpv = await V.verifyCheckpoint(r.checkpoint, state.key);
      let state_;
      if (problems.length) state_ = { state: "bad", why: problems.join("; ") };
      else if (cpv.ok === null) state_ = { state: "nokey" };
      else if (!cpv.ok) state_ = { state: "bad", why: cpv.why };
      else if (!(await V.verifyInclusion(le.seq, cpv.size, lh, r.inclusion_proof, cpv.root))) {
        state_ = { state: "bad", why: "the inclusion proof does not lead to the signed root" };
      } else {
        state_ = (await unexplainedRemovals(calls, le.seq, removed, cpv)) || { state: "ok" };
      }
      let row = { values: [], seed: new Uint8Array(0) };
      try { if (le.values.length) row = Pb.decode("EntryValues", le.values); } catch (_) { /* a problem above */ }
      const values = row.values;
      out.replaceChildren(
        h("h3", {}, "Entry #" + le.seq + " ", mark(state_)),
        h("p", { class: "note" }, "Fields read by this page from the stored bytes, with each personal value checked against its commitment (format 2) or, with every other value of the entry, against the leaf's values_root (format 3)."),
        entry ? fieldsOf(entry, 0) : "",
        removed.length ? h("p", {}, "Removed values: " + le.redacted.join(", ") + ". Their commitments "
          + "are checked, and so is the redaction entry that removed each: one in the signed log, after "
          + "this entry, naming it.") : "",
        h("h3", {}, "Stored bytes (the Merkle leaf, " + le.leaf.length + " bytes)"),
        h("pre", { class: "hex", id: "raw-leaf" }, V.hex(le.leaf)),
        h("p", {}, "Leaf hash SHA-256(0x00 ‖ leaf): ", h("code", {}, V.hex(lh))),
        ...(values.length ? [h("h3", {}, "Personal values (stored beside the leaf)"),
          entry && entry.values_root && entry.values_root.length
            ? h("p", {}, "values_root (format 3, in the leaf): ", h("code", {}, V.hex(entry.values_root)),
              row.seed.length ? [h("br"), "Entry seed (each salt derives from it): ", h("code", {}, V.hex(row.seed))]
                : [h("br"), "No entry seed (removed by a redaction): each salt is stored."]) : "",
          h("div", { class: "scroll" }, h("table", { class: "cards", id: "entry-values" },
            h("thead", {}, h("tr", {}, ["Field", "Index", "Value", "Salt"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, values.map((v) => {
              const kept = v.sha256 && v.sha256.length;
              return h("tr", {},
                h("td", { "data-label": "Field" }, Pb.ENUMS.PersonalField[v.field] || v.field),
                h("td", { "data-label": "Index" }, v.index),
                h("td", { "data-label": "Value" }, kept ? ["(redacted; its commitment is kept: ",
                  h("span", { class: "mono" }, V.hex(v.sha256)), ")"] : v.value),
                h("td", { "data-label": "Salt", class: "mono" }, v.salt.length ? V.hex(v.salt)
                  : kept ? "" : "derived from the seed"));
            }))))] : []),
        h("h3", {}, "Inclusion proof (" + r.inclusion_proof.length + " hashes, leaf sibling first)"),
        h("ol", { class: "mono" }, r.inclusion_proof.map((p) => h("li", {}, V.hex(p)))),
        h("h3", {}, "Checkpoint"),
        h("pre", {}, r.checkpoint.note),
        cpv.ok ? h("p", {}, h("span", { class: "ok" }, "✔"), " signed by the pinned key; size " + cpv.size + ", root " + V.hex(cpv.root))
          : h("p", { class: cpv.ok === null ? "pending" : "bad" }, cpv.why),
        loggedLine(calls));
    } catch (e) {
      out.replaceChildren(calls.length ? loggedLine(calls) : "");
      showError(e);
    }
  }

  // ---- subject report ----
  $("subject-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    const out = $("subject-out");
    const calls = [];
    out.replaceChildren(h("p", {}, "Making the report…"));
    try {
      const subject = $("s-subject").value.trim();
      const since = nanos($("s-since")), until = nanos($("s-until"));
      const msgs = await call(calls, "SubjectReport", "SubjectReportRequest",
        { subject, since_unix_nanos: since, until_unix_nanos: until }, "SubjectReportResponse");
      const events = msgs.filter((m) => m.event).map((m) => m.event);
      const summary = (msgs.find((m) => m.summary) || {}).summary;
      const cpv = events.length ? await verifiedCheckpoint(calls) : null;
      const items = events.map((ev_) => {
        const proof = h("span", {}, mark({ state: "busy" }));
        const a = ev_.actor || {};
        const j = ev_.justification || {};
        const li = h("li", { class: [opLabel(ev_.operation), kindLabel(ev_.kind)].join(" "), "data-seq": String(ev_.seq) },
          h("p", {}, h("strong", {}, time(ev_.time_unix_nanos)), " · ", kindLabel(ev_.kind),
            ev_.operation ? " · " + opLabel(ev_.operation) : "", " · entry ", seqLink(ev_.seq), " ", proof),
          h("dl", { class: "fields" },
            h("dt", {}, "Who"), h("dd", {}, [a.id, a.display_name && "(" + a.display_name + ")",
              a.roles && a.roles.length ? "roles: " + a.roles.join(", ") : ""].filter(Boolean).join(" ") || "—"),
            h("dt", {}, "Why"), h("dd", {}, [j.purpose_code, j.text && "“" + j.text + "”",
              j.case_reference && "case " + j.case_reference].filter(Boolean).join(" · ") || "—"),
            ev_.recipients.length ? [h("dt", {}, "To whom"), h("dd", {}, ev_.recipients.join(", "))] : "",
            ev_.record_ids.length ? [h("dt", {}, "Records"), h("dd", {}, ev_.record_ids.join(", "))] : "",
            h("dt", {}, "How"), h("dd", {}, [ev_.method, ev_.route && "route " + ev_.route,
              ev_.asked && "asked for", ev_.returned && "returned to them",
              ev_.status && "status " + ev_.status, ev_.denial_reason && "refused: " + ev_.denial_reason]
              .filter(Boolean).join(" · ")),
            ev_.redacted.length ? [h("dt", {}, "Redacted"), h("dd", {}, ev_.redacted.join(", "))] : ""));
        return { ev: ev_, li, proof };
      });
      const head = h("div", { class: "report-head" },
        h("p", {}, h("strong", {}, "Subject access report (Data Protection Act 2018, s45)")),
        h("p", {}, "Data subject: " + subject + (since ? " · from " + time(since) : "") + (until ? " · before " + time(until) : "")),
        h("p", {}, "Prepared " + new Date().toISOString() + " under purpose " + purposeLabel(state.purpose) +
          ", case " + state.caseRef + "."));
      out.replaceChildren(head,
        h("p", { class: "no-print" }, h("button", { type: "button", id: "print-report", onclick: () => window.print() }, "Print or save as PDF")),
        summary ? h("dl", { class: "fields", id: "subject-summary" },
          h("dt", {}, "Events"), h("dd", {}, String(summary.events)),
          h("dt", {}, "By operation"), h("dd", {}, summary.by_operation.map((o) => opLabel(o.operation) + " " + o.count).join(", ") || "—"),
          h("dt", {}, "Who"), h("dd", {}, summary.actors.join(", ") || "—"),
          h("dt", {}, "To whom"), h("dd", {}, summary.recipients.join(", ") || "—")) : "",
        cpStatusLine(cpv),
        h("h3", {}, "Timeline"),
        h("ol", { class: "timeline", id: "subject-timeline" }, items.map((i) => i.li)));
      for (const it of items) {
        it.proof.replaceChildren(mark(await checkEvent(calls, it.ev, cpv)));
      }
      out.append(h("p", { class: "note" }, "✔ on an event: its stored bytes are in the signed log and its time, kind and operation are read from them. Names and reasons are checked against their commitments in the entry's own view."),
        loggedLine(calls));
    } catch (e) {
      out.replaceChildren(calls.length ? loggedLine(calls) : "");
      showError(e);
    }
  });

  async function checkEvent(calls, ev, cpv) {
    let entry;
    try { entry = Pb.decode("Entry", ev.leaf); } catch (e) { return { state: "bad", why: "the stored bytes do not parse" }; }
    if (entry.seq !== ev.seq || entry.kind !== ev.kind ||
        (entry.operation !== 0 && entry.operation !== ev.operation) ||
        entry.time_unix_nanos !== ev.time_unix_nanos) {
      return { state: "bad", why: "the report's fields differ from the stored bytes" };
    }
    return checkLogged(calls, { seq: ev.seq, leaf: ev.leaf, values: null, redacted: [] }, cpv);
  }

  // ---- actor report ----
  $("actor-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    const out = $("actor-out");
    const calls = [];
    try {
      const [r] = await call(calls, "ActorReport", "ActorReportRequest", {
        actor: $("a-actor").value.trim(), since_unix_nanos: nanos($("a-since")), until_unix_nanos: nanos($("a-until")),
      }, "ActorReportResponse");
      const table = (head, rows) => h("div", { class: "scroll" }, h("table", { class: "cards" },
        h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows.map((row) => h("tr", {}, row.map((c, i) => h("td", { "data-label": head[i] }, String(c))))))));
      out.replaceChildren(
        h("dl", { class: "fields", id: "actor-summary" },
          h("dt", {}, "Actor"), h("dd", {}, r.actor),
          h("dt", {}, "Entries"), h("dd", {}, String(r.entries)),
          h("dt", {}, "Requests"), h("dd", {}, String(r.requests)),
          h("dt", {}, "With a justification"), h("dd", {}, String(r.with_justification)),
          h("dt", {}, "With a case reference"), h("dd", {}, String(r.with_case_reference)),
          h("dt", {}, "Refused"), h("dd", {}, String(r.denials)),
          h("dt", {}, "Alerts (misuse found)"), h("dd", {}, r.alerts + " (" + r.alerts_misuse + ")"),
          h("dt", {}, "Redacted subject ids"), h("dd", {}, String(r.redacted_subject_ids))),
        h("h3", {}, "By operation"), table(["Operation", "Requests"], r.by_operation.map((o) => [opLabel(o.operation), o.count])),
        h("h3", {}, "Data subjects"), table(["Subject", "Requests", "Asked", "Returned"],
          r.subjects.map((s) => [s.subject, s.requests, s.asked, s.returned])),
        r.denials_by_reason.length ? [h("h3", {}, "Refusals"), table(["Reason", "Count"], r.denials_by_reason.map((d) => [d.reason, d.count]))] : "",
        loggedLine(calls));
    } catch (e) {
      out.replaceChildren(calls.length ? loggedLine(calls) : "");
      showError(e);
    }
  });

  // ---- alerts ----
  let alertsState = null;
  $("alerts-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    alertsState = { rule: $("al-rule").value.trim(), unreviewed_only: $("al-unrev").checked,
      from_seq: BigInt($("al-from").value || 0), page_size: Number($("al-size").value) || 20 };
    alertsPage("");
  });
  async function alertsPage(token) {
    clearError();
    const out = $("alerts-out");
    const calls = [];
    try {
      const msgs = await call(calls, "ListAlerts", "ListAlertsRequest", { ...alertsState, page_token: token }, "ListAlertsResponse");
      const alerts = msgs.filter((m) => m.alert).map((m) => m.alert);
      const end = msgs.find((m) => m.page_end);
      const cpv = alerts.length ? await verifiedCheckpoint(calls) : null;
      out.replaceChildren(h("p", {}, alerts.length + " alert" + (alerts.length === 1 ? "" : "s") + " on this page."), cpStatusLine(cpv));
      for (const item of alerts) {
        const res = await checkLogged(calls, item.alert, cpv);
        const e = res.entry || {};
        const al = e.alert || {};
        const reviews = [];
        for (const rv of item.reviews) {
          const rr = await readEntry(rv.seq, rv.leaf, rv.values, rv.redacted);
          const re = rr.entry || {};
          reviews.push(h("li", {}, "#" + rv.seq + " " + time(re.time_unix_nanos) + ": " +
            ((re.alert_review || {}).outcome || "?") + " by " + ((re.actor || {}).id || "?"),
            rr.problems.length ? h("span", { class: "bad" }, " ✘ " + rr.problems.join("; ")) : ""));
        }
        const seq = item.alert.seq;
        const select = h("select", { id: "outcome-" + seq }, ["justified", "misuse", "false-positive", "referred"].map((o) => h("option", { value: o }, o)));
        const result = h("span", { "aria-live": "polite" });
        out.append(h("div", { class: "alert-item", "data-seq": String(seq) },
          h("p", {}, h("strong", {}, (al.name || al.rule) + " "), "alert ", seqLink(seq), " · ", time(e.time_unix_nanos), " ", mark(res)),
          h("dl", { class: "fields" },
            h("dt", {}, "Actor"), h("dd", {}, (e.actor || {}).id || "—"),
            h("dt", {}, "Subjects"), h("dd", {}, (e.subject_ids || []).join(", ") || "—"),
            h("dt", {}, "Detail"), h("dd", {}, al.detail || "—"),
            h("dt", {}, "Sighting"), h("dd", {}, al.sighting_seq ? seqLink(al.sighting_seq) : "—"),
            h("dt", {}, "Reviews"), h("dd", {}, reviews.length ? h("ol", {}, reviews) : "unreviewed")),
          h("p", { class: "no-print" }, h("label", { for: "outcome-" + seq }, "Finding "), select, " ",
            h("button", { type: "button", onclick: () => review(seq, select.value, result) }, "Record the review"), " ", result)));
      }
      if (end && end.page_end.next_page_token) {
        out.append(h("p", {}, h("button", { type: "button", onclick: () => alertsPage(end.page_end.next_page_token) }, "Next page")));
      }
      out.append(loggedLine(calls));
    } catch (e) {
      out.replaceChildren(calls.length ? loggedLine(calls) : "");
      showError(e);
    }
  }
  async function review(seq, outcome, result) {
    clearError();
    const calls = [];
    try {
      const [r] = await call(calls, "ReviewAlert", "ReviewAlertRequest", { alert_seq: seq, outcome }, "ReviewAlertResponse");
      result.replaceChildren("Recorded as entry ", seqLink(r.review_seq), " (covered by the checkpoint of " + r.checkpoint_size + ").");
    } catch (e) { showError(e); }
  }

  // ---- log status ----
  $("status-refresh").addEventListener("click", async () => {
    clearError();
    const out = $("status-out");
    const calls = [];
    try {
      const cpv = await verifiedCheckpoint(calls);
      const cp = cpv.cp;
      const own = calls[calls.length - 1].seq;
      const lag = own !== null && own !== undefined ? own - BigInt(cp.size) : null;
      const others = cpv.others || [];
      out.replaceChildren(
        h("dl", { class: "fields", id: "status-fields" },
          h("dt", {}, "Signature"), h("dd", {}, cpv.ok === null ? h("span", { class: "pending" }, "? not checked: no key pinned")
            : cpv.ok ? h("span", { class: "ok", "data-proof": "ok" }, "✔ signed by the pinned key " + state.key.name)
              : h("span", { class: "bad", "data-proof": "bad" }, "✘ " + cpv.why)),
          h("dt", {}, "Origin"), h("dd", {}, cpv.ok ? cpv.origin : cp.origin),
          h("dt", {}, "Size"), h("dd", {}, String(cpv.ok ? cpv.size : cp.size) + " entries"),
          h("dt", {}, "Root hash"), h("dd", { class: "mono" }, V.hex(cpv.ok ? cpv.root : cp.root_hash)),
          h("dt", {}, "Lag"), h("dd", {}, lag === null ? "unknown" : lag + " entr" + (lag === 1n ? "y" : "ies") +
            " written before this request (its own audit entry is #" + own + ") are not yet covered by this checkpoint"),
          h("dt", {}, "Other signatures"), h("dd", {}, others.length ? h("ul", {}, others.map((o) => h("li", {},
            o.name + " (key id " + o.keyId + ")" + (o.cosignedAt !== undefined ? ", witness cosignature at " +
              new Date(Number(o.cosignedAt) * 1000).toISOString() : "") + " — not checked: this page pins the log's key only")))
            : "none (no witness cosignatures on this checkpoint)")),
        h("h3", {}, "The signed note"), h("pre", {}, cp.note),
        loggedLine(calls));
    } catch (e) {
      out.replaceChildren(calls.length ? loggedLine(calls) : "");
      showError(e);
    }
  });

  // ---- about: the verifier's own checks (run by the browser test with the vectors) ----
  function selfTestSummary() {
    const out = $("selftest-out");
    if (!window.S62SelfTest) return;
    const r = window.S62SelfTest;
    out.replaceChildren(h("p", {}, "Self-test against the published vectors: " +
      r.filter((x) => x.ok).length + " of " + r.length + " passed."));
  }

  // ---- start ----
  window.addEventListener("hashchange", route);
  loadKey().then(() => { setBanner(); route(); });
  window.S62Console = { state };
})();
