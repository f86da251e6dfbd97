"""The NetworkPolicy evaluator the flow matrix test relies on, checked on policies written by hand
against the semantics of networking.k8s.io/v1 (so that a wrong reading cannot pass both)."""

from __future__ import annotations

import pytest

from tests.netpolicy import Cluster, Endpoint, selector_matches

WEB = Endpoint("web", "app", {"role": "web"}, {"http": 8080})
DB = Endpoint("db", "app", {"role": "db"}, {"sql": 5432})
OTHER = Endpoint("other", "elsewhere", {"role": "web"}, {"http": 8080})
INTERNET = Endpoint("internet", ip="203.0.113.9")
NAMESPACES = {"app": {"team": "a"}, "elsewhere": {"team": "b"}}


def cluster(*policies: dict) -> Cluster:
    return Cluster(NAMESPACES, [WEB, DB, OTHER, INTERNET], policies)


def policy(namespace: str, selector: dict, **spec) -> dict:
    return {"metadata": {"name": "p", "namespace": namespace}, "spec": {"podSelector": selector, **spec}}


def test_without_policies_everything_flows():
    c = cluster()
    assert c.allows(WEB, DB, 5432) and c.allows(OTHER, DB, 1) and c.allows(DB, INTERNET, 443)


def test_a_selecting_policy_isolates_its_pods_only_in_its_direction():
    c = cluster(policy("app", {"matchLabels": {"role": "db"}}, policyTypes=["Ingress"]))
    assert not c.allows(WEB, DB, 5432)
    assert c.allows(DB, WEB, 8080)  # egress of db is not isolated
    assert c.allows(DB, INTERNET, 443)


def test_ingress_from_pods_of_the_policys_namespace_on_a_named_port():
    rule = {"from": [{"podSelector": {"matchLabels": {"role": "web"}}}], "ports": [{"port": "sql"}]}
    c = cluster(policy("app", {"matchLabels": {"role": "db"}}, ingress=[rule]))
    assert c.allows(WEB, DB, 5432)
    assert not c.allows(WEB, DB, 5433)
    assert not c.allows(OTHER, DB, 5432)  # same labels, other namespace


def test_namespace_and_pod_selectors_in_one_peer_are_anded_in_two_peers_ored():
    both = {"namespaceSelector": {"matchLabels": {"team": "b"}}, "podSelector": {"matchLabels": {"role": "db"}}}
    c = cluster(policy("app", {"matchLabels": {"role": "db"}}, ingress=[{"from": [both]}]))
    assert not c.allows(OTHER, DB, 5432)  # team b, but not role db
    either = [{"namespaceSelector": {"matchLabels": {"team": "b"}}}, {"podSelector": {"matchLabels": {"role": "db"}}}]
    c = cluster(policy("app", {"matchLabels": {"role": "db"}}, ingress=[{"from": either}]))
    assert c.allows(OTHER, DB, 5432) and not c.allows(WEB, DB, 5432)


def test_egress_to_any_address_on_a_port_and_to_an_ip_block():
    c = cluster(policy("app", {}, policyTypes=["Egress"], egress=[{"ports": [{"protocol": "TCP", "port": 443}]}]))
    assert c.allows(WEB, INTERNET, 443) and not c.allows(WEB, INTERNET, 80) and not c.allows(WEB, DB, 5432)
    block = {"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.9/32"]}}
    c = cluster(policy("app", {}, policyTypes=["Egress"], egress=[{"to": [block]}]))
    assert not c.allows(WEB, INTERNET, 443)


def test_default_deny_and_allow_rules_add_up():
    deny = policy("app", {}, policyTypes=["Ingress", "Egress"])
    allow_out = policy("app", {"matchLabels": {"role": "web"}}, policyTypes=["Egress"], egress=[{"to": [{"podSelector": {}}]}])
    allow_in = policy(
        "app", {"matchLabels": {"role": "db"}}, ingress=[{"from": [{"podSelector": {"matchLabels": {"role": "web"}}}]}]
    )
    assert not cluster(deny).allows(WEB, DB, 5432)
    assert not cluster(deny, allow_out).allows(WEB, DB, 5432)
    assert cluster(deny, allow_out, allow_in).allows(WEB, DB, 5432)
    assert not cluster(deny, allow_out, allow_in).allows(DB, WEB, 8080)


def test_udp_only_rules_allow_no_tcp():
    dns = policy("app", {}, policyTypes=["Egress"], egress=[{"ports": [{"protocol": "UDP", "port": 53}]}])
    assert not cluster(dns).allows(WEB, DB, 53)


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
    ],
)
def test_label_selectors(selector: dict, labels: dict, matches: bool):
    assert selector_matches(selector, labels) is matches
