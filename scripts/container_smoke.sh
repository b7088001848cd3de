#!/usr/bin/env bash
# Build the container image and smoke-test it: `mario-tui --help`, a 20-update headless run through the image's
# entry point (its default command), and tmux for the app. Not in the default test run: it takes minutes
# (README.md, "In a container", says how long it took here).
#
#   scripts/container_smoke.sh            # BASE: a local Debian base image made with debootstrap (no registry needed)
#   BASE=python:3.13-slim scripts/container_smoke.sh   # where a registry is reachable
#
# Where image registries are not reachable (these build machines), the base is built from Debian's package archive:
# debootstrap a minimal Debian release whose python3 is 3.13 (trixie), imported as localhost/mario-tui-base:trixie.
# Builds with `podman build --isolation chroot` and runs with `buildah run --isolation chroot`, which work where
# `podman run` cannot set up cgroups or rlimits. Skips (exit 0) with the reason where podman or buildah is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
for tool in podman buildah; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool is not installed (Debian/Ubuntu: apt-get install -y podman buildah debootstrap)"
        exit 0
    fi
done
RELEASE=${RELEASE:-trixie}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
IMAGE=${IMAGE:-localhost/mario-tui:smoke}
BASE=${BASE:-}
if [ -z "$BASE" ]; then
    BASE=localhost/mario-tui-base:$RELEASE
    if ! podman image exists "$BASE"; then
        command -v debootstrap >/dev/null 2>&1 || { echo "SKIP: debootstrap is not installed (for the local base image)"; exit 0; }
        rootfs=$(mktemp -d)
        trap 'rm -rf "$rootfs"' EXIT
        echo "== base image $BASE: debootstrap $RELEASE from $MIRROR"
        debootstrap --variant=minbase --include=python3,python3-venv,tmux,ca-certificates "$RELEASE" "$rootfs" "$MIRROR" \
            > /tmp/mario-tui-debootstrap.log 2>&1 || { tail -20 /tmp/mario-tui-debootstrap.log; exit 1; }
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
        echo "   done at $((SECONDS - started)) s"
    fi
fi

echo "== podman build (BASE=$BASE) -> $IMAGE"
cache_args=()
if command -v uv >/dev/null 2>&1 && [ -d "$(uv cache dir)" ]; then  # reuse this machine's downloads (torch is ~3 GB)
    cache_args=(--volume "$(uv cache dir):/uv-cache" --build-arg UV_CACHE=/uv-cache)
fi
if [ -n "${SSL_CERT_FILE:-}" ] && [ -f "$SSL_CERT_FILE" ]; then  # this machine's CA bundle (a TLS-intercepting proxy)
    cache_args+=(--volume "$SSL_CERT_FILE:/run/host-ca.crt:ro" --build-arg SSL_CERT_FILE=/run/host-ca.crt
                 --build-arg PIP_CERT=/run/host-ca.crt)
fi
podman build --isolation chroot --build-arg BASE="$BASE" "${cache_args[@]}" -t "$IMAGE" . \
    > /tmp/mario-tui-image-build.log 2>&1 || { tail -30 /tmp/mario-tui-image-build.log; exit 1; }
echo "   built at $((SECONDS - started)) s; $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.1f GB", $1/1e9}')"

container=$(buildah from "$IMAGE")
trap 'buildah rm "$container" >/dev/null 2>&1 || true' EXIT
inside() { buildah run --isolation chroot "$container" -- "$@"; }

echo "== mario-tui --help"
inside mario-tui --help | head -3
echo "== the default command: mario-tui --batch, 20 updates (tiny network, 1 worker)"
inside mario-tui-container --steps 20 --workers 1 --frame-size 36 --conv-width 4 --hidden-size 16 --batch-size 8 \
    --buffer-size 600 --learning-starts 40 --collect-steps 8 --eval-every 0 --name smoke | tail -3
inside sh -c 'test -s ~/checkpoints/smoke/weights.pt && test -s ~/checkpoints/smoke/training.csv && whoami && ls ~/checkpoints/smoke'
echo "== --eval of that run, and tmux for the app"
inside mario-tui --eval smoke --episodes 1 --eval-max-steps 50 | tail -2
inside tmux -V
echo "OK: image $IMAGE smoke-tested in $((SECONDS - started)) s"
