# mario-tui for GPU boxes (RunPod-style hosts): the project with CUDA-capable torch from PyPI (the lock's build),
# uv, tmux and a non-root user; runs land in the /home/mario/checkpoints volume.
#
#   docker build -t mario-tui .                        (BASE: any Debian-like image with python3 >= 3.13 and venv)
#   docker run --gpus all -v "$PWD/checkpoints:/home/mario/checkpoints" mario-tui --workers 8
#   docker run --gpus all -it -v "$PWD/checkpoints:/home/mario/checkpoints" mario-tui app      (the app, in tmux)
#
# The default command trains headless: `mario-tui --batch` with the options given after the image name.
# README.md ("In a container") has the rest: resuming, the app over SSH, building without a registry.
ARG BASE=python:3.13-slim
FROM ${BASE}

# UV_CACHE: a folder mounted into the build (podman build --volume HOST_UV_CACHE:/uv-cache --build-arg
# UV_CACHE=/uv-cache) that uv downloads into and reuses; without it nothing is cached, so the image holds no cache.
ARG UV_CACHE=""
# Behind a TLS-intercepting proxy: its CA bundle mounted into the build, named here for pip and uv (build-time only).
ARG SSL_CERT_FILE
ARG PIP_CERT
ENV UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/mario-tui/venv \
    PATH=/opt/mario-tui/venv/bin:/opt/uv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TERM=xterm-256color

RUN set -eux; \
    if ! command -v tmux >/dev/null; then \
        apt-get update; apt-get install -y --no-install-recommends tmux; rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv /opt/uv; /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv>=0.5"; \
    useradd --create-home --uid 1000 --shell /bin/bash mario

WORKDIR /opt/mario-tui/src
# The dependencies first, in a layer of their own: rebuilding after a code change reuses it.
COPY pyproject.toml uv.lock README.md ./
RUN set -eux; if [ -n "$UV_CACHE" ]; then export UV_CACHE_DIR="$UV_CACHE"; else export UV_NO_CACHE=1; fi; \
    uv sync --frozen --no-dev --no-install-project --python "$(command -v python3)"
COPY mario_tui ./mario_tui
COPY assets ./assets
COPY scripts/container-entrypoint.sh /usr/local/bin/mario-tui-container
RUN set -eux; if [ -n "$UV_CACHE" ]; then export UV_CACHE_DIR="$UV_CACHE"; else export UV_NO_CACHE=1; fi; \
    uv sync --frozen --no-dev --no-editable --python "$(command -v python3)"; \
    chmod 755 /usr/local/bin/mario-tui-container; \
    mkdir -p /home/mario/checkpoints; chown mario:mario /home/mario/checkpoints; \
    mario-tui --help >/dev/null

USER mario
WORKDIR /home/mario
VOLUME /home/mario/checkpoints
ENTRYPOINT ["mario-tui-container"]
CMD []
