"""Deploy checks for `make lint`: every file under deploy/ parses, and each kind is checked
against what defines it, as far as the tools at hand allow. It says what it could not check.

- Compose: `docker compose config -q` where Docker Compose runs; otherwise the official
  compose-spec JSON schema vendored in deploy/schemas/. Either way every image must carry an
  exact version tag and every file a service mounts from deploy/ must exist.
- Kubernetes: each manifest against Kubernetes' schemas for --kubernetes-version, strictly
  (unknown fields fail), with kubernetes-validate when it is importable (the Makefile runs this
  script with the interpreter that has it); CRDs without a bundled schema (ServiceMonitor) are
  named and skipped. Without kubernetes-validate: YAML parse only. The kustomization must list
  every manifest but the ones applied on their own.
- Prometheus: the alert rules' shape, and the files prometheus.yml refers to. Grafana: the
  dashboards use the provisioned data sources. (Which metrics they name is checked against the
  app by tests/unit/test_deploy_manifests.py.)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_SCHEMA = DEPLOY / "schemas" / "compose-spec.json"
K8S = DEPLOY / "k8s"
# Applied on their own (see their comments), so not in kustomization.yaml.
K8S_SEPARATE = {"migrate-job.yaml", "secret.example.yaml"}
# Custom resources: no schema in kubernetes-validate; their operators validate them.
K8S_CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
# An exact version: a tag with a dotted number in it (not latest, not a bare major such as
# redis:7), optionally followed by a digest.
PINNED = re.compile(r"^[\w.\-/]+:(?=[\w.\-]*\d+\.\d+)[\w.\-]+(@sha256:[0-9a-f]{64})?$")


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"FAIL {message}")

    def ok(self, message: str, since: int = 0) -> None:
        """Print a section's summary, unless the section failed (since: failures before it)."""
        if len(self.failures) == since:
            print(message)


def load_all(report: Report) -> dict[Path, list[Any]]:
    """Every YAML and JSON file under deploy/, parsed (YAML files may hold several documents)."""
    parsed: dict[Path, list[Any]] = {}
    yaml_files = sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")])
    json_files = sorted(DEPLOY.rglob("*.json"))
    for path in yaml_files:
        try:
            parsed[path] = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        except yaml.YAMLError as exc:
            report.fail(f"{rel(path)}: not YAML: {exc}")
    for path in json_files:
        try:
            parsed[path] = [json.loads(path.read_text())]
        except ValueError as exc:
            report.fail(f"{rel(path)}: not JSON: {exc}")
    report.ok(f"deploy: {len(yaml_files)} YAML and {len(json_files)} JSON files parse")
    return parsed


def rel(path: Path) -> str:
    return str(path.relative_to(DEPLOY.parent))


def check_compose(report: Report, compose: dict[str, Any]) -> None:
    since = len(report.failures)
    how = _compose_by_docker(report)
    if how is None:
        import jsonschema

        schema = json.loads(COMPOSE_SCHEMA.read_text())
        validator = jsonschema.validators.validator_for(schema)(schema)
        errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
        for error in errors:
            where = "/".join(str(p) for p in error.path) or "(top)"
            report.fail(f"{rel(COMPOSE)}: {where}: {error.message}")
        how = f"the compose-spec schema ({rel(COMPOSE_SCHEMA)}; docker compose not available)"
    services = compose.get("services", {})
    for name, service in services.items():
        image = service.get("image")
        if "build" in service:
            continue
        if not isinstance(image, str) or not PINNED.match(image):
            report.fail(f"{rel(COMPOSE)}: service {name}: image {image!r} is not pinned to an "
                        f"exact version tag")
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            local = isinstance(source, str) and source.startswith((".", "/"))
            if local and not (COMPOSE.parent / source).exists():
                report.fail(f"{rel(COMPOSE)}: service {name} mounts {source}, which does not "
                            f"exist")
    report.ok(f"compose: {rel(COMPOSE)} checked with {how}; {len(services)} services, "
              f"images pinned, mounted files present", since)


def _compose_by_docker(report: Report) -> str | None:
    """`docker compose config -q` where Docker Compose runs (no daemon needed); None if not."""
    if shutil.which("docker") is None:
        return None
    try:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30,
                               check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        return None
    done = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "-q"],
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        report.fail(f"{rel(COMPOSE)}: docker compose config: {done.stderr.strip()}")
    return "docker compose config -q"


def check_kubernetes(report: Report, parsed: dict[Path, list[Any]], version: str) -> None:
    since = len(report.failures)
    try:
        import kubernetes_validate
    except ImportError:
        kubernetes_validate = None
    manifests = sorted(p for p in parsed if p.parent == K8S)
    kustomization = K8S / "kustomization.yaml"
    listed = set(parsed.get(kustomization, [{}])[0].get("resources", []))
    for name in sorted(listed):
        if not (K8S / name).is_file():
            report.fail(f"{rel(kustomization)}: lists {name}, which does not exist")
    checked, skipped = 0, []
    for path in manifests:
        if path == kustomization:
            continue
        if path.name not in listed and path.name not in K8S_SEPARATE:
            report.fail(f"{rel(path)}: not in kustomization.yaml (nor applied on its own)")
        for doc in parsed[path]:
            kind, api = doc.get("kind"), doc.get("apiVersion")
            name = f"{kind}/{doc.get('metadata', {}).get('name')}"
            if (api, kind) in K8S_CRDS:
                skipped.append(name)
                continue
            if kubernetes_validate is None:
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
                checked += 1
            except kubernetes_validate.SchemaNotFoundError:
                report.fail(f"{rel(path)}: {name}: no schema for {api} {kind} in Kubernetes "
                            f"{version}")
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                report.fail(f"{rel(path)}: {name}: {where}: {exc.message}")
    if kubernetes_validate is None:
        report.ok(f"kubernetes: kubernetes-validate unavailable: {len(manifests)} manifests "
                  f"checked by YAML parse only (no schema validation)", since)
        return
    tool = f"kubernetes-validate {metadata.version('kubernetes-validate')}"
    report.ok(f"kubernetes: {checked} resources valid against the Kubernetes {version} schemas "
              f"({tool}, strict); skipped, CRD without a schema: {', '.join(skipped) or 'none'}",
              since)


def check_prometheus(report: Report, parsed: dict[Path, list[Any]]) -> None:
    since = len(report.failures)
    config = parsed[DEPLOY / "prometheus" / "prometheus.yml"][0]
    for rule_file in config.get("rule_files", []):
        if not (DEPLOY / "prometheus" / Path(rule_file).name).is_file():
            report.fail(f"prometheus.yml: rule file {rule_file} is not in deploy/prometheus/")
    alerts = parsed[DEPLOY / "prometheus" / "alerts.yml"][0]
    count = 0
    for group in alerts.get("groups", []):
        for rule in group.get("rules", []):
            count += 1
            name = rule.get("alert") or rule.get("record")
            missing = [key for key in ("alert", "expr", "for") if key not in rule]
            if "severity" not in rule.get("labels", {}):
                missing.append("labels.severity")
            if "summary" not in rule.get("annotations", {}):
                missing.append("annotations.summary")
            if missing:
                report.fail(f"alerts.yml: rule {name}: missing {', '.join(missing)}")
    report.ok(f"prometheus: {count} alert rules well formed, rule files present", since)


def check_grafana(report: Report, parsed: dict[Path, list[Any]]) -> None:
    since = len(report.failures)
    sources = parsed[DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml"][0]
    uids = {source["uid"] for source in sources.get("datasources", [])}
    dashboards = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    panels = 0
    for path in dashboards:
        dashboard = parsed[path][0]
        for key in ("uid", "title", "panels"):
            if key not in dashboard:
                report.fail(f"{rel(path)}: no {key}")
        for panel in dashboard.get("panels", []):
            panels += 1
            for item in [panel, *panel.get("targets", [])]:
                uid = (item.get("datasource") or {}).get("uid")
                if uid is not None and uid not in uids and not uid.startswith(("$", "--")):
                    report.fail(f"{rel(path)}: panel {panel.get('title')!r} uses data source "
                                f"{uid!r}, which is not provisioned")
    report.ok(f"grafana: {len(dashboards)} dashboards, {panels} panels, data sources provisioned",
              since)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default="1.30.0")
    args = parser.parse_args()
    report = Report()
    parsed = load_all(report)
    if not report.failures:
        check_compose(report, parsed[COMPOSE][0])
        check_kubernetes(report, parsed, args.kubernetes_version)
        check_prometheus(report, parsed)
        check_grafana(report, parsed)
    if report.failures:
        print(f"deploy checks: {len(report.failures)} failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
