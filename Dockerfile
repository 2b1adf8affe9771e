# Gatehouse's container image: the package built from this tree and installed with its
# dependencies (from the package index) into /opt/gatehouse, served by gunicorn.
#   DOCKER_BUILDKIT=1 docker build -t gatehouse .
#   docker run --rm --env-file gatehouse.env -v gatehouse:/var/lib/gatehouse gatehouse \
#     gatehouse db upgrade                                       # first, and for each release
#   docker run -d --env-file gatehouse.env -v gatehouse:/var/lib/gatehouse -p 8000:8000 gatehouse
# Behind a TLS-inspecting proxy, hand pip that proxy's CA bundle as a build secret:
#   --secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt
# BASE: a Debian bookworm image (python3 3.11); .ci/container tests the image.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY . /src
# lxml and xmlsec as their wheels: they must link the same libxml2 (see the README).
RUN --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && python3 -m venv /opt/gatehouse \
 && /opt/gatehouse/bin/pip install --no-cache-dir --only-binary=lxml,xmlsec /src

FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/gatehouse --no-create-home gatehouse \
 && install -d -o gatehouse -g gatehouse -m 0700 /var/lib/gatehouse
COPY --from=build /opt/gatehouse /opt/gatehouse
# The instance folder (the SQLite file without GATEHOUSE_DATABASE_URL) is the volume.
# gunicorn listens on 0.0.0.0:$PORT (its default when PORT is set), and the health check
# asks 127.0.0.1:$PORT: a --bind given in GUNICORN_CMD_ARGS must still answer there.
ENV PATH=/opt/gatehouse/bin:$PATH \
    GATEHOUSE_INSTANCE_PATH=/var/lib/gatehouse \
    PORT=8000 \
    GUNICORN_CMD_ARGS="--workers 2 --worker-class gthread --threads 4"
USER gatehouse
WORKDIR /var/lib/gatehouse
VOLUME /var/lib/gatehouse
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD ["python3", "-c", \
  "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/readyz', timeout=2)"]
# No control socket: the container's lifecycle is Docker's (stop, restart, health).
CMD ["gunicorn", "--no-control-socket", "idp.wsgi:app"]
