"""kfg's YAML writer takes shortcuts through PyYAML's representer and resolver; the text it
writes must be the text PyYAML's own dispatch writes with the same settings."""

from __future__ import annotations

from typing import Any

import yaml

from kfg.render import yamlout

TRICKY_STRINGS = [
    "",
    "plain",
    "true",
    "no",
    "null",
    "~",
    "1e-06",
    "0o17",
    "0E0",
    "12",
    "1.5",
    ".inf",
    "- item",
    "key: value",
    "# comment",
    "'quoted'",
    "tab\there",
    "bell\x07",
    "two\nlines\n",
    "trailing space ",
    "ünïcödé",
    "a" * 150,
]


def _documents() -> list[Any]:
    nested: dict[str, Any] = {s or "empty": s for s in TRICKY_STRINGS}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"a": "1"}, "annotations": {}},
            "data": nested,
            "list": [1, 2.5, True, False, None, [], {}, ["a", {"b": [None]}], float("inf")],
            "numbers": {"int": 10**20, "negative": -3, "float": 1e-7, "nan": float("nan")},
            "set": {"s"},  # not a dict, list or str: PyYAML's own representer
        },
        ["top", "level", TRICKY_STRINGS],
        "a document that is one string",
        None,
    ]


class _Generic(yamlout._Dumper):
    """The same dumper without kfg's shortcuts: PyYAML's dispatch and resolver."""

    def represent_data(self, data: Any) -> Any:
        return super(yamlout._Dumper, self).represent_data(data)

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        return super(yamlout._Dumper, self).resolve(kind, value, implicit)


def test_the_shortcuts_write_what_pyyamls_dispatch_writes() -> None:
    documents = _documents()
    generic = yaml.dump_all(
        documents,
        Dumper=_Generic,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
        explicit_start=True,
    )
    expected = generic[: -len("...\n")] if generic.endswith("\n...\n") else generic
    before = yamlout._line_style.cache_info().hits
    assert yamlout.dump_all(documents) == expected
    assert yamlout.dump_all(documents) == expected  # and again, from the caches
    assert yamlout._line_style.cache_info().hits > before
    assert "'1e-06'" in generic and "|\n" in generic  # YAML 1.2-safe quoting still applies


def test_other_settings_go_through_pyyamls_dispatch() -> None:
    value = {"b": [1, {"c": "true"}], "a": "x"}
    for options in ({"sort_keys": True}, {"default_flow_style": None}, {"default_style": '"'}):
        ours = yaml.dump(value, Dumper=yamlout._Dumper, **options)
        theirs = yaml.dump(value, Dumper=_Generic, **options)
        assert ours == theirs
