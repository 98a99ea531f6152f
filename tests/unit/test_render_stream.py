"""Exact output of the YAML emitter."""

from __future__ import annotations

import yaml

from checkout_operator.render import stream


def test_kubectl_like_block_style() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "x"}},
        "data": {"a.json": '{\n  "k": 1\n}\n', "empty": ""},
        "list": [{"name": "a", "value": "1"}, "b", [], {}],
        "flags": [True, False, None, 3, 1.5],
    }
    assert stream.dump(obj) == (
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: x\n"
        "  labels:\n"
        "    app.kubernetes.io/name: x\n"
        "data:\n"
        "  a.json: |\n"
        "    {\n"
        '      "k": 1\n'
        "    }\n"
        '  empty: ""\n'
        "list:\n"
        "- name: a\n"
        '  value: "1"\n'
        "- b\n"
        "- []\n"
        "- {}\n"
        "flags:\n"
        "- true\n"
        "- false\n"
        "- null\n"
        "- 3\n"
        "- 1.5\n"
    )


def test_strings_that_other_parsers_would_misread_are_quoted() -> None:
    for text in [
        "on",
        "No",
        "true",
        "null",
        "1e3",
        "0x1F",
        "12",
        "1.0",
        "2001-12-14",
        "a: b",
        "- x",
        "#c",
        "~",
    ]:
        line = stream.dump({"k": text})
        assert line.startswith('k: "'), line
        assert yaml.safe_load(line) == {"k": text}
    for text in ["100m", "128Mi", "checkout-operator", "/health/ready", "acct_us", "image:1.0"]:
        assert stream.dump({"k": text}) == f"k: {text}\n"


def test_documents_are_separated() -> None:
    assert stream.dump_all([{"a": 1}, {"b": 2}]) == "---\na: 1\n---\nb: 2\n"
