"""`python -m z2m_qbkg40lm.healthcheck CONFIG`: is the daemon of this configuration serving?

For container healthchecks (docker-compose.yml) and monitoring. It connects to the configuration's
broker (its credentials and TLS settings, under an identifier of its own so that the daemon's
session is left alone), sends `<base>/bridge/request/health_check` with a fresh transaction id and
waits for the matching response. A process that is up but whose event loop, broker connection or
request handling is stuck gives no answer, so this checks what a user relies on.

Exit 0: the daemon answered healthy. Exit 1: it answered unhealthy, did not answer in time, or the
broker could not be reached; the reason is the one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path

import aiomqtt

from z2m_qbkg40lm.config import ConfigError, MqttConfig, load_config
from z2m_qbkg40lm.mqtt.client import MqttSetupError, build_tls_context

DEFAULT_TIMEOUT_S = 10.0


class Unhealthy(Exception):
    """The check failed; the message says why."""


async def check(config: MqttConfig, wait_s: float) -> None:
    """Return when the daemon answers health_check healthy within `wait_s`; raise Unhealthy otherwise."""
    base = config.base_topic
    transaction = f"healthcheck-{uuid.uuid4().hex[:8]}"
    password = config.password.get_secret_value() if config.password is not None else None
    try:
        tls_context = build_tls_context(config)
    except MqttSetupError as exc:
        raise Unhealthy(str(exc)) from None
    client = aiomqtt.Client(
        config.host,
        config.port,
        username=config.user,
        password=password,
        identifier=f"z2m-qbkg40lm-healthcheck-{uuid.uuid4().hex[:8]}",
        timeout=wait_s,
        tls_context=tls_context,
    )
    try:
        async with asyncio.timeout(wait_s), client:
            await client.subscribe(f"{base}/bridge/response/health_check", qos=1)
            request = json.dumps({"transaction": transaction})
            await client.publish(f"{base}/bridge/request/health_check", request, qos=1)
            async for message in client.messages:
                response = _parse(message.payload)
                if response.get("transaction") != transaction:
                    continue
                data = response.get("data")
                if response.get("status") == "ok" and isinstance(data, dict) and data.get("healthy") is True:
                    return
                raise Unhealthy(f"the daemon answered unhealthy: {json.dumps(response)[:300]}")
    except TimeoutError:
        raise Unhealthy(
            f"no answer on {base}/bridge/response/health_check within {wait_s:g} s "
            f"(is the daemon running and connected to {config.host}:{config.port}?)"
        ) from None
    except aiomqtt.MqttError as exc:
        reason = str(exc).replace(password, "***") if password else str(exc)
        raise Unhealthy(f"cannot reach the broker {config.host}:{config.port}: {reason}") from None
    raise Unhealthy("the broker closed the connection before the daemon answered")


def _parse(payload: object) -> dict[str, object]:
    if not isinstance(payload, bytes | str):
        return {}
    try:
        value = json.loads(payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def main(argv: list[str] | None = None) -> int:
    """Run the check; 0 healthy, 1 not (reason on stderr)."""
    parser = argparse.ArgumentParser(
        prog="python -m z2m_qbkg40lm.healthcheck",
        description="Exit 0 when the daemon of this configuration answers "
        "bridge/request/health_check healthy.",
    )
    parser.add_argument("config", type=Path, help="the daemon's configuration file (YAML)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        print(f"unhealthy: {'; '.join(exc.problems)}", file=sys.stderr)
        return 1
    try:
        asyncio.run(check(loaded.config.mqtt, args.timeout))
    except Unhealthy as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
