# The neurank image used by docker-compose.yml (worker, one-shot index creation, and the search service).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# CPU-only torch first, pinned, from the PyTorch index: installing the package alone would pull the CUDA build.
# The GPU worker's image (docker-compose.yml, profile "gpu") is built with a CUDA index and GPU=true.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url ${TORCH_INDEX} torch==2.13.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[opensearch,celery,serve]"
# GPU=true: ONNX Runtime's CUDA build in place of the CPU one (both are the `onnxruntime` module)
ARG GPU=false
RUN if [ "$GPU" = "true" ]; then pip uninstall -y onnxruntime && pip install "onnxruntime-gpu>=1.22,<2"; fi

RUN useradd --create-home --uid 1000 neurank \
    && mkdir -p /data/neurank \
    && chown neurank:neurank /data/neurank
USER neurank
ENV NEURANK_HOME=/data/neurank

CMD ["neurank", "--help"]
