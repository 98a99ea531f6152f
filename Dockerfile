# syntax=docker/dockerfile:1
# checkout-operator images, two targets of this one file:
#   docker build -t checkout-operator:0.1.0 .                       # the operator (last stage)
#   docker build --target services -t checkout-services:0.1.0 .     # the checkout services
# (`make image` builds both without Docker: podman on a base made from Debian packages.)
#
# The base image is pinned by tag. For reproducible builds pin it by digest as well, e.g.
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm   # prints the digest
#   ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
# and build with --build-arg PYTHON_IMAGE=... (or edit the default below). Any base with
# Python >= 3.11 answering to `python`, with `python -m venv`, works.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# -- builder: build the wheel, install it (base dependencies only) into a venv ---------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lib/ lib/
COPY operator/ operator/
COPY services/ services/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade "pip>=24" "build>=1.2" \
 && /opt/venv/bin/python -m build --wheel --outdir /dist . \
 && /opt/venv/bin/pip uninstall -y build \
 && /opt/venv/bin/pip install /dist/checkout_operator-*.whl \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# -- services-builder: the same venv plus the services' and tracing extras --------------------
FROM builder AS services-builder
RUN wheel="$(ls /dist/checkout_operator-*.whl)" \
 && /opt/venv/bin/pip install "${wheel}[services,tracing]" \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# -- services: the checkout services (`checkout-services <service>`) --------------------------
FROM ${PYTHON_IMAGE} AS services
LABEL org.opencontainers.image.title="checkout-services" \
      org.opencontainers.image.description="The checkout services deployed by checkout-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/checkout-operator/checkout-operator"
# Nothing is written at run time but /tmp (an emptyDir in the pods): read-only root FS friendly.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=services-builder /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["checkout-services"]

# -- final (default target): slim runtime, the venv only, numeric non-root user -----------------
FROM ${PYTHON_IMAGE} AS operator
LABEL org.opencontainers.image.title="checkout-operator" \
      org.opencontainers.image.description="Kubernetes operator (kopf) for a multi-region checkout" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/checkout-operator/checkout-operator"
# Nothing is written at run time but /tmp (an emptyDir in the chart): read-only root FS friendly.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
EXPOSE 9090 8081
ENTRYPOINT ["checkout-operator"]
CMD ["run", "--all-namespaces"]
