# z2m-qbkg40lm: the Aqara QBKG40LM to MQTT, Zigbee2MQTT-style. Data (configuration.yaml, zigbee.db,
# state.json, secrets.yaml) lives in the volume /app/data, which must be writable by uid 1000.
#
# No tini: the daemon handles SIGTERM/SIGINT itself from the moment its event loop starts (a stop
# during start-up still ends cleanly) and starts no child processes, so there is nothing to
# forward or reap. Only a signal in the instant before that (Python still importing) is ignored by
# PID 1, and Docker's SIGKILL ends the container after the grace period.
FROM python:3.14-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY z2m_qbkg40lm ./z2m_qbkg40lm
RUN pip install --no-cache-dir . \
    && rm -rf /src

# dialout: the group that owns serial adapters (/dev/ttyUSB*, /dev/ttyACM*) on Debian-like hosts.
RUN useradd --uid 1000 --user-group --groups dialout --home-dir /app --no-create-home --shell /usr/sbin/nologin z2m \
    && mkdir -p /app/data \
    && chown z2m:z2m /app/data

USER z2m
WORKDIR /app
VOLUME /app/data

CMD ["z2m-qbkg40lm", "run", "--config", "/app/data/configuration.yaml"]
