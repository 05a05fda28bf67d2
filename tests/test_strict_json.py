"""Every JSON writer emits strict JSON: non-finite numbers become null, never NaN/Infinity."""

from __future__ import annotations

import json
import math

import numpy as np

from scalinglab.cli.common import print_json
from scalinglab.io import atomic_write_json, dumps
from scalinglab.io import strict_json as finite_or_none
from scalinglab.scaling.fits_io import write_fits
from scalinglab.train.metrics import JsonlLogger

BAD = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "np": np.float32("nan"),
       "nested": [1.5, (math.nan, {"x": math.inf})], "ok": 2.0, "s": "NaN"}
CLEAN = {"nan": None, "inf": None, "ninf": None, "np": None,
         "nested": [1.5, [None, {"x": None}]], "ok": 2.0, "s": "NaN"}


def strict(text: str):
    def refuse(token):
        raise AssertionError(f"non-strict JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def test_dumps_converts_non_finite_to_null():
    assert finite_or_none(BAD) == CLEAN
    assert strict(dumps(BAD)) == CLEAN


def test_file_writers_are_strict(tmp_path, capsys):
    bad = {k: v for k, v in BAD.items() if k != "np"}  # what a diverged run's summary holds
    clean = {k: v for k, v in CLEAN.items() if k != "np"}
    atomic_write_json(tmp_path / "summary.json", bad)
    assert strict((tmp_path / "summary.json").read_text()) == clean
    logger = JsonlLogger(tmp_path / "metrics.jsonl", None)
    logger.log({"step": 1, "train_loss": math.nan, "grad_norm": math.inf})
    logger.close()
    assert strict((tmp_path / "metrics.jsonl").read_text()) == {
        "step": 1, "train_loss": None, "grad_norm": None}
    write_fits(tmp_path / "fits.json", bad)
    assert strict((tmp_path / "fits.json").read_text()) == clean
    print_json(bad)
    assert strict(capsys.readouterr().out) == clean
