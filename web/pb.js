// s62 auditor's console: Protocol Buffers (proto3) wire format and gRPC-Web, hand-written.
//
// Job: encode the AuditQuery requests, decode its responses and the log's own leaves, and make
// gRPC-Web calls (binary, application/grpc-web+proto) to the page's own origin. The message
// shapes below mirror proto/s62/query/v1/query.proto and proto/s62/v1/entry.proto by field number;
// unknown fields are skipped, as proto3 requires. 64-bit integers are BigInt.
// No DOM, no verification here: see verify.js and console.js.
"use strict";

(function () {
  // Field tables: number -> [name, type, repeated?, message name]. Types: string, bytes, uint64,
  // int64, uint32, enum, bool, msg.
  const S = {
    // s62.v1 (entry.proto)
    Actor: { 1: ["id", "string"], 2: ["display_name", "string"], 3: ["roles", "string", 1],
      4: ["source_address", "string"], 5: ["auth_method", "enum"] },
    Justification: { 1: ["purpose_code", "string"], 2: ["text", "string"],
      3: ["case_reference", "string"] },
    Request: { 1: ["method", "string"], 2: ["path", "string"], 3: ["route", "string"],
      4: ["request_id", "string"], 5: ["body_sha256", "bytes"], 6: ["body_bytes", "uint64"],
      7: ["client_request_id", "string"], 8: ["break_glass", "bool"] },
    Outcome: { 1: ["status", "uint32"], 2: ["returned_subject_ids", "string", 1],
      3: ["returned_record_ids", "string", 1], 4: ["response_sha256", "bytes"],
      5: ["response_bytes", "uint64"], 6: ["streamed", "bool"], 7: ["error", "string"] },
    Denial: { 1: ["reason", "string"], 2: ["detail", "string"] },
    AuditQuery: { 1: ["purpose", "enum"], 2: ["case_reference", "string"], 3: ["call", "string"],
      4: ["filter_json", "string"], 5: ["results_returned", "uint64"], 6: ["completed", "bool"],
      7: ["results_committed", "uint64"], 8: ["results_sha256", "bytes"] },
    Admin: { 1: ["action", "string"], 2: ["detail", "string"], 3: ["new_verifier_key", "string"] },
    FieldCommitment: { 1: ["field", "enum"], 2: ["index", "uint32"], 3: ["sha256", "bytes"] },
    FieldValue: { 1: ["field", "enum"], 2: ["index", "uint32"], 3: ["salt", "bytes"],
      4: ["value", "string"], 5: ["sha256", "bytes"] },
    EntryValues: { 1: ["values", "msg", 1, "FieldValue"], 2: ["seed", "bytes"] },
    RedactionTarget: { 1: ["from_seq", "uint64"], 2: ["to_seq", "uint64"],
      3: ["fields", "enum", 1], 4: ["index", "uint32"] },
    Redaction: { 1: ["targets", "msg", 1, "RedactionTarget"], 2: ["reason", "string"],
      3: ["detail", "string"], 4: ["purpose", "enum"] },
    ErasureCheck: { 1: ["erasure_seq", "uint64"], 2: ["result", "string"],
      3: ["probe_status", "uint32"], 4: ["attempt", "uint32"], 5: ["probe_seq", "uint64"] },
    Alert: { 1: ["rule", "string"], 2: ["sighting_seq", "uint64"], 3: ["related_seq", "uint64"],
      4: ["detail", "string"], 5: ["name", "string"] },
    AlertReview: { 1: ["alert_seq", "uint64"], 2: ["outcome", "string"] },
    Entry: { 1: ["format_version", "uint32"], 2: ["seq", "uint64"], 3: ["time_unix_nanos", "int64"],
      4: ["kind", "enum"], 5: ["operation", "enum"], 6: ["prev_leaf_hash", "bytes"],
      7: ["actor", "msg", 0, "Actor"], 8: ["justification", "msg", 0, "Justification"],
      9: ["recipients", "string", 1], 10: ["subject_ids", "string", 1],
      11: ["record_ids", "string", 1], 12: ["request", "msg", 0, "Request"],
      13: ["outcome", "msg", 0, "Outcome"], 14: ["answers_seq", "uint64"],
      15: ["denial", "msg", 0, "Denial"], 16: ["audit_query", "msg", 0, "AuditQuery"],
      17: ["admin", "msg", 0, "Admin"], 18: ["checkpoint_follows", "bool"],
      30: ["commitments", "msg", 1, "FieldCommitment"], 31: ["subject_tags", "bytes", 1],
      32: ["redaction", "msg", 0, "Redaction"], 33: ["erasure_check", "msg", 0, "ErasureCheck"],
      34: ["alert", "msg", 0, "Alert"], 35: ["alert_review", "msg", 0, "AlertReview"],
      36: ["values_root", "bytes"] },
    // s62.query.v1 (query.proto)
    CallContext: { 1: ["purpose", "enum"], 2: ["case_reference", "string"] },
    Filter: { 1: ["actor", "string"], 2: ["subject", "string"], 3: ["record", "string"],
      4: ["operation", "enum"], 5: ["kind", "enum"], 6: ["route", "string"],
      7: ["recipient", "string"], 8: ["since_unix_nanos", "int64"],
      9: ["until_unix_nanos", "int64"], 10: ["case_reference", "string"],
      11: ["purpose", "string"] },
    LoggedEntry: { 1: ["seq", "uint64"], 2: ["leaf", "bytes"], 3: ["entry", "msg", 0, "Entry"],
      4: ["values", "bytes"], 5: ["redacted", "string", 1] },
    Checkpoint: { 1: ["note", "string"], 2: ["origin", "string"], 3: ["size", "uint64"],
      4: ["root_hash", "bytes"] },
    SearchRequest: { 1: ["context", "msg", 0, "CallContext"], 2: ["filter", "msg", 0, "Filter"],
      3: ["page_size", "uint32"], 4: ["page_token", "string"] },
    PageEnd: { 1: ["next_page_token", "string"], 2: ["returned", "uint64"] },
    SearchResponse: { 1: ["entry", "msg", 0, "LoggedEntry"], 2: ["page_end", "msg", 0, "PageEnd"] },
    GetEntryRequest: { 1: ["context", "msg", 0, "CallContext"], 2: ["seq", "uint64"],
      3: ["tree_size", "uint64"] },
    GetEntryResponse: { 1: ["entry", "msg", 0, "LoggedEntry"],
      2: ["checkpoint", "msg", 0, "Checkpoint"], 3: ["inclusion_proof", "bytes", 1] },
    LatestCheckpointRequest: { 1: ["context", "msg", 0, "CallContext"] },
    CheckpointResponse: { 1: ["checkpoint", "msg", 0, "Checkpoint"],
      2: ["verifier_key", "string"] },
    InclusionProofRequest: { 1: ["context", "msg", 0, "CallContext"], 2: ["seq", "uint64"],
      3: ["tree_size", "uint64"] },
    InclusionProofResponse: { 1: ["seq", "uint64"], 2: ["tree_size", "uint64"],
      3: ["leaf_hash", "bytes"], 4: ["proof", "bytes", 1] },
    SubjectReportRequest: { 1: ["context", "msg", 0, "CallContext"], 2: ["subject", "string"],
      3: ["since_unix_nanos", "int64"], 4: ["until_unix_nanos", "int64"] },
    SubjectEvent: { 1: ["seq", "uint64"], 2: ["time_unix_nanos", "int64"], 3: ["kind", "enum"],
      4: ["operation", "enum"], 5: ["actor", "msg", 0, "Actor"],
      6: ["justification", "msg", 0, "Justification"], 7: ["justification_seq", "uint64"],
      8: ["recipients", "string", 1], 9: ["record_ids", "string", 1], 10: ["asked", "bool"],
      11: ["returned", "bool"], 12: ["method", "string"], 13: ["route", "string"],
      14: ["status", "uint32"], 15: ["denial_reason", "string"], 16: ["answers_seq", "uint64"],
      17: ["leaf", "bytes"], 18: ["redacted", "string", 1] },
    OperationCount: { 1: ["operation", "enum"], 2: ["count", "uint64"] },
    SubjectSummary: { 1: ["events", "uint64"], 2: ["by_operation", "msg", 1, "OperationCount"],
      3: ["actors", "string", 1], 4: ["recipients", "string", 1] },
    SubjectReportResponse: { 1: ["event", "msg", 0, "SubjectEvent"],
      2: ["summary", "msg", 0, "SubjectSummary"] },
    ActorReportRequest: { 1: ["context", "msg", 0, "CallContext"], 2: ["actor", "string"],
      3: ["since_unix_nanos", "int64"], 4: ["until_unix_nanos", "int64"] },
    SubjectCount: { 1: ["subject", "string"], 2: ["requests", "uint64"], 3: ["asked", "uint64"],
      4: ["returned", "uint64"] },
    ReasonCount: { 1: ["reason", "string"], 2: ["count", "uint64"] },
    ActorReportResponse: { 1: ["actor", "string"], 2: ["entries", "uint64"],
      3: ["requests", "uint64"], 4: ["by_operation", "msg", 1, "OperationCount"],
      5: ["with_justification", "uint64"], 6: ["with_case_reference", "uint64"],
      7: ["subjects", "msg", 1, "SubjectCount"], 8: ["denials", "uint64"],
      9: ["denials_by_reason", "msg", 1, "ReasonCount"], 10: ["alerts", "uint64"],
      11: ["redacted_subject_ids", "uint64"], 12: ["alerts_misuse", "uint64"] },
    ListAlertsRequest: { 1: ["context", "msg", 0, "CallContext"], 2: ["rule", "string"],
      3: ["unreviewed_only", "bool"], 4: ["from_seq", "uint64"], 5: ["page_size", "uint32"],
      6: ["page_token", "string"] },
    AlertItem: { 1: ["alert", "msg", 0, "LoggedEntry"], 2: ["reviews", "msg", 1, "LoggedEntry"] },
    ListAlertsResponse: { 1: ["alert", "msg", 0, "AlertItem"], 2: ["page_end", "msg", 0, "PageEnd"] },
    ReviewAlertRequest: { 1: ["context", "msg", 0, "CallContext"], 2: ["alert_seq", "uint64"],
      3: ["outcome", "string"] },
    ReviewAlertResponse: { 1: ["review_seq", "uint64"], 2: ["checkpoint_size", "uint64"] },
  };

  const ENUMS = {
    EntryKind: { 0: "unspecified", 1: "intent", 2: "outcome", 3: "denied", 4: "audit-query",
      5: "admin", 10: "redaction", 11: "erasure-check", 12: "alert", 13: "alert-review" },
    Operation: { 0: "", 1: "collection", 2: "alteration", 3: "consultation", 4: "disclosure",
      5: "combination", 6: "erasure" },
    AuthMethod: { 0: "unspecified", 1: "none", 2: "mTLS", 3: "trusted-header", 4: "local" },
    AuditPurpose: { 0: "unspecified", 1: "lawfulness", 2: "self-monitoring",
      3: "integrity-and-security", 4: "criminal-proceedings", 5: "commissioner-request" },
    PersonalField: { 1: "actor_id", 2: "actor_name", 3: "actor_role", 4: "actor_address",
      5: "subject_id", 6: "record_id", 7: "recipient", 8: "justification_text",
      9: "case_reference", 10: "request_path", 11: "returned_subject_id",
      12: "returned_record_id", 13: "audit_filter", 14: "audit_case_reference" },
  };

  const WIDE = new Set(["uint64", "int64"]);

  function defaultOf(type) {
    if (type === "string") return "";
    if (type === "bytes") return new Uint8Array(0);
    if (WIDE.has(type)) return 0n;
    if (type === "bool") return false;
    if (type === "msg") return null;
    return 0;
  }

  // ---- reading ----
  class Reader {
    constructor(bytes) { this.b = bytes; this.p = 0; }
    done() { return this.p >= this.b.length; }
    varint() {
      let v = 0n, shift = 0n;
      for (let i = 0; i < 10; i++) {
        if (this.p >= this.b.length) throw new Error("truncated varint");
        const byte = this.b[this.p++];
        v |= BigInt(byte & 0x7f) << shift;
        if ((byte & 0x80) === 0) return v;
        shift += 7n;
      }
      throw new Error("varint too long");
    }
    bytes() {
      const n = Number(this.varint());
      if (n > this.b.length - this.p) throw new Error("truncated length-delimited field");
      const out = this.b.subarray(this.p, this.p + n);
      this.p += n;
      return out;
    }
    skip(wire) {
      if (wire === 0) this.varint();
      else if (wire === 1) this.take(8);
      else if (wire === 2) this.bytes();
      else if (wire === 5) this.take(4);
      else throw new Error("unsupported wire type " + wire);
    }
    take(n) {
      if (n > this.b.length - this.p) throw new Error("truncated fixed field");
      this.p += n;
    }
  }

  function scalar(type, v) {
    if (type === "int64") return BigInt.asIntN(64, v);
    if (type === "uint64") return v;
    if (type === "bool") return v !== 0n;
    if (type === "enum") return Number(BigInt.asIntN(32, v));
    return Number(BigInt.asUintN(32, v));
  }

  const utf8 = new TextDecoder("utf-8", { fatal: true });

  // Decodes `bytes` as message `name`: every known field present (defaults when absent).
  function decode(name, bytes) {
    const table = S[name];
    if (!table) throw new Error("unknown message " + name);
    const out = {};
    for (const [, [fname, type, rep]] of Object.entries(table)) {
      out[fname] = rep ? [] : defaultOf(type);
    }
    const r = new Reader(bytes);
    while (!r.done()) {
      const key = r.varint();
      const num = Number(key >> 3n), wire = Number(key & 7n);
      if (num === 0) throw new Error("field number 0");
      const f = table[num];
      if (!f) { r.skip(wire); continue; }
      const [fname, type, rep, sub] = f;
      let vals;
      if (type === "string" || type === "bytes" || type === "msg") {
        if (wire !== 2) throw new Error(fname + ": wrong wire type");
        const raw = r.bytes();
        vals = [type === "string" ? utf8.decode(raw) : type === "msg" ? decode(sub, raw)
          : raw.slice()];
      } else if (wire === 0) {
        vals = [scalar(type, r.varint())];
      } else if (wire === 2 && rep) { // packed
        const inner = new Reader(r.bytes());
        vals = [];
        while (!inner.done()) vals.push(scalar(type, inner.varint()));
      } else {
        throw new Error(fname + ": wrong wire type");
      }
      if (rep) out[fname].push(...vals);
      else if (type === "msg" && out[fname]) out[fname] = vals[0]; // last one wins (no merge)
      else out[fname] = vals[vals.length - 1];
      out["has_" + fname] = true;
    }
    return out;
  }

  // ---- writing ----
  class Writer {
    constructor() { this.parts = []; this.n = 0; }
    raw(u8) { this.parts.push(u8); this.n += u8.length; }
    varint(v) {
      v = BigInt.asUintN(64, BigInt(v));
      const out = [];
      while (v > 0x7fn) { out.push(Number(v & 0x7fn) | 0x80); v >>= 7n; }
      out.push(Number(v));
      this.raw(Uint8Array.from(out));
    }
    finish() {
      const out = new Uint8Array(this.n);
      let p = 0;
      for (const part of this.parts) { out.set(part, p); p += part.length; }
      return out;
    }
  }

  const utf8e = new TextEncoder();

  // Encodes `obj` as message `name`, leaving out defaults (proto3).
  function encode(name, obj) {
    const table = S[name];
    if (!table) throw new Error("unknown message " + name);
    const w = new Writer();
    const nums = Object.keys(table).map(Number).sort((a, b) => a - b);
    for (const num of nums) {
      const [fname, type, rep, sub] = table[num];
      const v = obj[fname];
      if (v === undefined || v === null) continue;
      for (const x of rep ? v : [v]) {
        if (type === "string" || type === "bytes" || type === "msg") {
          const body = type === "string" ? utf8e.encode(x) : type === "msg" ? encode(sub, x) : x;
          if (!rep && type !== "msg" && body.length === 0) continue;
          w.varint((num << 3) | 2);
          w.varint(body.length);
          w.raw(body);
        } else {
          const n = type === "bool" ? (x ? 1n : 0n) : BigInt(x);
          if (!rep && n === 0n) continue;
          w.varint(num << 3);
          w.varint(n);
        }
      }
    }
    return w.finish();
  }

  // ---- gRPC-Web ----
  const CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"];

  class GrpcError extends Error {
    constructor(code, message, auditSeq) {
      super((CODES[code] || "code " + code) + (message ? ": " + message : ""));
      this.code = code;
      this.codeName = CODES[code] || String(code);
      this.grpcMessage = message;
      this.auditSeq = auditSeq;
    }
  }

  function pctDecode(s) {
    try { return decodeURIComponent(s); } catch (_) { return s; }
  }

  // Calls s62.query.v1.AuditQuery/`method` with request message `reqName`; returns the decoded
  // response messages (`resName`) and the s62-audit-seq header (the call's opening log entry).
  async function call(method, reqName, req, resName) {
    const msg = encode(reqName, req);
    const frame = new Uint8Array(5 + msg.length);
    new DataView(frame.buffer).setUint32(1, msg.length);
    frame.set(msg, 5);
    const res = await fetch("/s62.query.v1.AuditQuery/" + method, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1",
        "accept": "application/grpc-web+proto" },
      body: frame,
      cache: "no-store",
      credentials: "same-origin",
    });
    const seqHeader = res.headers.get("s62-audit-seq");
    const auditSeq = seqHeader === null ? null : BigInt(seqHeader);
    if (!res.ok) throw new GrpcError(14, "HTTP " + res.status, auditSeq);
    const body = new Uint8Array(await res.arrayBuffer());
    let status = res.headers.get("grpc-status");
    let message = res.headers.get("grpc-message") || "";
    const messages = [];
    let p = 0;
    while (p + 5 <= body.length) {
      const flag = body[p];
      const len = new DataView(body.buffer, body.byteOffset + p + 1, 4).getUint32(0);
      const data = body.subarray(p + 5, p + 5 + len);
      if (data.length !== len) throw new GrpcError(13, "truncated gRPC-Web frame", auditSeq);
      p += 5 + len;
      if (flag & 0x80) {
        for (const line of new TextDecoder().decode(data).split("\r\n")) {
          const i = line.indexOf(":");
          if (i < 0) continue;
          const k = line.slice(0, i).trim().toLowerCase(), v = line.slice(i + 1).trim();
          if (k === "grpc-status") status = v;
          if (k === "grpc-message") message = v;
        }
      } else {
        messages.push(decode(resName, data));
      }
    }
    if (status === null) throw new GrpcError(2, "no gRPC status in the response", auditSeq);
    if (status !== "0") throw new GrpcError(Number(status), pctDecode(message), auditSeq);
    return { messages, auditSeq };
  }

  window.S62Pb = { decode, encode, call, ENUMS, GrpcError, CODES };
})();
