"""The test harness itself: assertions inside `apply` run, and a failing one fails the test."""

from __future__ import annotations

import pulumi
import pytest

from sophia_infra import offline


def test_an_assertion_inside_apply_fails_the_pulumi_test():
    @pulumi.runtime.test
    def inner():
        return pulumi.Output.from_input("sophia-dev").apply(lambda ns: _check(ns == "sophia-prod"))

    with pytest.raises(AssertionError, match="namespace mismatch"):
        inner()


def _check(ok: bool) -> None:
    assert ok, "namespace mismatch"


def test_a_failing_program_fails_the_run():
    def program() -> None:
        raise RuntimeError("broken program")

    with pytest.raises(RuntimeError, match="broken program"):
        offline.run(program, stack="sophia-ai-dev")


def test_a_configuration_error_stops_the_program_before_any_resource(run_stack, monkeypatch: pytest.MonkeyPatch):
    monitors: list[offline.RecordingMonitor] = []

    class Watched(offline.RecordingMonitor):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            monitors.append(self)

    monkeypatch.setattr(offline, "RecordingMonitor", Watched)
    assert len(run_stack("sophia-ai-dev").resources) > 10  # the watch sees what a good run registers
    with pytest.raises(pulumi.RunError, match=r"sophia-ai:replicas\.orchestrator: must be >= 1"):
        run_stack("sophia-ai-dev", {"sophia-ai:replicas": {"orchestrator": 0}})
    assert [record.type for record in monitors[-1].recorded] == []
