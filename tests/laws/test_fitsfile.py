"""The one fits.json reader: defensive parsing, one-line errors, the recommended method."""

from __future__ import annotations

import json

import pytest

from scalinglab.errors import ScalinglabError
from scalinglab.laws.fitsfile import load_fits, parse_fits

A3 = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def test_top_level_must_be_an_object(tmp_path):
    path = tmp_path / "fits.json"
    path.write_text("[1, 2]")
    with pytest.raises(ScalinglabError, match="json: fits.json must be a JSON object, got list"):
        load_fits(path)
    path.write_text("{nope")
    with pytest.raises(ScalinglabError, match="fits.json:1: fits.json is not valid JSON"):
        load_fits(path)
    with pytest.raises(ScalinglabError, match="no such file"):
        load_fits(tmp_path / "missing.json")


def test_malformed_methods_are_left_out_with_their_reason():
    fits = parse_fits({"approach3": dict(A3, bootstrap=[list(A3.values()), ["x"], [1, 2]]),
                       "kaplan": {"N_c": "big"}, "approach3_tied": {"error": "too few runs"},
                       "flops_per_param_token": -3}, "f.json")
    assert set(fits.methods) == {"approach3"}
    assert "N_c" in fits.errors["kaplan"] and fits.errors["approach3_tied"] == "too few runs"
    assert fits.dropped_bootstrap_rows == 2 and len(fits.methods["approach3"].bootstrap) == 1
    assert fits.k == 6.0  # a non-positive k is ignored
    with pytest.raises(ScalinglabError, match="method 'kaplan' unavailable .*N_c"):
        fits.method("kaplan")


def test_recommended_method_is_the_default():
    data = {"approach3": A3, "approach3_tied": dict(A3, beta=0.34),
            "recommended": {"method": "approach3_tied", "supported_factor": 8}}
    fits = parse_fits(data, "f.json")
    assert fits.method().method == "approach3_tied" and fits.supported_factor() == 8
    assert fits.frontier()[0] == "approach3_tied"
    # a recommendation of a method that is not in the file is ignored
    fits = parse_fits(dict(data, recommended={"method": "kaplan"}), "f.json")
    assert fits.recommended is None and fits.method().method == "approach3"


def test_study_k_sets_the_optimum(tmp_path):
    # the same law under C = 7.2 N D puts a smaller N_opt at the same budget than under 6 N D
    path = tmp_path / "fits.json"
    path.write_text(json.dumps({"approach3": A3, "flops_per_param_token": 7.2}))
    _, n72, d72 = load_fits(path).optimum("approach3", 1e22)
    _, n6, _ = parse_fits({"approach3": A3}, "x").optimum("approach3", 1e22)
    assert 7.2 * n72 * d72 == pytest.approx(1e22) and n72 < n6
