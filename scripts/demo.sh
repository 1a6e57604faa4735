#!/usr/bin/env bash
# make demo: build a Raspberry-Pi-OS-shaped demo base, turn it into an app
# image with dimimage, then inspect the result. Everything lands in build/demo.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
demo=$top/build/demo
dimimage=$top/build/dimimage
export DIMIMAGE_DATADIR=$top
mkdir -p "$demo"
cd "$demo"
rm -f demo-app.img demo-app.img.* demo-base.img

echo "== 1. A demo base image (Raspberry Pi OS Trixie layout, made without root)"
"$top/scripts/make-fixture.sh" --flavour trixie -o demo-base.img
[[ -f demo-key.pub ]] || ssh-keygen -q -t ed25519 -N '' -C demo@dimimage -f demo-key

echo "== 2. dimimage build --role app"
# No application source in the demo: the api/worker services are pointed at
# prebuilt images instead (see docs/profiles.md). DB_PASSWORD is generated.
# With no observability Pi in the demo there is no OpenObserve password to
# give, so the build warns that the logs would be refused.
"$dimimage" build --role app --base demo-base.img -o demo-app.img \
  --hostname dimdim-app --user pi --ssh-key demo-key.pub \
  --ip 192.168.1.101/24 --gateway 192.168.1.1 --dns 192.168.1.1 --timezone Europe/Berlin \
  --set DIMDIM_API_IMAGE=ghcr.io/dimdim/health-api:latest \
  --set DIMDIM_WORKER_IMAGE=ghcr.io/dimdim/health-worker:latest

echo "== 3. dimimage inspect demo-app.img"
"$dimimage" inspect demo-app.img

echo
echo "Demo image: $demo/demo-app.img (bmap: demo-app.img.bmap, generated secrets: demo-app.img.secrets.env)"
echo "Flash it with: build/dimimage flash $demo/demo-app.img /dev/sdX"
