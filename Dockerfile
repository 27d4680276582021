# optirec service image.
#
#   docker build -t optirec .                      # CPU torch (the default)
#   docker run -p 8000:8000 -v optirec-data:/data optirec
#   docker-compose up                              # see docker-compose.yml (also: --profile gpu)
#
# torch is installed first, pinned by constraints.txt, from the CPU wheel index (TORCH_INDEX_URL);
# a CUDA build comes from PyPI's default index: --build-arg TORCH_INDEX_URL=https://pypi.org/simple

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# the package's extras: "torch", or "torch,ray" for the images of docker-compose.yml's ray profile
ARG EXTRAS=torch
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# 1. torch alone (the largest layer, cached while the sources change)
COPY constraints.txt ./
RUN pip install -c constraints.txt --index-url "${TORCH_INDEX_URL}" --extra-index-url https://pypi.org/simple \
        "torch==2.13.0"
# 2. the package with its torch-side extras; the constraints keep the torch installed above
COPY pyproject.toml README.md ./
COPY optirec ./optirec
COPY rules ./rules
COPY optimizers ./optimizers
COPY service ./service
RUN pip install -c constraints.txt ".[${EXTRAS}]" \
    && optirec rules > /dev/null

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OPTIREC_HOST=0.0.0.0 \
    OPTIREC_PORT=8000 \
    OPTIREC_TRIAL_STORE=/data/trials.sqlite3
COPY --from=build /opt/venv /opt/venv
# an unprivileged user owns the trial store's folder and nothing else
RUN useradd --create-home --uid 10001 --user-group optirec \
    && mkdir -p /data \
    && chown optirec:optirec /data
VOLUME ["/data"]
USER optirec
WORKDIR /home/optirec
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
CMD ["optirec", "serve", "--host", "0.0.0.0", "--port", "8000"]
