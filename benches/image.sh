#!/usr/bin/env bash
# Image benchmarks, one hyperfine run each, side by side on the same machine:
#   1. unpack a multi-layer image: `lasso image unpack` vs `umoci unpack` vs plain `tar -x` of
#      the same layers (tar applies no whiteouts and checks nothing: the floor, not a rival);
#   2. pull it from a loopback docker-registry: `lasso image pull` (which also verifies and
#      unpacks every layer into the store, in one pass per layer) vs `skopeo copy` to an OCI
#      layout (download only) and vs `skopeo copy` + `umoci unpack` (the same end state);
#   3. start of a sandbox from a cached image (`lasso run --image`, overlay root) next to the
#      host-view `lasso run`, both running /bin/true.
# Needs: hyperfine umoci skopeo docker-registry (see .ci/run). Run as root from the repo root:
#   bash benches/image.sh            (LASSO=path/to/lasso to skip the release build;
#                                     SECTIONS="pull start" to run only some parts)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
if [ -z "${LASSO:-}" ]; then
  cargo build --release --quiet
  LASSO=$PWD/target/release/lasso
fi
SECTIONS=${SECTIONS:-unpack pull start}
on() { [[ " $SECTIONS " == *" $1 "* ]]; }
W=$(mktemp -d /tmp/lasso-image-bench.XXXXXX)
# Sandboxes' mounters (the agent's ID) walk into the project and the store under here.
chmod 755 "$W"
REG_PID=
cleanup() {
  if [ -n "$REG_PID" ]; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT

# A multi-layer image from host trees (busybox, /usr/bin, python's stdlib, docs): GNU tar layers,
# gzip, assembled into an OCI layout here.
L=$W/layout
mkdir -p "$W/layers"
LAYERS=()
i=0
for src in bin/busybox usr/bin usr/lib/python3 usr/share/doc; do
  [ -e "/$src" ] || continue
  tar -C / -cf "$W/layers/$i.tar" "$src"
  gzip -1 -n "$W/layers/$i.tar"
  LAYERS+=("$W/layers/$i.tar.gz")
  i=$((i + 1))
done
python3 - "$L" "${LAYERS[@]}" <<'PY'
import gzip, hashlib, json, os, platform, sys
L, layers = sys.argv[1], sys.argv[2:]
os.makedirs(f"{L}/blobs/sha256", exist_ok=True)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{L}/blobs/sha256/{d}", "wb").write(data)
    return "sha256:" + d, len(data)
descs, diff_ids = [], []
for p in layers:
    data = open(p, "rb").read()
    diff_ids.append("sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest())
    d, n = put(data)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
cd, cn = put(json.dumps({"architecture": arch, "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode())
md, mn = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
    "layers": descs}).encode())
open(f"{L}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]},
    open(f"{L}/index.json", "w"))
PY
echo "image: ${#LAYERS[@]} layers, $(du -shc "${LAYERS[@]}" | tail -1 | cut -f1) compressed"
S=$W/store
"$LASSO" image --store "$S" --quiet import --name bench:1 "$L"
TAR_X="mkdir -p $W/out-tar"
for l in "${LAYERS[@]}"; do TAR_X="$TAR_X && tar -xzf $l -C $W/out-tar"; done

on unpack && hyperfine --runs "$RUNS" --warmup 1 --export-markdown "$W/unpack.md" \
  --prepare "rm -rf $W/out-lasso $W/out-umoci $W/out-tar; sync" \
  -n "lasso image unpack" "$LASSO image --store $S --quiet unpack bench:1 $W/out-lasso" \
  -n "umoci unpack" "umoci unpack --image $L:bench $W/out-umoci" \
  -n "tar -x (no checks)" "$TAR_X"

# A registry of our own on a free loopback port, seeded with skopeo.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $W/registry
http:
  addr: 127.0.0.1:$PORT
YML
docker-registry serve "$W/registry.yml" >/dev/null 2>&1 &
REG_PID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
H=127.0.0.1:$PORT
skopeo copy --quiet --dest-tls-verify=false "oci:$L:bench" "docker://$H/bench:1"

on pull && hyperfine --runs "$RUNS" --warmup 1 --export-markdown "$W/pull.md" \
  --prepare "rm -rf $W/pull-store $W/pull-skopeo $W/pull-umoci; sync" \
  -n "lasso image pull (+verify +unpack)" "$LASSO image --store $W/pull-store --quiet pull --insecure $H $H/bench:1" \
  -n "skopeo copy (download only)" "skopeo copy --quiet --src-tls-verify=false docker://$H/bench:1 oci:$W/pull-skopeo:bench" \
  -n "skopeo copy + umoci unpack" "skopeo copy --quiet --src-tls-verify=false docker://$H/bench:1 oci:$W/pull-skopeo:bench && umoci unpack --image $W/pull-skopeo:bench $W/pull-umoci"

# A busybox image in the store, and a project owned by a user (root-owned ones are refused).
mkdir -p "$W/bb/bin" "$W/project"
cp /bin/busybox "$W/bb/bin/busybox"
ln -s busybox "$W/bb/bin/sh"
ln -s busybox "$W/bb/bin/true"
tar -C "$W/bb" -cf "$W/bb.tar" .
"$LASSO" image --store "$S" --quiet import --name bench-run:1 "$W/bb.tar"
chown 4321:4321 "$W/project"
export LASSO_IMAGE_STORE=$S
on start && hyperfine --runs "$RUNS" --warmup 2 --export-markdown "$W/start.md" \
  -n "lasso run (host view)" "$LASSO run --dir $W/project -- /bin/true" \
  -n "lasso run --image (cached image, overlay root)" "$LASSO run --dir $W/project --image bench-run:1 -- /bin/true"

cat "$W"/*.md
