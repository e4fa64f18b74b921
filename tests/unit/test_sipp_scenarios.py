"""The SIPp scenarios as SippRunner writes them: every placeholder filled, and the
retransmitting call built from the same uac.xml as the plain one."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from testbed.sipp.runner import SCENARIOS, render_scenario


@pytest.mark.parametrize(
    "name", sorted(p.name for p in SCENARIOS.glob("*.xml") if ".part." not in p.name)
)
def test_every_scenario_renders_to_xml_without_placeholders(name: str):
    text = render_scenario(name, 404)
    assert "{{" not in text
    ET.fromstring(text.encode("iso-8859-1"))  # raises on a broken file


def test_a_plain_call_lets_sipp_choose_every_branch():
    text = render_scenario("uac.xml")
    assert text.count("branch=[branch]") == 4  # INVITE, authenticated INVITE, ACK, BYE
    assert "copies" not in text


def test_a_retransmitting_call_sends_its_answered_invite_again_on_the_same_branch():
    root = ET.fromstring(render_scenario("uac.xml", retransmitting=True).encode("iso-8859-1"))
    sends = [e.text or "" for e in root.iter("send")]
    invites = [t for t in sends if t.strip().startswith("INVITE")]
    # the challenged INVITE, the authenticated one and its copy in the loop
    assert len(invites) == 3
    assert "branch=[branch]" in invites[0]
    assert "z9hG4bK-auth-[pid]-[call_number]" in invites[1]
    assert invites[2] == invites[1]
    tests = [e for e in root.iter("test") if e.get("variable") == "copies"]
    assert [t.get("value") for t in tests] == ["20"]
    # the copies come after the 200: the loop follows the authenticated INVITE's answer
    children = list(root)
    answer = next(i for i, e in enumerate(children) if e.get("response") == "200")
    loop = next(i for i, e in enumerate(children) if e.tag == "label")
    assert answer < loop
