"""Assertions on deploy/kubernetes/ beyond schema validity (scripts/check-deploy.sh runs the
schema validator first). Each failed assertion is printed; exit 1 if any failed.

Checks the promises deploy/README.md makes: s62 is a sidecar in the same Pod as the records app,
the app listens on 127.0.0.1 only and is reachable only through s62, one Service exposes only
s62's client port and (with [query]) another only the auditor port, whose TLS material comes from
a read-only Secret, probes hit /healthz and /readyz on the admin port, every container has
resource requests and limits, everything runs as non-root, the signing key comes from a Secret
mounted read-only with mode 0400, the config from a ConfigMap, the log from a claim - and that
the manifests agree with the sidecar.toml they ship.
"""
import ipaddress
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "deploy/kubernetes")
failures: list[str] = []


def check(ok: bool, what: str) -> None:
    if not ok:
        failures.append(what)


def load_resources() -> tuple[dict, dict]:
    kust = yaml.safe_load((ROOT / "kustomization.yaml").read_text())
    by_kind: dict = {}
    for rel in kust.get("resources", []):
        path = ROOT / rel
        check(path.is_file(), f"kustomization lists {rel}, which does not exist")
        if not path.is_file():
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                by_kind.setdefault(doc["kind"], []).append(doc)
    return kust, by_kind


def port_of(container: dict, ref) -> int | None:
    if isinstance(ref, int):
        return ref
    for p in container.get("ports", []):
        if p.get("name") == ref:
            return p["containerPort"]
    return None


def main() -> int:
    kust, res = load_resources()
    generators = {g["name"]: g for g in kust.get("configMapGenerator", [])}
    check("s62-config" in generators, "configMapGenerator s62-config is missing")
    config_files = [ROOT / f.split("=")[-1] for f in generators.get("s62-config", {}).get("files", [])]
    check(any(f.name == "sidecar.toml" for f in config_files), "s62-config does not hold sidecar.toml")
    for f in config_files:
        check(f.is_file(), f"configMapGenerator file {f} does not exist")
    cfg = tomllib.loads((ROOT / "sidecar.toml").read_text())

    deployments = res.get("Deployment", [])
    check(len(deployments) == 1, "expected exactly one Deployment")
    if not deployments:
        return report()
    dep = deployments[0]
    spec = dep["spec"]
    check(spec.get("replicas") == 1, "replicas must be 1: one writer per log folder")
    check(spec.get("strategy", {}).get("type") == "Recreate",
          "strategy must be Recreate: a rolling update would open the log folder twice")
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    check(pod.get("automountServiceAccountToken") is False, "the Pod must not mount an API token")

    # Non-root everywhere.
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot must be true")
    check(psc.get("runAsUser", 0) != 0, "pod securityContext.runAsUser must not be 0")
    check(psc.get("runAsUser") == 10001, "pod runs as uid 10001, the image's s62 user")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccomp RuntimeDefault")
    all_containers = pod.get("initContainers", []) + pod["containers"]
    for c in all_containers:
        sc = c.get("securityContext", {})
        name = c["name"]
        check(sc.get("runAsUser", psc.get("runAsUser", 0)) != 0, f"{name} runs as root")
        check(sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation must be false")
        check(sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem must be true")
        check("ALL" in sc.get("capabilities", {}).get("drop", []), f"{name}: must drop ALL capabilities")
        check(not sc.get("privileged", False), f"{name} is privileged")
        r = c.get("resources", {})
        for kind in ("requests", "limits"):
            for res_name in ("cpu", "memory"):
                check(res_name in r.get(kind, {}), f"{name}: resources.{kind}.{res_name} missing")
        for p in c.get("ports", []):
            check("hostPort" not in p, f"{name} uses a hostPort")
        for e in c.get("env", []):
            check("secretKeyRef" not in e.get("valueFrom", {}),
                  f"{name}: secret {e['name']} in an environment variable (leaks into /proc, crash dumps)")
    check(not pod.get("hostNetwork", False), "the Pod must not use the host network")

    containers = {c["name"]: c for c in pod["containers"]}
    check(set(containers) == {"s62", "records-api"}, f"containers are {sorted(containers)}, want s62 + records-api")
    s62 = containers.get("s62")
    app = containers.get("records-api")
    if not s62 or not app:
        return report()

    # s62 runs `serve` with the ConfigMap's config.
    args = s62.get("args", [])
    check(args[:1] == ["serve"], "s62 container must run `serve`")
    config_path = args[args.index("--config") + 1] if "--config" in args else None
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in s62.get("volumeMounts", [])}

    def volume_at(path: str):
        """The (mount, volume) whose mountPath is the longest prefix of path."""
        best = None
        for mp, m in mounts.items():
            if path == mp or path.startswith(mp.rstrip("/") + "/"):
                if best is None or len(mp) > len(best[0]["mountPath"]):
                    best = (m, volumes.get(m["name"], {}))
        return best

    found = volume_at(config_path or "")
    check(found is not None and found[1].get("configMap", {}).get("name") == "s62-config",
          f"--config {config_path} is not on the s62-config ConfigMap volume")

    # Ports and probes agree with sidecar.toml.
    listen_port = int(cfg["listen"]["address"].rsplit(":", 1)[1])
    admin_port = int(cfg["admin"]["address"].rsplit(":", 1)[1])
    admin_host = cfg["admin"]["address"].rsplit(":", 1)[0]
    check(admin_host in ("0.0.0.0", "[::]"), "admin must listen on all interfaces for kubelet probes")
    query_port = int(cfg["query"]["address"].rsplit(":", 1)[1]) if "query" in cfg else None
    s62_ports = {listen_port, admin_port} | ({query_port} if query_port else set())
    declared = {p["containerPort"] for p in s62.get("ports", [])}
    check(declared == s62_ports, f"s62 declares ports {declared}, config says {sorted(s62_ports)}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        p = s62.get(probe, {}).get("httpGet", {})
        check(p.get("path") == path, f"s62 {probe} must GET {path}")
        check(port_of(s62, p.get("port")) == admin_port, f"s62 {probe} must use the admin port {admin_port}")
    ready_timeout = s62.get("readinessProbe", {}).get("timeoutSeconds", 1)
    check(ready_timeout >= 3, "readinessProbe.timeoutSeconds must exceed /readyz's 2 s check timeout")

    # The records app: loopback only, no declared ports, and it is s62's upstream.
    check(not app.get("ports"), "records-api must declare no ports")
    check(app.get("livenessProbe", {}).get("httpGet") is None
          and app.get("readinessProbe", {}).get("httpGet") is None,
          "records-api probes cannot reach 127.0.0.1 from the kubelet")
    upstream = urlsplit(cfg["upstream"]["url"])
    check(upstream.hostname is not None and ipaddress.ip_address(upstream.hostname).is_loopback,
          f"upstream {cfg['upstream']['url']} must be the app on loopback")
    app_words = " ".join(str(a) for a in app.get("command", []) + app.get("args", []))
    app_words += " " + " ".join(str(e.get("value", "")) for e in app.get("env", []))
    check("127.0.0.1" in app_words and str(upstream.port) in app_words,
          f"records-api is not told to listen on 127.0.0.1:{upstream.port}")
    check("0.0.0.0" not in app_words, "records-api must not listen on all interfaces")

    # The signing key: a Secret with mode 0400, mounted read-only; s62 reads the copy.
    key_file = cfg["log"]["key_file"]
    secret_vols = [n for n, v in volumes.items() if "secret" in v]
    key_secret = [n for n in secret_vols if volumes[n]["secret"].get("secretName") == "s62-signing-key"]
    check(len(key_secret) == 1, "one volume must come from the s62-signing-key Secret")
    if key_secret:
        sv = volumes[key_secret[0]]["secret"]
        modes = {sv.get("defaultMode")} | {i.get("mode", sv.get("defaultMode")) for i in sv.get("items", [])}
        check(modes == {0o400}, f"signing key Secret mode must be 0400, is {sorted(oct(m) for m in modes if m is not None)}")
        for c in all_containers:
            for m in c.get("volumeMounts", []):
                if m["name"] == key_secret[0]:
                    check(m.get("readOnly") is True, f"{c['name']} mounts the signing key Secret writable")
    key_at = volume_at(key_file)
    check(key_at is not None and key_at[0].get("readOnly") is True, f"s62 must see {key_file} on a read-only mount")
    if key_at and "emptyDir" in key_at[1]:
        check(key_at[1]["emptyDir"].get("medium") == "Memory", "the key copy must stay in memory")
        inits = [c for c in pod.get("initContainers", [])
                 if any(m["name"] == key_at[0]["name"] for m in c.get("volumeMounts", []))]
        check(len(inits) == 1 and "0400" in inits[0].get("command", []) and key_file in inits[0].get("command", []),
              "an init container must copy the key there with mode 0400")
    for n in secret_vols:
        check(not any(volume_at(p) and volume_at(p)[0]["name"] == n for p in [cfg["log"]["data_dir"]]),
              "the log must not be on a Secret volume")

    # The log on the claim, writable.
    data_at = volume_at(cfg["log"]["data_dir"])
    check(data_at is not None and "persistentVolumeClaim" in data_at[1] and not data_at[0].get("readOnly"),
          f"log.data_dir {cfg['log']['data_dir']} must be on a writable PersistentVolumeClaim")
    claims = {c["metadata"]["name"] for c in res.get("PersistentVolumeClaim", [])}
    if data_at and "persistentVolumeClaim" in data_at[1]:
        check(data_at[1]["persistentVolumeClaim"]["claimName"] in claims, "the log's claim is not in the manifests")
    cp_dir = cfg.get("admin", {}).get("checkpoint_dir")
    if cp_dir:
        at = volume_at(cp_dir)
        check(at is not None and not at[0].get("readOnly"), f"admin.checkpoint_dir {cp_dir} must be writable")

    # The auditor query service's TLS material: on a Secret, mounted read-only.
    if query_port:
        for key in ("cert_file", "key_file", "client_ca_file"):
            path = cfg["query"][key]
            at = volume_at(path)
            check(at is not None and "secret" in at[1] and at[0].get("readOnly") is True,
                  f"query.{key} {path} must be on a read-only Secret mount")

    # Shutdown: the kubelet waits longer than s62 drains.
    grace = pod.get("terminationGracePeriodSeconds", 30)
    drain_ms = max([v for k, v in walk(cfg) if k.endswith("grace_ms")] or [30_000])
    check(grace * 1000 >= drain_ms + 10_000,
          f"terminationGracePeriodSeconds {grace} must exceed the drain grace ({drain_ms} ms) by 10 s")

    # One Service exposes s62's client port and nothing else; with [query], one more exposes the
    # auditor port and nothing else. None exposes the admin port or the app.
    services = res.get("Service", [])
    wanted = [{listen_port}] + ([{query_port}] if query_port else [])
    check(len(services) == len(wanted), f"expected {len(wanted)} Services, found {len(services)}")
    seen = []
    for svc in services:
        name = svc["metadata"]["name"]
        sel = svc["spec"].get("selector", {})
        check(sel and all(labels.get(k) == v for k, v in sel.items()), f"Service {name} does not select the Pod")
        targets = {port_of(s62, p.get("targetPort", p["port"])) for p in svc["spec"]["ports"]}
        check(targets in wanted, f"Service {name} targets ports {targets}; each Service may expose only one of {wanted}")
        seen.append(targets)
        check(svc["spec"].get("type", "ClusterIP") in ("ClusterIP", "LoadBalancer", "NodePort"), "odd Service type")
    for w in wanted:
        check(seen.count(w) == 1, f"exactly one Service must expose port {sorted(w)[0]}")

    # NetworkPolicy (optional): admits only s62's ports.
    for np in res.get("NetworkPolicy", []):
        sel = np["spec"]["podSelector"].get("matchLabels", {})
        check(all(labels.get(k) == v for k, v in sel.items()), "NetworkPolicy does not select the Pod")
        check("Ingress" in np["spec"].get("policyTypes", []), "NetworkPolicy must restrict Ingress")
        for rule in np["spec"].get("ingress", []):
            ports = {p.get("port") for p in rule.get("ports", [])}
            check(bool(ports) and ports <= s62_ports,
                  f"NetworkPolicy admits ports {ports}; only {sorted(s62_ports)} are s62's")
            if ports & {admin_port, query_port}:
                check(bool(rule.get("from")),
                      f"NetworkPolicy admits {sorted(ports)} from anywhere; admin and audit ports need a `from`")
    return report()


def walk(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from walk(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def report() -> int:
    for f in failures:
        print(f"  FAIL kubernetes: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
