"""Secrets set as secrets stay secret: in no plain input, output or log line."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import SENTINELS, STACKS, RunStack

REGISTRY = {
    "sophia-ai:images": {"registry": "scoobyjava15", "tag": "abc123", "build": True},
    "sophia-ai:registryAuth": {"username": "sophia-ci"},
}


@pytest.mark.parametrize("stack", STACKS)
def test_no_sentinel_secret_appears_outside_secret_values(
    run_stack: RunStack, stack: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
):
    caplog.set_level(logging.DEBUG)
    run = run_stack(stack, REGISTRY)
    plain = json.dumps([r.inputs for r in run.resources], default=str) + json.dumps(run.recording.outputs)
    revealed = json.dumps([r.plain_inputs for r in run.resources], default=str)
    captured = capsys.readouterr()
    applicable = [
        v for (key, _), v in SENTINELS.items() if stack == "sophia-ai-production" or key not in ("sophia-ai:ssh", "sophia-ai:k3s")
    ]
    for sentinel in applicable:
        assert sentinel in revealed, f"{sentinel} never reached a resource: the test would prove nothing"
        assert sentinel not in plain
        assert sentinel not in caplog.text + captured.out + captured.err


def test_the_scrubbed_view_would_catch_a_plain_secret(run_stack: RunStack):
    # The same check fails for a secret passed in plain text: here, Redis's URL is not secret.
    run = run_stack("sophia-ai-dev")
    plain = json.dumps([r.inputs for r in run.resources], default=str)
    assert "redis://redis.sophia-dev.svc:6379/0" in plain
