"""Every example renders to the checked-in output under tests/golden/ (one file per region).

After an intended change: `make golden` (pytest --update-golden), then review the diff.
"""

from __future__ import annotations

import example_data as helpers
import pytest

from checkout_operator.render import command

REGIONS = ["ap-south-1", "eu-central-1", "eu-west-1", "us-east-1"]


@pytest.mark.parametrize("name", REGIONS)
def test_region_renders_to_golden(name: str, update_golden: bool) -> None:
    got = command.render_paths([str(helpers.EXAMPLES)], [name])
    golden = helpers.GOLDEN / f"{name}.yaml"
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(got)
    assert golden.exists(), f"{golden} is missing: run `make golden`"
    assert got == golden.read_text(), f"{name} renders differently: run `make golden`, review"


def test_golden_files_cover_every_example_region() -> None:
    regions, _ = helpers.example_objects()
    assert sorted(r.spec.region for r in regions) == REGIONS
    assert sorted(p.stem for p in helpers.GOLDEN.glob("*.yaml")) == REGIONS
