# mmbot: paper-trading market-making bot. Two stages: dependencies and the app are installed into a
# virtualenv in `build`; the runtime stage copies only that venv and the sources, runs as a non-root
# user, holds no secrets (API keys come from the environment at run time, see .env.example).
#
#   docker build -t mmbot:local .
#   docker run --rm mmbot:local mmbot check-config
#   docker compose up            # mock exchange + bot, see docs/operations.md

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler for the optional extension bot/_native.c (the replay's per-line and per-level loops);
# only this stage has it: the runtime stage gets the built module, not the compiler.
# The official image ships Python.h; an image whose python is Debian's (e.g. a locally built stand-in,
# tools/docker-offline.sh) needs python3-dev for it.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && (python -c "import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()['include'] + '/Python.h'))" \
        || apt-get install -y --no-install-recommends python3-dev) \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# Dependencies first (from pyproject's list), so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY README.md setup.py ./
COPY bot ./bot
COPY config ./config
# Editable: the package finds its embedded config at /app/config; /app is copied as is below.
RUN pip install --no-deps -e . && python -m compileall -q bot && python -c "import bot._native"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mmbot \
    && mkdir -p /data /reports && chown mmbot:mmbot /data /reports
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    MMBOT__METRICS__HOST=0.0.0.0 \
    MMBOT__METRICS__PORT=9108 \
    MMBOT__LEDGER__PATH=/data/ledger.sqlite
WORKDIR /app
USER mmbot
# /data and /reports are mount points (compose mounts named volumes there); no VOLUME line, so
# one-off containers (exchange, status, check-config) do not leave anonymous volumes behind.
EXPOSE 9108
# /health answers 200 only when the book is synced and the bot is quoting (python stdlib: no curl in slim).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:' + os.environ.get('MMBOT__METRICS__PORT', '9108') + '/health', timeout=4)"]
CMD ["mmbot", "run", "--log-format", "json"]
