#!/usr/bin/env bash
# Refresh the vendored front-end files from the npm registry: pinned versions, checked digests.
# Not part of set-up: the files are committed, so installs and CI need neither npm nor a network.
# Run it only to change a version (then update the pins below, run with UPDATE_SUMS=1, review).
set -euo pipefail

VECTORGRID=leaflet.vectorgrid@1.3.0
AWESOME=leaflet.awesome-markers@2.0.5

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

npm pack --silent "$VECTORGRID" "$AWESOME" >/dev/null
mkdir vg am
tar xzf leaflet.vectorgrid-*.tgz -C vg
tar xzf leaflet.awesome-markers-*.tgz -C am

install -D -m 644 vg/package/dist/Leaflet.VectorGrid.bundled.min.js \
  "$here/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js"
install -D -m 644 am/package/dist/leaflet.awesome-markers.min.js \
  "$here/leaflet.awesome-markers/leaflet.awesome-markers.min.js"
install -D -m 644 am/package/dist/leaflet.awesome-markers.css \
  "$here/leaflet.awesome-markers/leaflet.awesome-markers.css"
install -D -m 644 am/package/LICENSE "$here/leaflet.awesome-markers/LICENSE"
for image in markers-soft.png markers-soft@2x.png markers-shadow.png markers-shadow@2x.png; do
  install -D -m 644 "am/package/dist/images/$image" "$here/leaflet.awesome-markers/images/$image"
done

cd "$here"
files=(leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js
       leaflet.awesome-markers/leaflet.awesome-markers.min.js
       leaflet.awesome-markers/leaflet.awesome-markers.css
       leaflet.awesome-markers/images/*.png)
if [[ "${UPDATE_SUMS:-0}" == 1 ]]; then
  sha256sum "${files[@]}" > SHA256SUMS
fi
sha256sum --check --quiet SHA256SUMS
echo "vendored files match SHA256SUMS"
