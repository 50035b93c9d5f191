# The image the trial launcher (`kfg trial`) and `kfg submit` Jobs run: kfg and its
# dependencies, nothing else, as a non-root user (uid 1000, which the rendered pods require).
#   docker build -t ghcr.io/<org>/kfg:$(python -c 'import kfg; print(kfg.__version__)') .
# then set spec.launcher.image in kale.yaml, or pass `kfg render --launcher-image`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml README.md constraints.txt /src/
COPY schemas /src/schemas
COPY kfg /src/kfg
RUN pip install -c /src/constraints.txt /src && rm -rf /src \
    && useradd --uid 1000 --user-group --no-create-home --home-dir /tmp kfg

USER 1000:1000
WORKDIR /tmp
ENTRYPOINT ["kfg"]
