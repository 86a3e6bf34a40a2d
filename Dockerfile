# whisper-it: one image for every role (front, worker, training), run by
# deploy/entrypoint.sh: `docker run ... whisper-it bot|worker|doctor|...`.
#
#   docker build -t whisper-it .                                    # CPU
#   docker build -t whisper-it:cuda --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#     (CUDA 12 builds: CTranslate2 4.x loads CUDA 12's cuBLAS and cuDNN 9)
#   docker build -t whisper-it:front --build-arg EXTRAS=postgres .  # a front: no model, no torch
#
# EXTRAS picks what is installed (pyproject.toml): "all" for any role; "serve,postgres"
# for a transcription worker that never trains; "postgres" for a front (WHISPER_IT_WORKERS=0).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ARG EXTRAS=all
# Where torch comes from: PyTorch's CPU index by default (no multi-GB CUDA libraries);
# a CUDA index (e.g. .../whl/cu128) for GPUs (run with --gpus all).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WHISPER_IT_DATA_DIR=/data \
    WHISPER_IT_HTTP_LISTEN=0.0.0.0 \
    WHISPER_IT_HTTP_PORT=9090 \
    WHISPER_IT_LOG_FORMAT=json

# An unprivileged user owns the data volume; the code is root's and read-only to it.
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin whisper \
    && mkdir -p /data && chown whisper:whisper /data

WORKDIR /opt/whisper-it
COPY pyproject.toml setup.py README.md ./
COPY alembic ./alembic
COPY bot ./bot
COPY model ./model
COPY storage ./storage
COPY training ./training
RUN pip install --extra-index-url "${TORCH_INDEX_URL}" ".[${EXTRAS}]"
# A CUDA torch brings cuBLAS and cuDNN as pip packages (nvidia-*-cu12); CTranslate2 loads
# them by name, so they go on the loader's path. (No such folders in a CPU build.)
RUN python -c "import glob, site; dirs = [d for s in site.getsitepackages() for d in glob.glob(s + '/nvidia/*/lib')]; open('/etc/ld.so.conf.d/whisper-it-nvidia.conf', 'w').write(''.join(d + chr(10) for d in dirs))" \
    && ldconfig
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/whisper-it-entrypoint

USER whisper
VOLUME ["/data"]
# 9090: /healthz, /readyz, /metrics. 8443: the Telegram webhook (webhook mode only).
EXPOSE 9090 8443
HEALTHCHECK --interval=30s --timeout=10s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['WHISPER_IT_HTTP_PORT'], timeout=5)"]
ENTRYPOINT ["whisper-it-entrypoint"]
CMD ["bot"]
