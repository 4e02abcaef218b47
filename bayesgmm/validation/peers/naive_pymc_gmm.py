# Verbatim copy of ../shared/peers/naive_pymc_gmm.py (the model a user would write by
# following the PyMC examples), kept here so that `make bench` runs from a clean clone.
# ruff: noqa
"""Peer baseline: a Gaussian mixture written the way the PyMC examples teach it.

One LKJCholeskyCov and one MvNormal per component, a list of component
distributions in pm.Mixture, jittered default initialisation, PyMC's own NUTS.
Used only as the "what a user would write instead" side of benchmarks.

    python naive_pymc_gmm.py DATA.csv K [--draws 1000 --tune 1000 --chains 4 --seed 1]

Prints one JSON line: wall seconds, max R-hat, min bulk ESS over the weights
and means, and the number of divergences.
"""

import argparse
import json
import time

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("k", type=int)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    X = pd.read_csv(args.data).select_dtypes("number").to_numpy(float)
    n_features = X.shape[1]
    start = time.perf_counter()
    with pm.Model():
        w = pm.Dirichlet("w", a=np.ones(args.k))
        components = []
        for k in range(args.k):
            chol, _, _ = pm.LKJCholeskyCov(
                f"chol_{k}", n=n_features, eta=2.0,
                sd_dist=pm.Exponential.dist(1.0 / X.std(0).mean(), shape=n_features),
                compute_corr=True,
            )
            mu = pm.Normal(f"mu_{k}", X.mean(0), 10 * X.std(0), shape=n_features)
            components.append(pm.MvNormal.dist(mu=mu, chol=chol))
        pm.Mixture("x", w=w, comp_dists=components, observed=X)
        idata = pm.sample(
            draws=args.draws, tune=args.tune, chains=args.chains,
            random_seed=args.seed, progressbar=False,
        )
    wall = time.perf_counter() - start
    names = ["w"] + [f"mu_{k}" for k in range(args.k)]
    rhat = az.rhat(idata, var_names=names)
    ess = az.ess(idata, var_names=names)
    print(json.dumps({
        "wall_s": round(wall, 2),
        "max_rhat": float(max(float(rhat[v].max()) for v in names)),
        "min_ess_bulk": float(min(float(ess[v].min()) for v in names)),
        "divergences": int(idata.sample_stats["diverging"].sum()),
    }))


if __name__ == "__main__":
    main()
