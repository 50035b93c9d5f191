"""The restore and release components' functions, against a fake Kubernetes core API."""

from __future__ import annotations

import builtins
import io
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from kubernetes import client, config

from kfg.runtime.restore import release_claim, restore_claim

NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class FakeCore:
    claims: ClassVar[dict[str, dict[str, Any]]] = {}
    terminating: ClassVar[set[str]] = set()
    deleted: ClassVar[list[str]] = []

    def create_namespaced_persistent_volume_claim(
        self, namespace: str, body: dict[str, Any]
    ) -> None:
        assert namespace == "team-a"
        name = body["metadata"]["name"]
        if name in FakeCore.claims:
            raise client.ApiException(status=409, reason="AlreadyExists")
        FakeCore.claims[name] = body

    def read_namespaced_persistent_volume_claim(self, name: str, namespace: str) -> Any:
        stamp = "2026-01-01T00:00:00Z" if name in FakeCore.terminating else None
        return SimpleNamespace(metadata=SimpleNamespace(deletion_timestamp=stamp))

    def delete_namespaced_persistent_volume_claim(self, name: str, namespace: str) -> None:
        if name not in FakeCore.claims:
            raise client.ApiException(status=404, reason="NotFound")
        del FakeCore.claims[name]
        FakeCore.deleted.append(name)


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> type[FakeCore]:
    real_open = builtins.open

    def fake_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if path == NAMESPACE_FILE:
            return io.StringIO("team-a\n")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(config, "load_incluster_config", lambda: None)
    monkeypatch.setattr(client, "CoreV1Api", FakeCore)
    FakeCore.claims, FakeCore.terminating, FakeCore.deleted = {}, set(), []
    return FakeCore


def test_a_run_restores_its_own_claim_with_the_cluster_default_class(
    cluster: type[FakeCore],
) -> None:
    run = "0b6a3c8e-6a4f-4a0e-9a51-1f0c2d3e4f50"
    name = restore_claim("kfg-work", run, "raw-v1", "20Gi", "ReadWriteOnce", "")
    assert name == f"kfg-work-{run}"
    body = cluster.claims[name]
    # No storageClassName at all: Kubernetes' DefaultStorageClass admission then applies
    # the cluster default, where KFP 2.17.0's CreatePVC would have set `standard`.
    assert body["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
        "dataSource": {
            "apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot",
            "name": "raw-v1",
        },
    }
    assert release_claim("kfg-work", run) == name
    assert cluster.deleted == [name] and not cluster.claims


def test_a_named_storage_class_is_used(cluster: type[FakeCore]) -> None:
    restore_claim("kfg-data-1234abcd", "", "raw-v1", "1Gi", "ReadOnlyMany", "fast")
    assert cluster.claims["kfg-data-1234abcd"]["spec"]["storageClassName"] == "fast"


def test_a_shared_claim_is_created_once_and_reused(cluster: type[FakeCore]) -> None:
    for _ in range(2):
        assert restore_claim("kfg-data-1234abcd", "", "raw-v1", "1Gi", "ReadOnlyMany", "") == (
            "kfg-data-1234abcd"
        )
    assert list(cluster.claims) == ["kfg-data-1234abcd"]


def test_a_claim_being_deleted_is_not_reused(cluster: type[FakeCore]) -> None:
    restore_claim("kfg-data-1234abcd", "", "raw-v1", "1Gi", "ReadOnlyMany", "")
    cluster.terminating.add("kfg-data-1234abcd")
    with pytest.raises(RuntimeError, match="is being deleted"):
        restore_claim("kfg-data-1234abcd", "", "raw-v1", "1Gi", "ReadOnlyMany", "")


def test_release_after_a_failed_restore_deletes_nothing(cluster: type[FakeCore]) -> None:
    assert release_claim("kfg-work", "run") == "kfg-work-run"
    assert cluster.deleted == []
