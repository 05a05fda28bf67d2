"""Every scaling law, in one package (pure numpy/scipy, no torch).

- ``base``: the ``Law`` interface (``loss``, ``optimum``, ``to_dict`` / ``from_dict``) and
  the registry of methods;
- ``parametric``: L(N, D) laws and their robust multi-start fits (Approach 3, alpha = beta,
  Kaplan, data-constrained); ``multistart`` / ``optim`` the optimiser they share;
- ``frontier``: compute-optimal power laws (Approaches 1 and 2) and the IsoFLOP-minima L*(C);
- ``paper``: the published laws and figures;
- ``fitsfile``: the one fits.json reader; ``forecast``: predictive intervals and warnings.

Importing the package registers every law, so ``Law.from_dict`` knows them all.
"""

from scalinglab.laws import frontier, parametric  # noqa: F401 - registers the laws
