# The neurank image used by docker-compose.yml (worker, one-shot index creation, and the search service).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# CPU-only torch first, pinned, from the PyTorch index: installing the package alone would pull the CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[opensearch,celery,serve]"

RUN useradd --create-home --uid 1000 neurank \
    && mkdir -p /data/neurank \
    && chown neurank:neurank /data/neurank
USER neurank
ENV NEURANK_HOME=/data/neurank

CMD ["neurank", "--help"]
