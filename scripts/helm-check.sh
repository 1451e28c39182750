#!/usr/bin/env bash
# Offline checks of the Helm chart (helm/weft), the Grafana dashboard and the rendered
# Kubernetes manifests:
#
#   1. installs its tools once under ${WEFT_TOOLS:-$HOME/.cache/weft-tools} and reuses
#      them afterwards: helm, built from source with `go install` (Go module proxy), and
#      kubernetes-validate in a Python venv (PyPI), which ships the Kubernetes API
#      JSON schemas, so validation needs no network;
#   2. helm lint --strict with the default values and with values-production.yaml;
#   3. helm template for several value sets (defaults, production, every optional
#      resource on, a single embedded-store node) and validates every rendered
#      manifest strictly (unknown fields are errors) against the Kubernetes API
#      schemas of the oldest and newest supported Kubernetes versions; CRD kinds the
#      schemas do not know (ServiceMonitor) are named and skipped;
#   4. checks that the rendered weft.toml parses and uses only weft's config keys,
#      that probes, ports and the termination grace period fit weft's drain, and that
#      values weft would refuse make the chart fail;
#   5. checks that search credentials reach the pods only from a Secret (the chart's,
#      or an existing one) and never the ConfigMap;
#   6. checks that the dashboard JSON parses, queries only weft's metric names, and
#      that its panels have unique ids and do not overlap.
#
# Needs Go and Python 3 (with venv). Exits non-zero on the first failing step.
# Usage: bash scripts/helm-check.sh
set -euo pipefail

HELM_VERSION=v3.22.0
# The Kubernetes version helm v3.22 is built against (k8s.io/client-go v0.37): the
# default of `helm template`'s capabilities and of lint's deprecation checks, set by
# ldflags as helm's own Makefile does.
HELM_K8S_MAJOR=1
HELM_K8S_MINOR=37
KUBERNETES_VALIDATE_VERSION=1.37.0
# Validate against the oldest Kubernetes the chart supports (Chart.yaml kubeVersion)
# and the newest kubernetes-validate knows.
KUBE_VERSIONS=${KUBE_VERSIONS:-"1.25.0 1.37.0"}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHART="$ROOT/helm/weft"
TOOLS=${WEFT_TOOLS:-$HOME/.cache/weft-tools}
HELM_DIR="$TOOLS/helm-$HELM_VERSION"
HELM="$HELM_DIR/helm"
VENV="$TOOLS/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
PY="$VENV/bin/python"

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf '\nhelm-check: FAILED: %s\n' "$*" >&2; exit 1; }

START=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-helm-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$TOOLS"

# --- tools -------------------------------------------------------------------------

step "helm $HELM_VERSION in $HELM_DIR"
if [[ -x "$HELM" ]] && "$HELM" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
    info "reusing $("$HELM" version --short)"
else
    [[ -x /usr/local/go/bin/go ]] && PATH="$PATH:/usr/local/go/bin"
    command -v go >/dev/null || die "go is not installed (needed to build helm: apt-get install golang, or a Go toolchain on PATH)"
    info "building with $(go version) (go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION; a few minutes the first time)"
    # helm $HELM_VERSION needs Go 1.26: GOTOOLCHAIN=auto lets an older go (Debian's sets
    # GOTOOLCHAIN=local) fetch that toolchain from the Go module proxy; a new enough go
    # builds with itself.
    rm -rf "$HELM_DIR"
    mkdir -p "$HELM_DIR.tmp"
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
        ldflags+=" -X $pkg.k8sVersionMajor=$HELM_K8S_MAJOR -X $pkg.k8sVersionMinor=$HELM_K8S_MINOR"
    done
    # CGO off: a static binary, no C compiler needed. GOFLAGS from the environment
    # (e.g. -mod=vendor) must not leak into an install of a module at a version.
    if ! GOBIN="$HELM_DIR.tmp" CGO_ENABLED=0 GOFLAGS=-trimpath GOTOOLCHAIN=auto \
        go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"; then
        rm -rf "$HELM_DIR.tmp"
        die "go install of helm $HELM_VERSION failed"
    fi
    mv "$HELM_DIR.tmp" "$HELM_DIR"
    info "built $("$HELM" version --short)"
fi

step "kubernetes-validate $KUBERNETES_VALIDATE_VERSION (Kubernetes API schemas, offline) in $VENV"
if [[ -f "$VENV/.complete" ]] && "$PY" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
    info "reusing $("$VENV/bin/kubernetes-validate" --version 2>&1 | tail -n 1)"
else
    command -v python3 >/dev/null || die "python3 is not installed"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" 2>"$WORK/venv.err"; then
        rm -rf "$VENV"
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            info "python3 -m venv failed; installing python3-venv with apt-get"
            apt-get install -y -qq python3-venv >/dev/null 2>&1 ||
                { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; } ||
                die "apt-get install python3-venv failed"
            python3 -m venv "$VENV" || die "python3 -m venv failed"
        else
            cat "$WORK/venv.err" >&2
            die "python3 -m venv failed: install python3-venv"
        fi
    fi
    info "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    "$VENV/bin/pip" install --disable-pip-version-check --no-input -q \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" 'tomli; python_version < "3.11"' ||
        { rm -rf "$VENV"; die "pip install kubernetes-validate failed"; }
    touch "$VENV/.complete"
    info "installed $("$VENV/bin/kubernetes-validate" --version 2>&1 | tail -n 1)"
fi

# The checks written in Python (run with the venv's interpreter: PyYAML, jsonschema).
cat >"$WORK/checks.py" <<'PYEOF'
"""helm-check's checks of rendered manifests, weft.toml and the dashboard."""
import json
import re
import sys

import yaml

try:
    import tomllib
except ImportError:  # Python < 3.11: the venv has tomli
    import tomli as tomllib

# The metrics weft exports at /metrics (docs/operations.md lists them).
METRICS = {
    "weft_connections", "weft_sessions_opened_total", "weft_sessions_closed_total",
    "weft_frames_in_total", "weft_frames_out_total", "weft_messages_persisted_total",
    "weft_batch_messages", "weft_batch_commit_seconds", "weft_delivery_seconds",
    "weft_quic_frames_sent_total", "weft_quic_frames_received_total",
    "weft_quic_bytes_sent_total", "weft_quic_bytes_received_total",
    "weft_quic_reconnects_total", "weft_quic_frames_dropped_total", "weft_cluster_members",
    "weft_redis_errors_total", "weft_redis_seconds", "weft_store_errors_total",
    "weft_store_seconds", "weft_rate_limited_total", "weft_slow_consumer_disconnects_total",
    "weft_http_requests_total", "weft_http_request_seconds",
    "weft_search_index_lag_messages", "weft_search_index_lag_seconds",
    "weft_search_indexed_total", "weft_search_errors_total", "weft_search_seconds",
    "weft_webhook_events_queued_total", "weft_webhook_notices_dropped_total",
    "weft_webhook_deliveries_total", "weft_webhook_attempt_seconds", "weft_webhook_lag_seconds",
    "weft_webhook_queue_lanes", "weft_webhook_queue_due_lanes", "weft_webhook_retry_age_seconds",
    "weft_push_queued_total", "weft_push_dropped_total", "weft_push_skipped_total",
    "weft_push_deliveries_total", "weft_email_digests_total",
}
HISTOGRAMS = {"weft_batch_messages", "weft_batch_commit_seconds", "weft_delivery_seconds",
              "weft_redis_seconds", "weft_store_seconds", "weft_http_request_seconds",
              "weft_search_seconds", "weft_webhook_attempt_seconds", "weft_webhook_lag_seconds"}
# CRDs: no schema in kubernetes-validate; skipped by name, never silently.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def fail(msg):
    print(f"    FAIL: {msg}")
    sys.exit(1)


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def validate(path, versions):
    """Every document strictly against the Kubernetes schemas of each version."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    docs = load(path)
    if not docs:
        fail(f"{path}: no manifests rendered")
    errors = 0
    counts = {}
    for doc in docs:
        kind, api = doc.get("kind"), doc.get("apiVersion")
        name = f'{kind}/{(doc.get("metadata") or {}).get("name")}'
        if (api, kind) in CRD_KINDS:
            print(f"    skipped {name} ({api}): a CRD kind the Kubernetes schemas do not know")
            check_servicemonitor(doc)
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except ValidationError as e:
                where = "/".join(str(p) for p in e.path) or "(top)"
                print(f"    INVALID {name} for Kubernetes {version} at {where}: {e.message}")
                errors += 1
            except SchemaNotFoundError as e:
                print(f"    UNKNOWN {name}: {e.message}")
                errors += 1
        counts[kind] = counts.get(kind, 0) + 1
    if errors:
        fail(f"{path}: {errors} schema error(s)")
    kinds = ", ".join(f"{k} x{n}" if n > 1 else k for k, n in sorted(counts.items()))
    print(f"    {sum(counts.values())} manifests valid (strict) for Kubernetes {' and '.join(versions)}: {kinds}")


def check_servicemonitor(doc):
    """The fields of a ServiceMonitor the chart renders, checked by hand."""
    spec = doc.get("spec") or {}
    eps = spec.get("endpoints") or []
    if not spec.get("selector", {}).get("matchLabels") or not eps:
        fail("ServiceMonitor: spec.selector.matchLabels and spec.endpoints are required")
    allowed = {"port", "path", "scheme", "interval", "scrapeTimeout", "bearerTokenSecret",
               "relabelings", "metricRelabelings", "tlsConfig"}
    for ep in eps:
        extra = set(ep) - allowed
        if extra or ep.get("port") != "http" or ep.get("path") != "/metrics":
            fail(f"ServiceMonitor endpoint {ep}: unexpected fields {sorted(extra)} or port/path")
        if ep.get("scheme") not in ("http", "https") or ("tlsConfig" in ep and ep["scheme"] != "https"):
            fail(f"ServiceMonitor endpoint {ep}: scheme must be http, or https (with any tlsConfig)")
        secret = ep.get("bearerTokenSecret")
        if secret is not None and set(secret) != {"name", "key"}:
            fail(f"ServiceMonitor bearerTokenSecret must have name and key: {secret}")
    print("    ServiceMonitor: selector, endpoints (port http, /metrics) and bearerTokenSecret checked by hand")


def known_config_keys(default_toml):
    """section -> keys of weft's config/default.toml, commented-out optional keys too."""
    text = open(default_toml).read()
    known = {s: set(v) for s, v in tomllib.loads(text).items()}
    section = None
    for line in text.splitlines():
        m = re.match(r"^\[(\w+)\]", line)
        if m:
            section = m.group(1)
        for key in re.findall(r"#\s*(\w+)\s*=", line):
            if section:
                known.setdefault(section, set()).add(key)
    # Keys being added with this chart (metrics token; Redis Cluster seeds).
    known.setdefault("metrics", set()).add("token")
    known.setdefault("redis", set()).add("cluster_nodes")
    return known


def config(path, default_toml):
    """weft.toml in each ConfigMap: parses, known keys only; the pod spec fits the drain."""
    known = known_config_keys(default_toml)
    docs = load(path)
    tomls = [d for d in docs if d["kind"] == "ConfigMap" and "weft.toml" in (d.get("data") or {})]
    if not tomls:
        fail("no ConfigMap with weft.toml rendered")
    cfg = None
    for cm in tomls:
        cfg = tomllib.loads(cm["data"]["weft.toml"])
        for section, body in cfg.items():
            if section not in known:
                fail(f'{cm["metadata"]["name"]}: weft.toml has an unknown section [{section}]')
            for key in body:
                if key not in known[section]:
                    fail(f'{cm["metadata"]["name"]}: weft.toml has an unknown key {section}.{key}')
    print(f"    weft.toml parses ({len(tomls)} ConfigMap(s)) and uses only keys of config/default.toml")

    deps = [d for d in docs if d["kind"] == "Deployment"]
    if len(deps) != 1:
        fail(f"expected one Deployment, got {len(deps)}")
    pod = deps[0]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    server = cfg.get("server", {})
    drain = server.get("drain_window_ms", 5000) + server.get("shutdown_grace_ms", 10000)
    grace = pod["terminationGracePeriodSeconds"]
    if grace * 1000 < drain:
        fail(f"terminationGracePeriodSeconds {grace} < drain window + shutdown grace ({drain} ms)")
    probes = {p: c.get(p, {}).get("httpGet", {}).get("path") for p in ("readinessProbe", "livenessProbe", "startupProbe")}
    if probes != {"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"}:
        fail(f"probes: {probes}")
    ports = {(p["name"], p["protocol"]) for p in c["ports"]}
    if ports != {("http", "TCP"), ("gossip", "UDP"), ("quic", "UDP")}:
        fail(f"container ports: {sorted(ports)}")
    env = {e["name"]: e for e in c["env"]}
    for name in ("POD_IP", "POD_NAME", "WEFT_CONFIG", "WEFT_GOSSIP_GOSSIP_ADVERTISE",
                 "WEFT_CLUSTER_QUIC_ADVERTISE", "WEFT_CLUSTER_HTTP_ADVERTISE", "WEFT_CLUSTER_NODE_ID",
                 "WEFT_SERVER_ADMIN_KEY"):
        if name not in env:
            fail(f"container env lacks {name}")
    if env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] != "status.podIP":
        fail("POD_IP must come from status.podIP")
    sc = c["securityContext"]
    if not (sc.get("readOnlyRootFilesystem") and sc.get("capabilities", {}).get("drop") == ["ALL"]
            and pod["securityContext"].get("runAsNonRoot")):
        fail("securityContext: readOnlyRootFilesystem, drop ALL and runAsNonRoot expected")
    headless = [d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"]
    if len(headless) != 1 or not headless[0]["spec"].get("publishNotReadyAddresses"):
        fail("one headless Service with publishNotReadyAddresses: true expected")
    hl = headless[0]["metadata"]["name"]
    seeds = cfg.get("gossip", {}).get("seeds", [])
    if cfg.get("cluster", {}).get("enabled"):
        if not seeds:
            fail("a cluster with no gossip.seeds")
        if not any(s.startswith(hl + ".") for s in seeds):
            print(f"    note: gossip.seeds {seeds} do not name the headless Service {hl}")
    print(f"    Deployment: probes /readyz /healthz, ports http/TCP gossip/UDP quic/UDP, "
          f"terminationGracePeriodSeconds {grace} s >= {drain / 1000:g} s of drain and grace")


def search(path, expect):
    """Search credentials: only from a Secret via secretKeyRef, never in a ConfigMap.

    expect: "none" (no credentials, no chart Secret), "chart" (the chart's Secret
    <fullname>-search with username and password) or "existing:<name>"."""
    import base64

    docs = load(path)
    dep = [d for d in docs if d["kind"] == "Deployment"][0]
    chart_secret = dep["metadata"]["name"] + "-search"
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    for cm in (d for d in docs if d["kind"] == "ConfigMap" and "weft.toml" in (d.get("data") or {})):
        body = tomllib.loads(cm["data"]["weft.toml"]).get("search", {})
        for key in ("username", "password"):
            if key in body:
                fail(f'{cm["metadata"]["name"]}: weft.toml has search.{key}: credentials belong in a Secret')
        if body.get("backend") == "opensearch" and not body.get("url"):
            fail(f'{cm["metadata"]["name"]}: search.backend "opensearch" without a url')
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    names = ("WEFT_SEARCH_USERNAME", "WEFT_SEARCH_PASSWORD")
    if expect == "none":
        if chart_secret in secrets or any(n in env for n in names):
            fail("no search credentials were given, yet a Secret or WEFT_SEARCH_* env is rendered")
        print("    search: no credentials, no Secret, no WEFT_SEARCH_USERNAME/PASSWORD")
        return
    want = chart_secret if expect == "chart" else expect.split(":", 1)[1]
    for n, key in zip(names, ("username", "password")):
        e = env.get(n)
        if e is None:
            fail(f"container env lacks {n}")
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if "value" in e or ref != {"name": want, "key": key}:
            fail(f"{n} must come from secretKeyRef {{name: {want}, key: {key}}}, got {e}")
    if expect == "chart":
        secret = secrets.get(chart_secret)
        if secret is None or set(secret.get("data") or {}) != {"username", "password"}:
            fail(f"the chart's Secret {chart_secret} with keys username and password expected")
        password = base64.b64decode(secret["data"]["password"]).decode()
        for cm in (d for d in docs if d["kind"] == "ConfigMap"):
            if any(password in v for v in (cm.get("data") or {}).values()):
                fail(f'ConfigMap {cm["metadata"]["name"]} holds the search password')
        print(f"    search: Secret {chart_secret} (username, password), env from secretKeyRef, "
              "the password in no ConfigMap")
    else:
        if chart_secret in secrets:
            fail(f"existingSecret {want} is set, yet the chart renders its own {chart_secret}")
        print(f"    search: env from secretKeyRef of the existing Secret {want}, no chart Secret")


def dashboard(path):
    """The dashboard parses, every query names a weft metric, and only known ones."""
    with open(path) as f:
        try:
            d = json.load(f)
        except json.JSONDecodeError as e:
            fail(f"{path}: not JSON: {e}")
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []) if "expr" in t)
            walk(p.get("panels", []))

    walk(d.get("panels", []))
    if not exprs:
        fail(f"{path}: no queries")
    # Panel ids are unique and no two panels share a grid cell (24 columns).
    seen, cells = set(), {}
    for p in d.get("panels", []):
        if p.get("id") in seen:
            fail(f'dashboard panel id {p.get("id")} is used twice')
        seen.add(p.get("id"))
        g = p["gridPos"]
        if g["x"] < 0 or g["x"] + g["w"] > 24:
            fail(f'dashboard panel {p["id"]} ({p.get("title")}) is outside the 24 columns: {g}')
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    fail(f'dashboard panels {cells[(x, y)]} and {p["id"]} ({p.get("title")}) overlap at x={x} y={y}')
                cells[(x, y)] = p["id"]
    used = set()
    for e in exprs:
        names = set(re.findall(r"\bweft_[a-z0-9_]+", e))
        if not names:
            fail(f"dashboard query names no weft metric: {e}")
        for n in names:
            base = re.sub(r"_(bucket|sum|count)$", "", n)
            if n in METRICS:
                used.add(n)
            elif base in HISTOGRAMS:
                used.add(base)
            else:
                fail(f"dashboard query uses {n}, not a weft metric: {e}")
        if "_bucket" in e and "histogram_quantile" not in e:
            fail(f"a _bucket series outside histogram_quantile: {e}")
    if not any("histogram_quantile" in e and "weft_delivery_seconds_bucket" in e for e in exprs):
        fail("no delivery latency percentile (histogram_quantile over weft_delivery_seconds_bucket)")
    if not any("histogram_quantile" in e and "weft_search_seconds_bucket" in e for e in exprs):
        fail("no search latency percentile (histogram_quantile over weft_search_seconds_bucket)")
    unused = sorted(METRICS - used)
    print(f"    {path.split('/')[-1]}: {len(exprs)} queries in {len(d['panels'])} panels "
          "(unique ids, none overlapping), "
          f"{len(used)} of {len(METRICS)} weft metrics, no others"
          + (f" (not shown: {', '.join(unused)})" if unused else ""))


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "validate":
        validate(sys.argv[2], sys.argv[3].split())
    elif what == "config":
        config(sys.argv[2], sys.argv[3])
    elif what == "search":
        search(sys.argv[2], sys.argv[3])
    elif what == "dashboard":
        dashboard(sys.argv[2])
    elif what == "dashboard-configmap":
        docs = [d for d in load(sys.argv[2]) if d["kind"] == "ConfigMap" and "weft.json" in d.get("data", {})]
        if len(docs) != 1 or docs[0]["metadata"]["labels"].get("grafana_dashboard") != "1":
            fail("one dashboard ConfigMap labelled grafana_dashboard: \"1\" expected")
        if json.loads(docs[0]["data"]["weft.json"]) != json.load(open(sys.argv[3])):
            fail("the dashboard ConfigMap does not hold dashboards/weft.json")
        print("    dashboard ConfigMap: label grafana_dashboard=\"1\", holds dashboards/weft.json")
PYEOF
checks() { "$PY" "$WORK/checks.py" "$@" || die "$1 check failed"; }

# --- lint and render -----------------------------------------------------------------

PROD="$CHART/values-production.yaml"
step "helm lint --strict (default values, then values-production.yaml)"
"$HELM" lint --strict "$CHART" || die "helm lint --strict (default values)"
"$HELM" lint --strict "$CHART" -f "$PROD" || die "helm lint --strict -f values-production.yaml"

# name | helm template arguments | search credentials expected (see checks.py search)
RENDERS=(
    "default||none"
    "production|-f $PROD|existing:weft-opensearch"
    "all-optional|-f $PROD --set autoscaling.targetMemoryUtilizationPercentage=80 --set auth.existingSecret= --set tls.existingSecret= --set podDisruptionBudget.minAvailable=50% --set search.existingSecret= --set search.username=weft --set search.password=s3cret-search --set tls.http.secretName=weft-https --set tls.redis.secretName=weft-redis-tls --set tls.redis.clientCert=true --set tls.cql.secretName=weft-cql-tls --set serviceMonitor.tlsConfig.serverName=weft.example.com|chart"
    "embedded|--set config.store.backend=embedded --set config.cluster.enabled=false --set replicaCount=1 --set serviceMonitor.enabled=true --set dashboards.enabled=true --set networkPolicy.enabled=true --set networkPolicy.httpFrom[0].namespaceSelector.matchLabels.team=chat --set search.backend=embedded|none"
)
for render in "${RENDERS[@]}"; do
    IFS='|' read -r name argline search_expect <<<"$render"
    read -r -a args <<<"$argline"
    out="$WORK/$name.yaml"
    step "helm template ($name${args[*]:+: ${args[*]}})"
    "$HELM" template weft "$CHART" --namespace chat "${args[@]}" >"$out" 2>"$WORK/err" ||
        { cat "$WORK/err" >&2; die "helm template ($name)"; }
    [[ -s "$WORK/err" ]] && { cat "$WORK/err" >&2; die "helm template ($name) printed warnings"; }
    info "$(grep -c '^kind:' "$out") manifests"
    checks validate "$out" "$KUBE_VERSIONS"
    checks config "$out" "$ROOT/config/default.toml"
    checks search "$out" "$search_expect"
done
grep -q '^kind: ServiceMonitor' "$WORK/production.yaml" || die "the production render has no ServiceMonitor"
grep -q '^kind: HorizontalPodAutoscaler' "$WORK/production.yaml" || die "the production render has no HorizontalPodAutoscaler"
grep -q 'cluster_nodes = \["redis://' "$WORK/production.yaml" || die "the production render has no Redis Cluster seeds"
grep -q 'backend = "opensearch"' "$WORK/production.yaml" || die "the production render has no OpenSearch search backend"

step "values weft would refuse make the chart fail"
# name | helm template arguments | words the error must contain
REFUSED=(
    "Redis url and cluster_nodes|--set-json config.redis.cluster_nodes=[\"redis://r:6379\"]|not both"
    "embedded store on 3 pods|--set config.store.backend=embedded --set config.cluster.enabled=false|replicaCount to 1"
    "cluster without cql|--set config.store.backend=embedded|needs config.store.backend"
    "cluster without Redis|--set config.redis.url=|needs Redis"
    "a chart-managed key|--set config.server.listen=127.0.0.1:1|managed by the chart"
    "the admin key in the ConfigMap|--set config.server.admin_key=x|managed by the chart"
    "grace shorter than the drain|--set shutdown.terminationGracePeriodSeconds=5|killed while draining"
    "half of a supplied TLS pair|--set tls.cert=x|go together"
    "an HPA with no target|--set autoscaling.enabled=true --set autoscaling.targetCPUUtilizationPercentage=null|at least one target"
    "a misspelt value (values.schema.json)|--set imagee.tag=1|additional properties"
    "an unknown store backend|--set config.store.backend=redb|must be one of"
    "OpenSearch without a url|--set search.backend=opensearch|search.url is required"
    "an unknown search backend|--set search.backend=elasticsearch|must be one of"
    "an embedded search index on cql|--set search.backend=embedded|needs config.store.backend"
    "search credentials both inline and existing|--set search.existingSecret=os --set search.username=u --set search.password=p|not both"
    "half of the search credentials|--set search.username=u|go together"
    "search settings under config|--set config.search.backend=none|managed by the chart"
)
for refused in "${REFUSED[@]}"; do
    IFS='|' read -r what argline want <<<"$refused"
    read -r -a args <<<"$argline"
    if "$HELM" template weft "$CHART" "${args[@]}" >/dev/null 2>"$WORK/err"; then
        die "helm template accepted $what (${args[*]})"
    fi
    grep -q -- "$want" "$WORK/err" || { cat "$WORK/err" >&2; die "$what: the error does not say \"$want\""; }
    info "refused: $what"
done

# --- dashboard -----------------------------------------------------------------------

step "Grafana dashboard (helm/weft/dashboards/weft.json)"
checks dashboard "$CHART/dashboards/weft.json"
checks dashboard-configmap "$WORK/production.yaml" "$CHART/dashboards/weft.json"
# The same rule as a plain grep: every weft_* name is a metric or a histogram series.
unknown=$(grep -o 'weft_[a-z0-9_]*' "$CHART/dashboards/weft.json" | sort -u |
    sed -E 's/_(bucket|sum|count)$//' | sort -u |
    grep -vxE 'weft_(connections|sessions_opened_total|sessions_closed_total|frames_in_total|frames_out_total|messages_persisted_total|batch_messages|batch_commit_seconds|delivery_seconds|quic_frames_sent_total|quic_frames_received_total|quic_bytes_sent_total|quic_bytes_received_total|quic_reconnects_total|quic_frames_dropped_total|cluster_members|redis_errors_total|redis_seconds|store_errors_total|store_seconds|rate_limited_total|slow_consumer_disconnects_total|http_requests_total|http_request_seconds|search_index_lag_messages|search_index_lag_seconds|search_indexed_total|search_errors_total|search_seconds|webhook_events_queued_total|webhook_notices_dropped_total|webhook_deliveries_total|webhook_attempt_seconds|webhook_lag_seconds|webhook_queue_lanes|webhook_queue_due_lanes|webhook_retry_age_seconds|push_queued_total|push_dropped_total|push_skipped_total|push_deliveries_total|email_digests_total)' || true)
[[ -z "$unknown" ]] || die "the dashboard names unknown metrics: $unknown"
info "grep: every weft_* name in the dashboard is a known metric"

step "helm-check passed in $(($(date +%s) - START)) s (tools in $TOOLS)"
