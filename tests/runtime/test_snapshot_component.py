"""The `snapshot: after` component's function, against a fake Kubernetes custom-objects API."""

from __future__ import annotations

import builtins
import io
from typing import Any, ClassVar

import pytest
from kubernetes import client, config

from kfg.runtime.snapshot import take_volume_snapshot

NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class FakeObjects:
    created: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    states: ClassVar[list[dict[str, Any]]] = []

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]
    ) -> None:
        assert (group, version, plural) == ("snapshot.storage.k8s.io", "v1", "volumesnapshots")
        FakeObjects.created.append((namespace, body))

    def get_namespaced_custom_object(self, *args: str) -> dict[str, Any]:
        return {"status": FakeObjects.states.pop(0)} if FakeObjects.states else {"status": {}}


@pytest.fixture
def fake_cluster(monkeypatch: pytest.MonkeyPatch) -> type[FakeObjects]:
    real_open = builtins.open

    def fake_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if path == NAMESPACE_FILE:
            return io.StringIO("team-a\n")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(config, "load_incluster_config", lambda: None)
    monkeypatch.setattr(client, "CustomObjectsApi", FakeObjects)
    FakeObjects.created = []
    return FakeObjects


def test_creates_the_snapshot_and_waits_until_ready(fake_cluster: type[FakeObjects]) -> None:
    fake_cluster.states = [{}, {"readyToUse": False}, {"readyToUse": True, "restoreSize": "1Gi"}]
    assert take_volume_snapshot("work", "work-prep", "1234", "csi", 10, 0) == "work-prep-1234"
    [(namespace, body)] = fake_cluster.created
    assert namespace == "team-a" and body["metadata"]["name"] == "work-prep-1234"
    assert body["spec"] == {
        "source": {"persistentVolumeClaimName": "work"},
        "volumeSnapshotClassName": "csi",
    }


def test_reports_a_failed_snapshot(fake_cluster: type[FakeObjects]) -> None:
    fake_cluster.states = [{"error": {"message": "driver does not support snapshots"}}]
    with pytest.raises(RuntimeError, match="driver does not support snapshots"):
        take_volume_snapshot("work", "s", "1", "", 10, 0)


def test_times_out(fake_cluster: type[FakeObjects]) -> None:
    fake_cluster.states = []
    with pytest.raises(TimeoutError, match="not ready after 0 s"):
        take_volume_snapshot("work", "s", "1", "", 0, 0)
