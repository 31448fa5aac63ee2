#!/usr/bin/env bash
# Regenerates the golden files with the installed kubectl (client-side only, no cluster needed).
# The files are committed; tests compare dynsecret's emitters with them byte for byte.
set -euo pipefail
cd "$(dirname "$0")"
kubectl version --client | head -1 > kubectl-version.txt

# Typed Secret output (API field order), JSON and YAML.
args=(create secret generic web-tls -n prod --dry-run=client
  --from-literal=token=$'multi\nline value: with # and "quotes"'
  --from-literal=z.key=yes --from-literal=Key10=1 --from-literal=key9=true
  --from-literal=html='<a href="x">&amp;</a>')
kubectl "${args[@]}" -o json > opaque.json
kubectl "${args[@]}" -o yaml > opaque.yaml

# Labels and annotations that need YAML quoting, a literal block, and key ordering.
kubectl label --local -f opaque.json -o json \
  app.kubernetes.io/name=web team=a10 version=2 on=off > labeled.tmp.json
kubectl annotate --local -f labeled.tmp.json -o json \
  note=yes 'x.io/multi=a: b' empty= num=0123 'hash=# not a comment' 'lead=-dash' 'list=[1, 2]' \
  'cfg=first line
second line
' 'date=2001-12-14' 'float=1e3' 'unicode=pässwörd✓日本' 'tilde=~' 'colon=a:b' > annotated.json
kubectl annotate --local -f labeled.tmp.json -o yaml \
  note=yes 'x.io/multi=a: b' empty= num=0123 'hash=# not a comment' 'lead=-dash' 'list=[1, 2]' \
  'cfg=first line
second line
' 'date=2001-12-14' 'float=1e3' 'unicode=pässwörd✓日本' 'tilde=~' 'colon=a:b' > annotated.yaml
rm -f labeled.tmp.json

# Pull secrets (research vectors A1, A3, A6, A9 and a namespaced one).
kubectl create secret docker-registry regcred --dry-run=client -o json \
  --docker-server=registry.example.com --docker-username=alice --docker-password=s3cret --docker-email=alice@example.com > docker-a1.json
kubectl create secret docker-registry regcred --dry-run=client -o json \
  --docker-username=alice --docker-password='<>&"\x' > docker-a9.json
kubectl create secret docker-registry pull.secret -n team-a --dry-run=client -o yaml \
  --docker-server=https://registry.example.com:5000/v2/ --docker-username=ålice --docker-password='pässwörd✓日本' > docker-unicode.yaml
