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


def test_a_configuration_error_stops_the_program_before_any_resource(run_stack):
    with pytest.raises(pulumi.RunError, match=r"sophia-ai:replicas\.orchestrator: must be >= 1"):
        run_stack("sophia-ai-dev", {"sophia-ai:replicas": {"orchestrator": 0}})
