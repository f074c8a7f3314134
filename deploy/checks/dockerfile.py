"""Assertions on deploy/Dockerfile, parsed with dockerfile-parse (scripts/check-deploy.sh runs
hadolint first). Each failed assertion is printed; exit 1 if any failed.

What deploy/README.md promises: a multi-stage build on rust:1-bookworm with the packages
scripts/setup.sh installs and `cargo build --release --locked`; a debian:bookworm-slim runtime
holding only the binary and CA roots, running as uid 10001, with /var/lib/s62 and /etc/s62 as
volumes, ENTRYPOINT s62 and CMD serve; and no secret anywhere in the image.
"""
import json
import re
import shlex
import sys
from pathlib import Path

from dockerfile_parse import DockerfileParser

PATH = Path(sys.argv[1] if len(sys.argv) > 1 else "deploy/Dockerfile")
IGNORE = Path(sys.argv[2] if len(sys.argv) > 2 else ".dockerignore")
failures: list[str] = []
SECRETISH = re.compile(r"(KEY|SECRET|TOKEN|PASSW|CREDENTIAL|PRIVATE)", re.I)


def check(ok: bool, what: str) -> None:
    if not ok:
        failures.append(what)


def exec_form(value: str):
    try:
        v = json.loads(value)
        return v if isinstance(v, list) else None
    except json.JSONDecodeError:
        return None


def main() -> int:
    parser = DockerfileParser(path=str(PATH))
    instructions = parser.structure
    stages: list[list[dict]] = []
    for ins in instructions:
        if ins["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    check(len(stages) >= 2, f"multi-stage build expected, found {len(stages)} stage(s)")
    if len(stages) < 2:
        return report()
    builder, runtime = stages[0], stages[-1]

    def of(stage, name):
        return [i for i in stage if i["instruction"] == name]

    b_from = of(builder, "FROM")[0]["value"].split()
    check(b_from[0] == "rust:1-bookworm", f"builder image is {b_from[0]}, want rust:1-bookworm")
    check(len(b_from) == 3 and b_from[1].upper() == "AS", "the builder stage must be named")
    builder_name = b_from[2] if len(b_from) == 3 else None
    b_run = " ".join(i["value"] for i in of(builder, "RUN"))
    for pkg in ("libclang-dev", "g++", "protobuf-compiler", "ccache"):
        check(re.search(rf"(^|\s){re.escape(pkg)}(\s|$)", b_run) is not None, f"builder does not install {pkg}")
    check("cargo build --release --locked" in b_run, "builder must run `cargo build --release --locked`")

    r_from = of(runtime, "FROM")[0]["value"].split()
    check(r_from[0] == "debian:bookworm-slim", f"runtime image is {r_from[0]}, want debian:bookworm-slim")
    r_run = " ".join(i["value"] for i in of(runtime, "RUN"))
    installs = re.findall(r"apt-get install ((?:\s*-\S+|\s*[\w.+-]+)+)", r_run)
    pkgs = {w for m in installs for w in m.split() if not w.startswith("-")}
    check(pkgs == {"ca-certificates"}, f"runtime installs {sorted(pkgs)}; only ca-certificates is wanted")
    check("rm -rf /var/lib/apt/lists" in r_run, "runtime must drop apt lists")
    for cp in of(runtime, "COPY") + of(runtime, "ADD"):
        check(cp["instruction"] == "COPY" and f"--from={builder_name}" in cp["value"],
              f"runtime line {cp['startline'] + 1}: only COPY --from={builder_name} is allowed: {cp['value']}")

    users = of(runtime, "USER")
    check(bool(users), "runtime must set USER")
    if users:
        user = users[-1]["value"].split(":")[0]
        check(user not in ("0", "root"), "runtime USER must not be root")
        check(user == "10001", f"runtime USER is {user}, want 10001")
        check(users[-1]["startline"] > max(i["startline"] for i in of(runtime, "RUN")),
              "USER must come after every RUN of the runtime stage")
    vols = set()
    for v in of(runtime, "VOLUME"):
        vols |= set(exec_form(v["value"]) or v["value"].split())
    check({"/var/lib/s62", "/etc/s62"} <= vols, f"VOLUMEs are {sorted(vols)}; /var/lib/s62 and /etc/s62 wanted")
    ep = of(runtime, "ENTRYPOINT")
    check(bool(ep) and exec_form(ep[-1]["value"]) == ["s62"], "ENTRYPOINT must be [\"s62\"] (exec form: SIGTERM reaches s62)")
    cmd = of(runtime, "CMD")
    check(bool(cmd) and exec_form(cmd[-1]["value"]) == ["serve", "--config", "/etc/s62/sidecar.toml"],
          "CMD must be [\"serve\", \"--config\", \"/etc/s62/sidecar.toml\"]")

    # No secrets in any stage: no key files copied, no secret-looking ENV/ARG, no keygen at build.
    for ins in instructions:
        line = ins["startline"] + 1
        if ins["instruction"] in ("ENV", "ARG", "LABEL"):
            names = [w.split("=")[0] for w in shlex.split(ins["value"])]
            check(not any(SECRETISH.search(n) for n in names),
                  f"line {line}: {ins['instruction']} {ins['value']} looks like a secret")
        if ins["instruction"] in ("COPY", "ADD"):
            check(not re.search(r"\.(key|pem|p12|pfx)\b|\.env\b|log\.key", ins["value"]),
                  f"line {line}: copies key material: {ins['value']}")
        if ins["instruction"] == "RUN":
            check("keygen" not in ins["value"], f"line {line}: generates a key at build time")

    # The build context leaves out target/, the demo folder and keys.
    ignored = [l.strip() for l in IGNORE.read_text().splitlines() if l.strip() and not l.startswith("#")] \
        if IGNORE.is_file() else []
    check(IGNORE.is_file(), f"{IGNORE} is missing")
    for want in ("target", "s62-demo"):
        check(any(p.strip("/") == want for p in ignored), f"{IGNORE} must exclude {want}/")
    check(any(p.endswith("*.key") for p in ignored), f"{IGNORE} must exclude *.key")
    return report()


def report() -> int:
    for f in failures:
        print(f"  FAIL dockerfile: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
