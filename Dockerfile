# The ragserve gateway (no engine inside: vLLM runs in its own container).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cli cli
COPY gateway gateway
COPY retrieval retrieval
COPY llm llm
COPY ingest ingest
# The CPU build of torch keeps the image small; embeddings run on the CPU here.
RUN python -m venv /venv \
 && /venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch \
 && /venv/bin/pip install .

FROM python:3.11-slim
# 0.0.0.0: reachable from outside the container, so the gateway refuses to start without
# API keys (RAGSERVE_API_KEYS or RAGSERVE_API_KEYS_FILE) unless
# RAGSERVE_ALLOW_UNAUTHENTICATED=true is given to `docker run` on purpose.
ENV PATH=/venv/bin:$PATH HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 \
    RAGSERVE_HOST=0.0.0.0 RAGSERVE_PORT=8000
RUN useradd --create-home --uid 10001 ragserve
COPY --from=build /venv /venv
USER ragserve
WORKDIR /home/ragserve
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
ENTRYPOINT ["ragserve"]
CMD ["serve"]
