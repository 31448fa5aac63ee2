#!/usr/bin/env bash
# See the controller work without a cluster: starts kube-emulator (the project's test API server) on loopback,
# creates a source pull secret and labelled namespaces, runs `dynsecret controller` with
# policies/inference-pull-secrets.yaml, then labels a new namespace, changes the source and unlabels a namespace,
# showing the replicas with kubectl and the controller's metrics after each step. Stops everything it started.
#
#   scripts/demo.sh            # uses .build/release (builds kube-emulator there if it is missing)
#   DYNSECRET=path KUBE_EMULATOR=path scripts/demo.sh
#
# Needs kubectl (the independent client that shows the cluster) and curl. No secret value is printed: replicas are
# shown by name, type and content hash.
set -euo pipefail
cd "$(dirname "$0")/.."

DYNSECRET=${DYNSECRET:-.build/release/dynsecret}
KUBE_EMULATOR=${KUBE_EMULATOR:-.build/release/kube-emulator}
[ -x "$DYNSECRET" ] || { echo "demo: $DYNSECRET not found; build it first (the README's first command)" >&2; exit 2; }
if [ ! -x "$KUBE_EMULATOR" ]; then
  echo "== building kube-emulator (once)"
  swift build -c release --static-swift-stdlib --product kube-emulator >/dev/null
fi
command -v kubectl >/dev/null || { echo "demo: kubectl is needed to show the cluster" >&2; exit 2; }
command -v curl >/dev/null || { echo "demo: curl is needed to read the metrics" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# wait_for SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds.
wait_for() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "demo: timed out waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}

export KUBECONFIG="$work/kubeconfig"
"$KUBE_EMULATOR" --kubeconfig-out "$KUBECONFIG" >"$work/emulator.log" 2>&1 &
pids+=($!)
wait_for 10 test -s "$KUBECONFIG"
echo "== kube-emulator: $(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')"

echo "== a source pull secret, two namespaces that want it, one that does not (yet)"
kubectl create namespace inference-platform >/dev/null
# The source is made by dynsecret itself (kubectl-identical output) and applied with kubectl.
source_secret() {
  printf '%s' "$1" | "$DYNSECRET" create-registry nvcr-pull -n inference-platform --server nvcr.io \
    --username '$oauthtoken' --password-stdin | kubectl apply -f - >/dev/null
}
source_secret demo-password-1
for ns in team-a team-b team-c; do kubectl create namespace "$ns" >/dev/null; done
kubectl label namespace team-a team-b inference.example.com/enabled=true >/dev/null

replicas() {
  kubectl get secrets -A -l dynsecret.io/replica=true \
    -o custom-columns='NAMESPACE:.metadata.namespace,NAME:.metadata.name,TYPE:.type,CONTENT-HASH:.metadata.annotations.dynsecret\.io/content-hash'
}
count() { kubectl get secrets -A -l dynsecret.io/replica=true -o name | wc -l | tr -d ' '; }
hashes() { kubectl get secrets -A -l dynsecret.io/replica=true -o jsonpath='{range .items[*]}{.metadata.annotations.dynsecret\.io/content-hash}{"\n"}{end}' | sort -u; }

echo "== dynsecret controller --policy policies/inference-pull-secrets.yaml"
"$DYNSECRET" controller --policy policies/inference-pull-secrets.yaml --health-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
  >"$work/controller.log" 2>&1 &
pids+=($!)
wait_for 20 grep -q "endpoints listening" "$work/controller.log"
port=$(grep -o 'metrics=[0-9]*' "$work/controller.log" | head -1 | cut -d= -f2)
wait_for 20 test "$(count)" = 2
replicas
kubectl get serviceaccount default -n team-a -o jsonpath='team-a ServiceAccount default imagePullSecrets: {.imagePullSecrets[*].name}{"\n"}'

echo "== label team-c: its replica appears"
kubectl label namespace team-c inference.example.com/enabled=true >/dev/null
wait_for 20 test "$(count)" = 3
replicas

echo "== change the source: every replica follows (a new content hash)"
before=$(hashes)
source_secret demo-password-2
changed() { h=$(hashes); [ "$(printf '%s\n' "$h" | wc -l)" = 1 ] && [ "$h" != "$before" ]; }
wait_for 20 changed
replicas

echo "== unlabel team-b: its replica is pruned"
kubectl label namespace team-b inference.example.com/enabled- >/dev/null
wait_for 20 test "$(count)" = 2
replicas

echo "== the controller's metrics"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^dynsecret_(writes_total|replicas|ready) '"|"'^dynsecret_(writes_total|replicas)\{' || true

echo "== done: stopping the controller and the emulator"
