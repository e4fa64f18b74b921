"""The Kubernetes adapter against a real API server's recorded answers (tests/recorded/
kubernetes: kube-apiserver 1.37, the chart's RBAC: get and patch of one scale subresource)."""

import asyncio
import os

import httpx
import pytest

from policy_controller.kubernetes import (
    KubernetesError,
    Scale,
    ScaleClient,
    TokenFile,
    parse_scale,
    scale_path,
)


def _client(replay, token_file, name="tb-sip-proxy", kind="statefulsets"):
    return ScaleClient(
        "http://kubernetes.test",
        "ims-rec",
        kind,
        name,
        TokenFile(token_file),
        transport=replay.transport(),
    )


async def _calls(client, *calls):
    try:
        return [await call(client) for call in calls]
    finally:
        await client.aclose()


def _get(client):
    return client.get()


def _patch(replicas):
    return lambda client: client.patch(replicas)


def test_reads_spec_and_status_replicas(kube_replay, token_file):
    replay = kube_replay("get-scale", "get-scale-after-patch")
    first, second = asyncio.run(_calls(_client(replay, token_file), _get, _get))
    # the API leaves a zero out: an empty spec is 0 replicas
    assert first == Scale(spec_replicas=0, status_replicas=0, resource_version="356")
    assert second == Scale(spec_replicas=2, status_replicas=0, resource_version="358")
    assert replay.mismatches == []


def test_patches_with_a_merge_patch(kube_replay, token_file):
    replay = kube_replay("patch-scale", "patch-scale-back")
    up, back = asyncio.run(_calls(_client(replay, token_file), _patch(2), _patch(0)))
    assert (up.spec_replicas, back.spec_replicas) == (2, 0)
    assert replay.mismatches == []  # method, path, content type and body as recorded
    assert replay.requests[0].headers["content-type"] == "application/merge-patch+json"
    assert replay.requests[0].content == b'{"spec":{"replicas":2}}'


def test_an_invalid_value_is_a_typed_error_with_the_apis_message(kube_replay, token_file):
    replay = kube_replay("patch-scale-negative")
    with pytest.raises(KubernetesError) as caught:
        asyncio.run(_calls(_client(replay, token_file), _patch(-1)))
    error = caught.value
    assert (error.status, error.reason) == (422, "Invalid")
    assert "spec.replicas: Invalid value: -1" in error.message
    assert str(error).startswith("422 Invalid: Scale.autoscaling")
    assert replay.mismatches == []


def test_another_name_is_forbidden_naming_the_verb_and_resource(kube_replay, token_file):
    replay = kube_replay("get-scale-other-name-forbidden")
    with pytest.raises(KubernetesError) as caught:
        asyncio.run(_calls(_client(replay, token_file, name="other"), _get))
    assert (caught.value.status, caught.value.reason) == (403, "Forbidden")
    assert 'cannot get resource "statefulsets/scale"' in str(caught.value)
    assert replay.mismatches == []


def test_a_forbidden_resource_answer_is_a_typed_error(recorded):
    # the controller never asks for the StatefulSet itself; its RBAC would refuse it so
    recording = recorded.load("kubernetes", "get-statefulset-forbidden")
    error = _error(recording["response"]["status"], recording["response"]["body"])
    assert (error.status, error.reason) == (403, "Forbidden")
    assert 'cannot get resource "statefulsets" in API group "apps"' in error.message


def test_a_bad_token_is_unauthorized(kube_replay, token_file):
    replay = kube_replay("get-scale-bad-token", token="recorded-token")
    with pytest.raises(KubernetesError) as caught:
        asyncio.run(_calls(_client(replay, token_file), _get))
    assert (caught.value.status, str(caught.value)) == (401, "401 Unauthorized: Unauthorized")


def test_not_found_is_a_typed_error():
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": 'statefulsets.apps "tb-sip-proxy" not found',
        "reason": "NotFound",
        "code": 404,
    }
    error = _error(404, body)
    assert (error.status, error.reason, error.message) == (
        404,
        "NotFound",
        'statefulsets.apps "tb-sip-proxy" not found',
    )


def test_an_answer_that_is_no_status_still_gives_its_code():
    assert _error(502, None).status == 502
    with pytest.raises(KubernetesError, match="not a Scale"):
        parse_scale(200, {"kind": "StatefulSet"})


def test_the_token_is_read_again_when_it_rotates(kube_replay, token_file):
    replay = kube_replay("get-scale", "get-scale", token="rotated-token")

    async def scenario():
        client = _client(replay, token_file)
        try:
            with pytest.raises(KubernetesError, match=r"^500 "):
                await client.get()  # the old token: the replay refuses it
            token_file.write_text("rotated-token\n")
            stat = token_file.stat()
            os.utime(token_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
            return await client.get()
        finally:
            await client.aclose()

    assert asyncio.run(scenario()).spec_replicas == 0
    assert replay.requests[-1].headers["authorization"] == "Bearer rotated-token"


def test_a_missing_token_file_is_an_error_without_a_status(kube_replay, tmp_path):
    replay = kube_replay("get-scale")
    with pytest.raises(KubernetesError, match="cannot read the service account token") as caught:
        asyncio.run(_calls(_client(replay, tmp_path / "absent"), _get))
    assert caught.value.status is None
    assert replay.requests == []


def test_an_unreachable_api_is_an_error(token_file):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = ScaleClient(
        "http://kubernetes.test",
        "ims-rec",
        "statefulsets",
        "tb-sip-proxy",
        TokenFile(token_file),
        transport=httpx.MockTransport(refuse),
    )
    with pytest.raises(KubernetesError, match="unreachable") as caught:
        asyncio.run(_calls(client, _get))
    assert caught.value.status is None


def test_paths_of_both_kinds():
    assert scale_path("ns", "deployments", "tb-sip-proxy") == (
        "/apis/apps/v1/namespaces/ns/deployments/tb-sip-proxy/scale"
    )


def _error(status, body):
    with pytest.raises(KubernetesError) as caught:
        parse_scale(status, body)
    return caught.value
