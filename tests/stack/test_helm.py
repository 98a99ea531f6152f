"""helm of the local stack renders a chart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.stack


def test_helm_template_of_a_generated_chart(helm_bin: Path, tmp_path: Path) -> None:
    chart = tmp_path / "smoke"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: smoke\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("replicas: 1\nregion: us-east-1\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-region\n"
        "data:\n  region: {{ .Values.region | quote }}\n"
        "  replicas: {{ .Values.replicas | quote }}\n"
    )
    done = subprocess.run(
        [str(helm_bin), "template", "demo", str(chart), "--set", "replicas=3"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    assert rendered == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "demo-region"},
        "data": {"region": "us-east-1", "replicas": "3"},
    }


def test_helm_reports_a_broken_chart(helm_bin: Path, tmp_path: Path) -> None:
    chart = tmp_path / "broken"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: broken\nversion: 0.1.0\n")
    (chart / "templates" / "x.yaml").write_text("{{ .Values.missing.field }}\n")
    done = subprocess.run(
        [str(helm_bin), "template", "demo", str(chart)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode != 0
    assert "nil pointer" in done.stderr
