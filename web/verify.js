// s62 auditor's console: the checks the page makes itself, trusting nothing the server says.
//
// Job: RFC 6962 leaf and node hashes and inclusion proofs (RFC 9162 section 2.1.3.2), C2SP
// signed-note parsing and Ed25519 verification against a pinned verifier key, tlog-checkpoint
// bodies, and s62's personal values beside the leaf (docs/format.md): format 2 (one commitment
// per value in the leaf, salts stored) and format 3 (one values_root in the leaf over every
// value's commitment, salts derived from the row's entry seed, or stored once a redaction removed
// the seed and kept the removed values' commitments), all with WebCrypto. Pure functions over
// bytes and strings: no DOM, no network. `selfTest` runs them against the published vectors in
// tests/vectors/ and docs/format.md (the browser test passes them in).
"use strict";

(function () {
  const subtle = crypto.subtle;
  const enc = new TextEncoder();

  function hex(u8) {
    return Array.from(u8, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function unhex(s) {
    if (s.length % 2) throw new Error("odd hex");
    const out = new Uint8Array(s.length / 2);
    for (let i = 0; i < out.length; i++) {
      const b = parseInt(s.substr(i * 2, 2), 16);
      if (Number.isNaN(b)) throw new Error("bad hex");
      out[i] = b;
    }
    return out;
  }
  function b64decode(s) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4) throw new Error("bad base64");
    const bin = atob(s);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }
  function b64encode(u8) {
    return btoa(String.fromCharCode(...u8));
  }
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }
  function equal(a, b) {
    if (!a || !b || a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }

  async function sha256(u8) {
    return new Uint8Array(await subtle.digest("SHA-256", u8));
  }
  const leafHash = (leaf) => sha256(concat(Uint8Array.of(0), leaf));
  const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

  // The root an inclusion proof leads to (RFC 9162 2.1.3.2), or throws if the proof is malformed
  // for (index, size). BigInt, so indexes past 2^32 work.
  async function rootFromInclusionProof(index, size, leafHashBytes, proof) {
    let fn = BigInt(index), sn = BigInt(size) - 1n;
    if (BigInt(index) >= BigInt(size)) throw new Error("index beyond the tree");
    let r = leafHashBytes;
    for (const p of proof) {
      if (p.length !== 32) throw new Error("proof hash is not 32 bytes");
      if (sn === 0n) throw new Error("proof too long");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n; sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("proof too short");
    return r;
  }

  async function verifyInclusion(index, size, leafHashBytes, proof, root) {
    try {
      return equal(await rootFromInclusionProof(index, size, leafHashBytes, proof), root);
    } catch (_) {
      return false;
    }
  }

  // A note verifier key `name+hex(keyid)+base64(0x01 || pubkey)` (Ed25519 only).
  async function parseVerifierKey(vkey) {
    const s = vkey.trim();
    const i = s.indexOf("+"), j = s.indexOf("+", i + 1);
    if (i <= 0 || j < 0) throw new Error("a verifier key is name+keyid+key");
    const name = s.slice(0, i), idHex = s.slice(i + 1, j), key = b64decode(s.slice(j + 1));
    if (!/^[0-9a-f]{8}$/.test(idHex)) throw new Error("the key id is 8 hex digits");
    if (key.length !== 33 || key[0] !== 1) throw new Error("not an Ed25519 note key");
    const pub = key.subarray(1);
    const id = (await sha256(concat(enc.encode(name), Uint8Array.of(0x0a, 0x01), pub))).subarray(0, 4);
    if (hex(id) !== idHex) throw new Error("the key id does not match the key");
    return { name, keyId: id, publicKey: pub, text: s };
  }

  // Splits a signed note into its text (with its final newline) and signature lines.
  function parseNote(note) {
    const cut = note.lastIndexOf("\n\n");
    if (cut < 0 || !note.endsWith("\n")) throw new Error("not a signed note");
    const text = note.slice(0, cut + 1);
    const sigs = [];
    for (const line of note.slice(cut + 2, -1).split("\n")) {
      const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
      if (!m) throw new Error("malformed signature line");
      const raw = b64decode(m[2]);
      if (raw.length < 5) throw new Error("signature too short");
      sigs.push({ name: m[1], keyId: raw.subarray(0, 4), sig: raw.subarray(4) });
    }
    if (sigs.length === 0) throw new Error("a note without signatures");
    return { text, sigs };
  }

  async function ed25519Verify(publicKey, sig, message) {
    const key = await subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    return subtle.verify({ name: "Ed25519" }, key, sig, message);
  }

  // Verifies a note against a parsed verifier key. Returns { ok, text, others } where `others`
  // are the signature lines by other keys (witness cosignatures, an outgoing key, ...).
  async function verifyNote(note, key) {
    const { text, sigs } = parseNote(note);
    let ok = false;
    const others = [];
    for (const s of sigs) {
      if (s.name === key.name && equal(s.keyId, key.keyId)) {
        if (s.sig.length === 64 && (await ed25519Verify(key.publicKey, s.sig, enc.encode(text)))) {
          ok = true;
        }
      } else {
        const other = { name: s.name, keyId: hex(s.keyId) };
        // c2sp.org/tlog-cosignature: 8-byte timestamp then a 64-byte signature.
        if (s.sig.length === 72) {
          other.cosignedAt = new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0);
        }
        others.push(other);
      }
    }
    return { ok, text, others };
  }

  // A tlog-checkpoint body: origin, size, base64 root, then extension lines.
  function parseCheckpointText(text) {
    const lines = text.split("\n");
    if (lines.length < 4 || lines[lines.length - 1] !== "") throw new Error("not a checkpoint");
    if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error("checkpoint size is not a number");
    const root = b64decode(lines[2]);
    if (root.length !== 32) throw new Error("checkpoint root is not 32 bytes");
    return { origin: lines[0], size: BigInt(lines[1]), root, extensions: lines.slice(3, -1) };
  }

  // A checkpoint from the server, checked: signed by the pinned key, and the convenience fields
  // equal to the signed body. Returns the body from the signed text (never the server's fields).
  async function verifyCheckpoint(cp, key) {
    const { ok, text, others } = await verifyNote(cp.note, key);
    if (!ok) return { ok: false, why: "no valid signature by the pinned key", others };
    const body = parseCheckpointText(text);
    if (body.size !== BigInt(cp.size) || !equal(body.root, cp.root_hash) || body.origin !== cp.origin) {
      return { ok: false, why: "the checkpoint's fields differ from its signed text", others };
    }
    return { ok: true, ...body, others };
  }


  const PERSONAL_FIELD_MAX = 14;
  const REPEATED_FIELDS = new Set([3, 5, 6, 7, 11, 12]);
  const MAX_INDEX = 1 << 20; // as src/log/seal.rs: no entry holds more values of one field
  // Where each PersonalField lives in a decoded Entry: [sub-message or null, field, repeated?].
  const PERSONAL_PATHS = { 1: ["actor", "id"], 2: ["actor", "display_name"], 3: ["actor", "roles", 1],
    4: ["actor", "source_address"], 5: [null, "subject_ids", 1], 6: [null, "record_ids", 1],
    7: [null, "recipients", 1], 8: ["justification", "text"], 9: ["justification", "case_reference"],
    10: ["request", "path"], 11: ["outcome", "returned_subject_ids", 1],
    12: ["outcome", "returned_record_ids", 1], 13: ["audit_query", "filter_json"],
    14: ["audit_query", "case_reference"] };

  // As `s62 verify` names a value: "subject_id[1]" for a repeated field, "justification_text".
  function fieldName(field, index) {
    const name = (window.S62Pb && S62Pb.ENUMS.PersonalField[field]) || "field " + field;
    const p = PERSONAL_PATHS[field];
    return p && !p[2] ? name : name + "[" + index + "]";
  }
  const u32be = (n) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n); return b; };

  // s62 format 2: SHA-256("s62/v2 field\n" || u8 field || u32be index || salt || value).
  async function commitment(field, index, salt, value) {
    return sha256(concat(enc.encode("s62/v2 field\n"), Uint8Array.of(field), u32be(index), salt,
      enc.encode(value)));
  }

  // s62 format 3: a value's salt from the entry seed,
  // SHA-256("s62/v3 salt\n" || seed || u8 field || u32be index), first 16 bytes.
  async function v3Salt(seed, field, index) {
    return (await sha256(concat(enc.encode("s62/v3 salt\n"), seed, Uint8Array.of(field),
      u32be(index)))).slice(0, 16);
  }

  // s62 format 3: SHA-256("s62/v3 values\n" || for each [field, index, commitment] in (field,
  // index) order: u8 field || u32be index || commitment). Sorts a copy of `items`.
  async function valuesRoot(items) {
    const sorted = items.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    return sha256(concat(enc.encode("s62/v3 values\n"),
      ...sorted.map(([f, i, c]) => concat(Uint8Array.of(f), u32be(i), c))));
  }

  // The personal values a decoded leaf holds in clear, as names (a sealed leaf must hold none).
  function inClear(entry) {
    const out = [];
    for (const [f, [sub, name, rep]] of Object.entries(PERSONAL_PATHS)) {
      const obj = sub ? entry[sub] : entry;
      if (!obj) continue;
      const v = obj[name];
      if (rep ? v && v.length : v) {
        out.push((window.S62Pb && S62Pb.ENUMS.PersonalField[f]) || "field " + f);
      }
    }
    return out;
  }

  // Format 2: each stored value against its commitment in the leaf.
  async function checkV2(entry, row) {
    const problems = [];
    const name = (k) => { const [f, i] = k.split(":"); return fieldName(f, i); };
    if ((row.seed && row.seed.length) || (entry.values_root && entry.values_root.length) ||
        row.values.some((v) => v.sha256 && v.sha256.length)) {
      problems.push("format-3 fields in a format-2 entry");
    }
    const byKey = new Map();
    for (const c of entry.commitments) byKey.set(c.field + ":" + c.index, c.sha256);
    const seen = new Set();
    const present = [];
    for (const v of row.values) {
      const k = v.field + ":" + v.index;
      if (seen.has(k)) { problems.push(name(k) + " is stored twice"); continue; }
      seen.add(k);
      const want = byKey.get(k);
      if (!want) { problems.push(name(k) + " has no commitment in the stored bytes"); continue; }
      if (v.salt.length !== 16) { problems.push(name(k) + " has a malformed salt"); continue; }
      if (!equal(await commitment(v.field, v.index, v.salt, v.value), want)) {
        problems.push("the value of " + name(k) + " does not match its commitment");
        continue;
      }
      present.push({ field: v.field, index: v.index, value: v.value });
    }
    const removed = entry.commitments.filter((c) => !seen.has(c.field + ":" + c.index))
      .map((c) => ({ field: c.field, index: c.index }));
    return { problems, present, removed };
  }

  // Format 3: every value's commitment (salt derived from the row's seed, or stored when it has
  // none) and every kept commitment, in (field, index) order, must hash to the leaf's values_root.
  // A mismatch names the entry only: which value changed cannot be told.
  async function checkV3(entry, row) {
    const problems = [];
    const present = [], removed = [];
    const fail = (why) => ({ problems: [why], present: [], removed: [] });
    if (entry.commitments.length) return fail("a format-3 leaf lists per-value commitments");
    const clear = inClear(entry);
    if (clear.length) return fail("the stored bytes hold " + clear.join(", ") + " in clear");
    const root = entry.values_root || new Uint8Array(0);
    const seed = row.seed || new Uint8Array(0);
    if (root.length === 0) {
      if (row.values.length) {
        return fail(fieldName(row.values[0].field, row.values[0].index) +
          " is stored but the leaf commits to no value");
      }
      if (seed.length) return fail("a seed is stored for an entry without values");
      return { problems, present, removed };
    }
    if (root.length !== 32) return fail("values_root is not 32 bytes");
    if (seed.length !== 0 && seed.length !== 16) return fail("the entry seed is not 16 bytes");
    const items = [];
    const seen = new Set();
    for (const v of row.values) {
      const n = fieldName(v.field, v.index);
      if (!(v.field >= 1 && v.field <= PERSONAL_FIELD_MAX)) return fail(n + ": no such personal field");
      if (v.index !== 0 && !REPEATED_FIELDS.has(v.field)) return fail(n + ": an index on a single-valued field");
      if (v.index > MAX_INDEX) return fail(n + ": an index beyond any entry");
      const k = v.field + ":" + v.index;
      if (seen.has(k)) return fail(n + " is stored twice");
      seen.add(k);
      const kept = v.sha256 || new Uint8Array(0);
      if (kept.length) {
        if (kept.length !== 32) return fail(n + ": a kept commitment is not 32 bytes");
        if (v.salt.length || v.value) return fail(n + " is redacted but still has its value or salt");
        if (seed.length) return fail(n + " is redacted but its salt can still be derived from the stored seed");
        items.push([v.field, v.index, kept]);
        removed.push({ field: v.field, index: v.index });
        continue;
      }
      let salt;
      if (seed.length && v.salt.length === 0) salt = await v3Salt(seed, v.field, v.index);
      else if (!seed.length && v.salt.length === 16) salt = v.salt;
      else return fail(n + ": a value's salt must be derived from the seed, or stored (16 bytes) when there is none");
      items.push([v.field, v.index, await commitment(v.field, v.index, salt, v.value)]);
      present.push({ field: v.field, index: v.index, value: v.value });
    }
    if (!equal(await valuesRoot(items), root)) {
      return fail("the stored values do not match the leaf's values_root");
    }
    return { problems, present, removed };
  }

  // Checks a decoded value row (EntryValues: { values, seed }; for format 2 its `values` list
  // alone will do) against a decoded leaf. Returns { problems ([] = fine), present (the values
  // that check: { field, index, value }), removed (values the leaf commits to that the row no
  // longer holds: format 2, commitments without a value; format 3, the kept commitments. A
  // redaction entry must account for each: `uncovered`) }.
  async function checkRow(entry, row) {
    if (Array.isArray(row)) row = { values: row, seed: new Uint8Array(0) };
    row = { values: row.values || [], seed: row.seed || new Uint8Array(0) };
    return entry.format_version === 3 ? checkV3(entry, row) : checkV2(entry, row);
  }

  // The problems checkRow finds ([] = fine).
  async function checkValues(entry, row) {
    return (await checkRow(entry, row)).problems;
  }

  // Of the values entry `seq` no longer stores (removed: [{ field, index }]), those no redaction
  // entry after it names. `redactions`: [{ seq, targets }] from decoded, proved redaction leaves;
  // a target names entries from_seq..to_seq, the fields it lists (all when none), and one index
  // when it has one (has_index), as `s62 verify` reads them.
  function uncovered(seq, removed, redactions) {
    const s = BigInt(seq);
    const names = (t, r) => BigInt(t.from_seq) <= s && s <= BigInt(t.to_seq) &&
      (t.fields.length === 0 || t.fields.includes(r.field)) &&
      (!t.has_index || t.index === r.index);
    return removed.filter((r) => !redactions.some((x) => BigInt(x.seq) > s &&
      x.targets.some((t) => names(t, r))));
  }

  // Runs every check against the published vectors; returns [{ name, ok }].
  async function selfTest(v) {
    const out = [];
    const t = async (name, f) => {
      try { out.push({ name, ok: !!(await f()) }); } catch (e) { out.push({ name, ok: false, error: String(e) }); }
    };
    for (const h of v.hasher.vectors) {
      await t("hasher: " + h.desc, async () => {
        let got;
        if (h.op === "node") {
          const [l, r] = h.input_hex.split("|");
          got = await nodeHash(unhex(l), unhex(r));
        } else if (h.op === "leaf") got = await leafHash(unhex(h.input_hex));
        else got = await sha256(unhex(h.input_hex));
        return hex(got) === h.expected_hex;
      });
    }
    for (const p of v.proofs.inclusion) {
      const name = "inclusion " + p.leaf_index + "/" + p.tree_size;
      const path = p.audit_path_hex.map(unhex);
      await t(name, async () => hex(await leafHash(unhex(p.leaf_input_hex))) === p.leaf_hash_hex &&
        verifyInclusion(p.leaf_index, p.tree_size, unhex(p.leaf_hash_hex), path, unhex(p.root_hex)));
      await t(name + " with a flipped root byte fails", async () => {
        const root = unhex(p.root_hex); root[0] ^= 1;
        return !(await verifyInclusion(p.leaf_index, p.tree_size, unhex(p.leaf_hash_hex), path, root));
      });
      if (path.length > 0) {
        await t(name + " with a proof hash dropped fails", async () =>
          !(await verifyInclusion(p.leaf_index, p.tree_size, unhex(p.leaf_hash_hex), path.slice(1), unhex(p.root_hex))));
      }
    }
    for (const n of v.notes.vectors) {
      const full = n.expected_note || n.note_text_full;
      if (!n.vkey || !full || typeof full !== "string" || !full.endsWith("\n")) continue;
      await t("signed note " + n.id, async () => {
        const key = await parseVerifierKey(n.vkey);
        return hex(key.keyId) === n.key_id_hex && (await verifyNote(full, key)).ok;
      });
      await t("signed note " + n.id + " with its text altered fails", async () => {
        const key = await parseVerifierKey(n.vkey);
        return !(await verifyNote("X" + full.slice(1), key)).ok;
      });
    }
    if (v.format) {
      const f = v.format;
      const leaf = unhex(f.leaf_hex);
      await t("format 2 leaf hash", async () => hex(await leafHash(leaf)) === f.leaf_hash_hex);
      await t("format 2 leaf and value row", async () => {
        const entry = S62Pb.decode("Entry", leaf);
        const values = S62Pb.decode("EntryValues", unhex(f.values_hex)).values;
        const problems = await checkValues(entry, values);
        return entry.seq === 7n && entry.kind === 1 && values.length === 8 && problems.length === 0 &&
          values.some((x) => x.field === 1 && x.value === "PC-4471");
      });
      await t("format 2 value row with a changed value fails", async () => {
        const entry = S62Pb.decode("Entry", leaf);
        const values = S62Pb.decode("EntryValues", unhex(f.values_hex)).values;
        values[0].value = "PC-4472";
        return (await checkValues(entry, values)).length === 1;
      });
    }
    if (v.format3) {
      // docs/format.md's format-3 vector: the same entry sealed as format 3, its row as written
      // (an entry seed, no salts) and after redacting subject_id (no seed, salts stored,
      // subject_id[0]'s commitment kept).
      const f = v.format3;
      const leaf = unhex(f.leaf_hex);
      const entry = () => S62Pb.decode("Entry", leaf);
      const written = () => S62Pb.decode("EntryValues", unhex(f.values_hex));
      const redacted = () => S62Pb.decode("EntryValues", unhex(f.redacted_values_hex));
      const fails = async (e, row) => (await checkRow(e, row)).problems.length > 0;
      await t("format 3 leaf hash", async () => hex(await leafHash(leaf)) === f.leaf_hash_hex);
      await t("format 3 leaf and value row", async () => {
        const e = entry(), row = written();
        const r = await checkRow(e, row);
        return e.format_version === 3 && e.seq === 7n && e.kind === 1 && e.commitments.length === 0 &&
          e.values_root.length === 32 && row.seed.length === 16 && row.values.length === 8 &&
          r.problems.length === 0 && r.present.length === 8 && r.removed.length === 0 &&
          r.present.some((x) => x.field === 1 && x.value === "PC-4471");
      });
      await t("format 3 redacted row: subject_id[0] removed, the rest checked", async () => {
        const row = redacted();
        const r = await checkRow(entry(), row);
        return row.seed.length === 0 && r.problems.length === 0 && r.present.length === 7 &&
          r.removed.length === 1 && r.removed[0].field === 5 && r.removed[0].index === 0 &&
          !r.present.some((x) => x.field === 5);
      });
      await t("format 3 value row with a changed value fails", async () => {
        const row = written();
        row.values[0].value = "PC-4472";
        return fails(entry(), row);
      });
      await t("format 3 redacted row with a changed value fails", async () => {
        const row = redacted();
        row.values[0].value = "PC-4472";
        return fails(entry(), row);
      });
      await t("format 3 redacted row with the seed put back fails", async () => {
        const row = redacted();
        row.seed = written().seed;
        return fails(entry(), row);
      });
      await t("format 3 value row with its seed changed fails", async () => {
        const row = written();
        row.seed[15] ^= 1;
        return fails(entry(), row);
      });
      await t("format 3 value row without one value fails", async () => {
        const row = written();
        row.values.splice(4, 1);
        return fails(entry(), row);
      });
      await t("format 3 missing value row fails", async () => fails(entry(), { values: [] }));
      await t("format 3 value row with a salt beside the seed fails", async () => {
        const row = written();
        row.values[0].salt = await v3Salt(row.seed, row.values[0].field, row.values[0].index);
        return fails(entry(), row);
      });
      await t("format 3 redacted row with a salt missing fails", async () => {
        const row = redacted();
        row.values[0].salt = new Uint8Array(0);
        return fails(entry(), row);
      });
      await t("format 3 redacted row with a kept commitment edited fails", async () => {
        const row = redacted();
        row.values.find((x) => x.sha256.length).sha256[0] ^= 1;
        return fails(entry(), row);
      });
      await t("format 3 value row with a value stored twice fails", async () => {
        const row = written();
        row.values.push({ ...row.values[0] });
        return fails(entry(), row);
      });
      await t("format 3 value row for a leaf without values_root fails", async () => {
        const e = entry();
        e.values_root = new Uint8Array(0);
        return fails(e, written());
      });
      await t("format 3 leaf with per-value commitments fails", async () => {
        const e = entry();
        e.commitments = [{ field: 1, index: 0, sha256: new Uint8Array(32) }];
        return fails(e, written());
      });
      await t("format 3 leaf with a value in clear fails", async () => {
        const e = entry();
        e.subject_ids = ["P-1001"];
        return fails(e, written());
      });
    }
    // Which removed values a redaction entry accounts for (the vector's entry is seq 7, its
    // subject_id[0] removed).
    const gone = [{ field: 5, index: 0 }];
    const target = (from, to, fields, index) => ({ from_seq: BigInt(from), to_seq: BigInt(to),
      fields, index: index || 0, has_index: index !== undefined });
    await t("redaction: a later entry naming the field covers the removed value", async () =>
      uncovered(7, gone, [{ seq: 9n, targets: [target(7, 7, [5])] }]).length === 0 &&
      uncovered(7, gone, [{ seq: 9n, targets: [target(0, 8, [])] }]).length === 0 &&
      uncovered(7, gone, [{ seq: 9n, targets: [target(7, 7, [5], 0)] }]).length === 0);
    await t("redaction: no entry, an earlier one, another field, range or index does not", async () =>
      uncovered(7, gone, []).length === 1 &&
      uncovered(7, gone, [{ seq: 6n, targets: [target(0, 8, [])] }]).length === 1 &&
      uncovered(7, gone, [{ seq: 9n, targets: [target(7, 7, [6])] }]).length === 1 &&
      uncovered(7, gone, [{ seq: 9n, targets: [target(8, 8, [5])] }]).length === 1 &&
      uncovered(7, gone, [{ seq: 9n, targets: [target(7, 7, [5], 1)] }]).length === 1);
    return out;
  }

  window.S62Verify = {
    hex, unhex, b64decode, b64encode, equal, sha256, leafHash, nodeHash,
    rootFromInclusionProof, verifyInclusion, parseVerifierKey, parseNote, verifyNote,
    parseCheckpointText, verifyCheckpoint, commitment, v3Salt, valuesRoot, checkRow, checkValues,
    uncovered, fieldName, PERSONAL_PATHS, selfTest,
  };
})();
