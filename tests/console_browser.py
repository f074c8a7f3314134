#!/usr/bin/env python3
"""Drives the s62 auditor's console in headless Chromium, as an auditor would.

Run by tests/console_browser.rs, which starts s62 with client certificates, puts each auditor's
certificate in an NSS database under a HOME of its own and a Chromium policy
(AutoSelectCertificateForUrls) that presents it: the browser reaches the console only through the
query listener's mutual TLS. Reads one JSON object on stdin:

  {"url", "proxy_url", "vkey", "dpo_home", "alex_home", "shots": [dirs], "vectors": {...},
   "subject", "actor", "case", "tamper_case", "alex_case"}

Prints one JSON object with what it saw (the audit seqs each view showed, the proof marks, the
refusal); exits 1 with a message on the first check that fails.
"""

import json
import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

CFG = json.load(sys.stdin)
SEEN = {"views": {}, "notes": []}

# Self-test cases on docs/format.md's vectors that must have run (and passed).
FORMAT_SELFTESTS = [
    "format 2 leaf hash",
    "format 2 leaf and value row",
    "format 2 value row with a changed value fails",
    "format 3 leaf hash",
    "format 3 leaf and value row",
    "format 3 redacted row: subject_id[0] removed, the rest checked",
    "format 3 value row with a changed value fails",
    "format 3 redacted row with the seed put back fails",
]


def fail(msg):
    print(json.dumps({"failed": msg, **SEEN}))
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def browser(home, profile):
    os.environ["HOME"] = home
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--user-data-dir=" + profile, "--window-size=1200,1000", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--lang=en-GB"]:
        o.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.set_page_load_timeout(30)
    return d


def wait(d, what, fn, timeout=20):
    try:
        return WebDriverWait(d, timeout).until(lambda _: fn())
    except TimeoutException:
        shot(d, "failed-" + what.replace(" ", "-"))
        err = d.execute_script("var e=document.getElementById('error'); return e && !e.hidden ? e.innerText : ''")
        fail("timed out waiting for " + what + (": page error " + err if err else ""))


def shot(d, name):
    for folder in CFG["shots"]:
        os.makedirs(folder, exist_ok=True)
        d.save_screenshot(os.path.join(folder, name + ".png"))


def fill(d, el_id, text):
    el = d.find_element(By.ID, el_id)
    el.clear()
    el.send_keys(text)


def proofs(d, scope):
    return d.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' [data-proof]')).map(e => e.dataset.proof)",
        scope)


def settled(d, scope):
    p = proofs(d, scope)
    return p and all(x != "busy" for x in p) and d.find_elements(By.CSS_SELECTOR, scope + " p.logged")


def logged_seqs(d, scope):
    el = d.find_element(By.CSS_SELECTOR, scope + " p.logged")
    return [int(s) for s in el.get_attribute("data-audit-seqs").split(",") if s]


def choose_purpose(d, case, value="2"):
    d.get(d.current_url.split("#")[0] + "#purpose")
    d.find_element(By.CSS_SELECTOR, "input[name=purpose][value='%s']" % value).click()
    fill(d, "case-ref", case)
    d.find_element(By.CSS_SELECTOR, "#purpose-form button[type=submit]").click()
    wait(d, "the purpose banner", lambda: d.find_elements(By.ID, "banner-case"))
    check(d.find_element(By.ID, "banner-case").text == case, "the banner shows the case")


def pin_key(d, vkey):
    d.get(d.current_url.split("#")[0] + "#key")
    fill(d, "k-vkey", vkey)
    d.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    wait(d, "the pinned key", lambda: d.find_elements(By.ID, "pinned-key"))


def search_subject(d, subject):
    d.get(d.current_url.split("#")[0] + "#search")
    fill(d, "f-subject", subject)
    d.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
    wait(d, "search results checked", lambda: settled(d, "#search-out"))


def main():
    url, case = CFG["url"], CFG["case"]
    d = browser(CFG["dpo_home"], CFG["dpo_home"] + "/profile")
    try:
        d.get(url)
        check("s62 auditor's console" in d.title, "the page loads over mutual TLS: " + d.title)

        # The verifier module against the published vectors (RFC 6962, signed notes, formats 2
        # and 3).
        results = d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "S62Verify.selfTest(arguments[0]).then(r => { window.S62SelfTest = r; done(r); },"
            " e => done([{name: 'threw', ok: false, error: String(e)}]));", CFG["vectors"])
        bad = [r for r in results if not r["ok"]]
        check(len(results) >= 20 and not bad, "verifier self-test: %s" % bad)
        names = [r["name"] for r in results]
        for want in FORMAT_SELFTESTS:
            check(want in names, "the self-test ran %r: %s" % (want, names))
        SEEN["selftest"] = len(results)
        SEEN["selftest_format"] = [n for n in names if n.startswith("format ")]

        # Purpose first: a data view without one shows the purpose form and reads nothing.
        d.get(url + "#search")
        check(d.find_element(By.ID, "view-purpose").get_attribute("hidden") is None,
              "the purpose view is shown")
        check(d.find_element(By.ID, "view-search").get_attribute("hidden") is not None,
              "the search view stays hidden without a purpose")
        check("purpose" in d.find_element(By.ID, "error").text.lower(), "asked for a purpose")
        shot(d, "purpose")

        # Keyboard: the first Tab reaches the skip link, then the views.
        d.get(url + "#purpose")
        body = d.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        check(d.switch_to.active_element.get_attribute("class") == "skip", "Tab reaches the skip link")
        d.switch_to.active_element.send_keys(Keys.TAB)
        check(d.switch_to.active_element.get_attribute("href").endswith("#purpose"),
              "the next Tab reaches the first view link")

        pin_key(d, CFG["vkey"])
        choose_purpose(d, case)

        # Search: every entry about the subject, each proof checked on the page.
        search_subject(d, CFG["subject"])
        marks = proofs(d, "#search-out")
        check(len(marks) >= 2 and all(m == "ok" for m in marks), "search proofs: %s" % marks)
        SEEN["views"]["search"] = logged_seqs(d, "#search-out")
        SEEN["search_marks"] = marks
        shot(d, "search")

        # An entry's detail: every field, the raw leaf, the proof.
        first = d.find_element(By.CSS_SELECTOR, "#search-results tbody tr td a")
        first.click()
        wait(d, "entry detail", lambda: settled(d, "#entry-out"))
        check(proofs(d, "#entry-out") == ["ok"], "entry proof: %s" % proofs(d, "#entry-out"))
        check(len(d.find_element(By.ID, "raw-leaf").text) > 100, "the raw leaf is shown")
        text = d.find_element(By.ID, "entry-out").text
        check(CFG["subject"] in text and "justification" in text, "the entry's fields are shown")
        check(d.find_elements(By.ID, "entry-values"), "the entry's value row is shown")
        SEEN["views"]["entry"] = logged_seqs(d, "#entry-out")
        shot(d, "entry")

        # The subject report: a timeline with who, why and to whom; printable.
        d.get(url + "#subject")
        fill(d, "s-subject", CFG["subject"])
        d.find_element(By.CSS_SELECTOR, "#subject-form button[type=submit]").click()
        wait(d, "subject report checked", lambda: settled(d, "#subject-out"))
        marks = proofs(d, "#subject-out")
        check(len(marks) >= 2 and all(m == "ok" for m in marks), "report proofs: %s" % marks)
        text = d.find_element(By.ID, "subject-timeline").text
        check(CFG["actor"] in text and "Who" in text and "Why" in text, "who and why are shown")
        SEEN["views"]["subject"] = logged_seqs(d, "#subject-out")
        shot(d, "subject-report")
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        check(not d.find_element(By.CSS_SELECTOR, "nav.views").is_displayed(), "print hides the navigation")
        check(d.find_element(By.CSS_SELECTOR, "#subject-out .report-head").is_displayed(),
              "print shows the s45 report heading")
        shot(d, "subject-report-print")
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})

        # The actor report.
        d.get(url + "#actor")
        fill(d, "a-actor", CFG["actor"])
        d.find_element(By.CSS_SELECTOR, "#actor-form button[type=submit]").click()
        wait(d, "actor report", lambda: d.find_elements(By.CSS_SELECTOR, "#actor-out p.logged"))
        check(CFG["subject"] in d.find_element(By.ID, "actor-out").text, "the actor's subjects are shown")
        SEEN["views"]["actor"] = logged_seqs(d, "#actor-out")
        shot(d, "actor-report")

        # The alert queue, and a review recorded from it.
        d.get(url + "#alerts")
        d.find_element(By.CSS_SELECTOR, "#alerts-form button[type=submit]").click()
        wait(d, "alerts checked", lambda: settled(d, "#alerts-out"))
        marks = proofs(d, "#alerts-out")
        check(len(marks) >= 1 and all(m == "ok" for m in marks), "alert proofs: %s" % marks)
        SEEN["views"]["alerts"] = logged_seqs(d, "#alerts-out")
        shot(d, "alerts")
        item = d.find_element(By.CSS_SELECTOR, "#alerts-out .alert-item")
        SEEN["reviewed_alert"] = int(item.get_attribute("data-seq"))
        Select(item.find_element(By.TAG_NAME, "select")).select_by_value("false-positive")
        item.find_element(By.CSS_SELECTOR, "button").click()
        wait(d, "the review", lambda: "Recorded as entry" in item.text)
        SEEN["review_seq"] = int(item.text.split("Recorded as entry #")[1].split()[0])

        # Log status: the checkpoint, its signature checked, other signatures, lag.
        d.get(url + "#status")
        d.find_element(By.ID, "status-refresh").click()
        wait(d, "log status", lambda: d.find_elements(By.CSS_SELECTOR, "#status-out p.logged"))
        check(proofs(d, "#status-out") == ["ok"], "checkpoint signature: %s" % proofs(d, "#status-out"))
        check("not yet covered" in d.find_element(By.ID, "status-fields").text, "lag is shown")
        SEEN["views"]["status"] = logged_seqs(d, "#status-out")
        shot(d, "status")

        # Narrow screen (a phone, or 200% zoom on a small laptop): one column, no sideways scroll.
        d.set_window_size(420, 1000)
        d.get(url + "#subject")
        time.sleep(0.3)
        width = d.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        check(width[0] <= width[1], "no horizontal scrolling at 420px: %s" % width)
        d.get(url + "#search")
        shot(d, "narrow-search-form")
        d.set_window_size(1200, 1000)

        # Values a redaction removed: the page finds the redaction entries, proves each in the
        # signed log and reads what it removed, so the DPO's correction leaves the entries ✔ ...
        rows_js = ("return Array.from(document.querySelectorAll('#search-results tbody tr')).map(tr => "
                   "{ const p = tr.querySelector('[data-proof]'); return [tr.dataset.seq, p.dataset.proof, p.title]; })")
        search_subject(d, CFG["redacted_subject"])
        rows = d.execute_script(rows_js)
        check(len(rows) >= 2 and all(r[1] == "ok" for r in rows),
              "entries whose justification a redaction entry removed: %s" % rows)
        SEEN["views"]["redacted_search"] = logged_seqs(d, "#search-out")
        # ... and the same removal made on the disk with no redaction entry fails, naming it.
        search_subject(d, CFG["quiet_subject"])
        rows = d.execute_script(rows_js)
        bad = [r for r in rows if r[1] != "ok"]
        check(len(rows) >= 2 and len(bad) == 1 and bad[0][0] == str(CFG["quiet_seq"]),
              "only the quietly edited intent fails: %s" % rows)
        check("justification_text" in bad[0][2] and "no redaction entry" in bad[0][2],
              "it is named as removed without a redaction entry: " + bad[0][2])
        SEEN["quiet_why"] = bad[0][2]
        SEEN["views"]["quiet_search"] = logged_seqs(d, "#search-out")
        shot(d, "quiet-edit")

        # Through a proxy that flips one byte of the first entry's stored bytes in transit.
        d.get(CFG["proxy_url"])
        check("s62 auditor's console" in d.title, "the page loads through the proxy")
        pin_key(d, CFG["vkey"])
        choose_purpose(d, CFG["tamper_case"])
        search_subject(d, CFG["subject"])
        marks = proofs(d, "#search-out")
        why = d.execute_script(
            "return Array.from(document.querySelectorAll('#search-out [data-proof]')).map(e => e.title)")
        check(marks[:2] == ["bad", "bad"] and all(m == "ok" for m in marks[2:]),
              "the two altered entries fail and no other: %s" % marks)
        check("inclusion proof" in why[0], "the altered stored bytes fail their proof: " + why[0])
        # Format 2 names the value whose commitment fails; format 3 (new logs) only the entry,
        # whose row no longer hashes to its leaf's values_root.
        check("commitment" in why[1] or "values_root" in why[1],
              "the altered value row fails its commitment: " + why[1])
        SEEN["tamper_why"] = why[:2]
        SEEN["tamper_marks"] = marks
        SEEN["views"]["tampered_search"] = logged_seqs(d, "#search-out")
        shot(d, "tampered")
    finally:
        d.quit()

    # An auditor whose role may not make actor reports sees the refusal.
    a = browser(CFG["alex_home"], CFG["alex_home"] + "/profile")
    try:
        a.get(url)
        choose_purpose(a, CFG["alex_case"])
        a.get(url + "#actor")
        fill(a, "a-actor", CFG["actor"])
        a.find_element(By.CSS_SELECTOR, "#actor-form button[type=submit]").click()
        wait(a, "the refusal", lambda: a.find_element(By.ID, "error").is_displayed())
        text = a.find_element(By.ID, "error").text
        check("PERMISSION_DENIED" in text, "the refusal names its code: " + text)
        check(CFG["subject"] not in a.find_element(By.ID, "actor-out").text, "nothing was shown")
        SEEN["refusal"] = text
        shot(a, "refused")
    finally:
        a.quit()

    print(json.dumps(SEEN))


if __name__ == "__main__":
    main()
