"""The law forms behind one interface: gradients, recovery, the fits.json round trip."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab.laws import parametric as P
from scalinglab.laws.base import LAWS, Law, LawError
from scalinglab.laws.frontier import IsoflopLaw, fit_saturating

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

TIED = P.TiedLaw(E=1.9, A=300.0, B=900.0, alpha=0.33, beta=0.33)


def grid(law, noise=0.004, seed=0, unique=None):
    rng = np.random.default_rng(seed)
    n, d = np.meshgrid(np.logspace(7, 9.5, 10), np.logspace(8.5, 11.5, 10))
    n, d = n.ravel(), d.ravel()
    return n, d, law.loss(n, d, unique) * np.exp(rng.normal(0, noise, n.size))


def test_tied_gradient_matches_finite_differences():
    n, d, loss = grid(TIED)
    data = P.FORMS["approach3_tied"].log_data(n, d, loss)
    theta = np.array([[5.0, 7.0, 0.5, 0.3], [3.0, 9.0, 0.2, 0.45]])
    _, g = P.tied_objective(theta, *data, delta=1.0)
    for i in range(4):
        step = np.zeros_like(theta)
        step[:, i] = 1e-6
        fp, _ = P.tied_objective(theta + step, *data, delta=1.0)
        fm, _ = P.tied_objective(theta - step, *data, delta=1.0)
        np.testing.assert_allclose(g[:, i], (fp - fm) / 2e-6, rtol=1e-4, atol=1e-7)


def test_tied_form_recovers_its_law_with_one_exponent():
    n, d, loss = grid(TIED)
    law, _ = P.FORMS["approach3_tied"].fit(n, d, loss)
    assert isinstance(law, P.TiedLaw) and law.alpha == law.beta
    assert law.alpha == pytest.approx(TIED.alpha, rel=0.05)
    assert law.E == pytest.approx(TIED.E, rel=0.02)
    # its optimum is the minimum of L along C = 6 N D, like any Approach 3 law
    c = 1e21
    ns = np.logspace(7, 12, 20001)
    assert law.optimum(c)[0] == pytest.approx(ns[np.argmin(law.loss(ns, c / (6 * ns)))],
                                              rel=1e-3)


def test_effective_tokens_follow_muennighoff():
    # no repetition: D' = D; 4 epochs of U: R = 3, D' = U + U R* (1 - exp(-3 / R*))
    u = 1e9
    assert P.effective_tokens(5e8, unique=1e9) == pytest.approx(5e8)
    expect = u + u * 15.4 * (1 - np.exp(-3 / 15.4))
    assert P.effective_tokens(4e9, unique=u) == pytest.approx(expect)
    assert P.effective_tokens(4e9, unique=u) < 4e9
    # many epochs saturate at U (1 + R*)
    assert P.effective_tokens(1e14, unique=u) == pytest.approx(u * 16.4, rel=1e-3)


def test_data_constrained_fit_sees_what_approach3_misses():
    truth = P.DataConstrainedLaw(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
    n, d = np.meshgrid(np.logspace(7, 9, 8), np.logspace(9, 11.5, 10))
    n, d = n.ravel(), d.ravel()
    unique = np.full_like(d, 3e9)  # a 3B-token corpus, repeated up to ~100 epochs
    loss = truth.loss(n, d, unique) * np.exp(np.random.default_rng(0).normal(0, 0.003, n.size))
    dc, _ = P.FORMS["data_constrained"].fit(n, d, loss, unique=unique)
    a3, _ = P.FORMS["approach3"].fit(n, d, loss)
    assert dc.beta == pytest.approx(truth.beta, rel=0.1)
    # extrapolate to 100x more repetition than any fitted run: only the repetition-aware law
    # knows that extra epochs of the same 3B tokens are worth ever less
    nx, dx, ux = np.array([1e8, 1e9]), np.full(2, 3e13), np.full(2, 3e9)
    true = truth.loss(nx, dx, ux)
    assert np.abs(dc.loss(nx, dx, ux) / true - 1).max() < 0.005
    assert np.abs(a3.loss(nx, dx, ux) / true - 1).max() > 0.015


def test_saturating_power_law_recovers_exact_points():
    c = np.logspace(18, 22, 5)
    e, a, gamma, c_ref = fit_saturating(c, 1.7 + 2.0 * (c / 1e20) ** -0.15)
    law = IsoflopLaw(E=e, A=a, gamma=gamma, n_coef=1.0, a=0.5, k=6.0, c_ref=c_ref)
    assert gamma == pytest.approx(0.15, rel=1e-3) and e == pytest.approx(1.7, rel=1e-3)
    assert law.optimal_loss(1e24) == pytest.approx(1.7 + 2.0 * 1e4 ** -0.15, rel=1e-4)
    with pytest.raises(LawError, match="isoflop: .* >= 3 IsoFLOP budgets"):
        fit_saturating(c[:2], [3.0, 2.9])


@pytest.mark.parametrize("method", sorted(set(LAWS) - {"approach1", "approach2"}))
def test_every_law_round_trips_through_its_dict(method):
    cls = LAWS[method]
    law = cls(**{p: 0.3 + i for i, p in enumerate(cls.params())})
    assert Law.from_dict(method, law.to_dict()) == law
    assert cls.from_row(law.row()) == law


def test_from_dict_names_the_method_and_field():
    with pytest.raises(LawError, match="approach3: field\\(s\\) beta missing"):
        Law.from_dict("approach3", {"E": 1.0, "A": 1.0, "B": 1.0, "alpha": 0.3})
    with pytest.raises(LawError, match="unknown law method 'chinchilla'"):
        Law.from_dict("chinchilla", {})
    with pytest.raises(LawError, match="kaplan: expected an object, got list"):
        Law.from_dict("kaplan", [1, 2])
