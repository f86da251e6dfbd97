"""The policy pack's entry point: `pulumi preview --policy-pack policies`.

Mandatory by default (production); dev and staging run it as advisory with
`--policy-pack-config policies/advisory.json`.
"""

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import POLICIES

PolicyPack(name="sophia-guardrails", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
