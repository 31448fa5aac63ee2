#!/usr/bin/env bash
# Admission latency and throughput of `dynsecret webhook` (docs/benchmarks.md, "Admission webhook"):
# kube-emulator with one namespace holding N pull secrets and N ServiceAccounts, the webhook in front of it, and a
# load generator from Debian posting one AdmissionReview (a Deployment whose nvcr.io image a pull secret of its
# ServiceAccount covers) over TLS with keep-alive at C concurrent connections: wrk (its Lua script sets the body and
# prints percentiles in microseconds) for SECONDS at each offered rate in RATES (reviews/s; 0 = as fast as the
# connections go, where latency is queueing; otherwise each connection waits C/RATE s between its requests), or
# with LOADGEN=ab ApacheBench (whole milliseconds, as fast as possible) for 20,000 requests.
#
#   Benchmarks/webhook/run.sh [BUILD_DIR] [SECONDS] [CONCURRENCY] [N]      # apt-get install wrk (or apache2-utils)
set -euo pipefail
bin=${1:-.build/release}; seconds=${2:-10}; concurrency=${3:-50}; n=${4:-200}; loadgen=${LOADGEN:-wrk}; rates=${RATES:-0 2000 10000}
command -v "$loadgen" >/dev/null || { echo "$loadgen is needed (apt-get install wrk, or LOADGEN=ab with apache2-utils)" >&2; exit 2; }
dir=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$dir/tls.key" -out "$dir/tls.crt" \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -days 1 2>/dev/null
"$bin/kube-emulator" --port 0 --kubeconfig-out "$dir/kubeconfig" > "$dir/emulator.log" 2>&1 &
for _ in $(seq 100); do grep -q ready "$dir/emulator.log" 2>/dev/null && break; sleep 0.1; done
export KUBECONFIG=$dir/kubeconfig
kubectl create namespace bench >/dev/null
auth=$(printf '%s' 'user:benchmark-password' | base64 -w0)
{
  echo '{"apiVersion":"v1","kind":"List","items":['
  for i in $(seq "$n"); do
    payload=$(printf '{"auths":{"registry%d.example.com":{"auth":"%s"},"nvcr.io/team%d":{"auth":"%s"}}}' "$i" "$auth" "$i" "$auth" | base64 -w0)
    printf '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"pull-%d","namespace":"bench"},"type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"%s"}},\n' "$i" "$payload"
    printf '{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa-%d","namespace":"bench"},"imagePullSecrets":[{"name":"pull-%d"}]}' "$i" "$i"
    [ "$i" -lt "$n" ] && echo ','
  done
  echo ']}'
} > "$dir/objects.json"
kubectl create -f "$dir/objects.json" >/dev/null
"$bin/dynsecret" webhook --addr 127.0.0.1:0 --tls-cert-file "$dir/tls.crt" --tls-private-key-file "$dir/tls.key" \
    --private-registry nvcr.io > "$dir/webhook.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q webhook.listening "$dir/webhook.log" 2>/dev/null && break; sleep 0.1; done
port=$(grep -o 'address=127.0.0.1:[0-9]*' "$dir/webhook.log" | head -1 | cut -d: -f2)
until curl -sf --cacert "$dir/tls.crt" "https://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.1; done
cat > "$dir/review.json" <<JSON
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"b","kind":{"group":"apps","version":"v1","kind":"Deployment"},"resource":{"group":"apps","version":"v1","resource":"deployments"},"operation":"CREATE","namespace":"bench","name":"d","object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"bench"},"spec":{"template":{"spec":{"serviceAccountName":"sa-$((n / 2))","containers":[{"name":"c","image":"nvcr.io/team$((n / 2))/cuda:12"}]}}}}}}
JSON
curl -s --cacert "$dir/tls.crt" -H 'Content-Type: application/json' --data-binary @"$dir/review.json" "https://127.0.0.1:$port/validate"; echo
if [ "$loadgen" = ab ]; then
  ab -q -k -n 2000 -c "$concurrency" -p "$dir/review.json" -T application/json "https://127.0.0.1:$port/validate" >/dev/null  # warm-up
  ab -k -n 20000 -c "$concurrency" -p "$dir/review.json" -T application/json "https://127.0.0.1:$port/validate" \
      | grep -E 'Requests per second|Failed requests|Non-2xx|^  50%|^  99%|^ 100%'
else
  for rate in $rates; do
  pause=0; [ "$rate" -gt 0 ] && pause=$(( concurrency * 1000 / rate ))
  cat > "$dir/review.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$dir/review.json"); wrk.body = f:read("*a"); f:close()
if $pause > 0 then delay = function() return $pause end end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("reviews/s %.0f  requests %d  errors %d\n", summary.requests / (summary.duration / 1e6), summary.requests,
                         e.connect + e.read + e.write + e.status + e.timeout))
  for _, p in ipairs({50, 90, 99, 99.9}) do io.write(string.format("p%g %.2f ms  ", p, latency:percentile(p) / 1000)) end
  io.write(string.format("max %.2f ms\n", latency.max / 1000))
end
LUA
  echo "offered: $([ "$rate" -gt 0 ] && echo "$rate reviews/s ($pause ms between a connection's requests)" || echo "as fast as possible")"
  wrk -t 2 -c "$concurrency" -d 2s -s "$dir/review.lua" "https://127.0.0.1:$port/validate" >/dev/null  # warm-up
  wrk -t 2 -c "$concurrency" -d "${seconds}s" -s "$dir/review.lua" "https://127.0.0.1:$port/validate" | sed -n '/^reviews/,$p'
  done
fi
echo "webhook RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
