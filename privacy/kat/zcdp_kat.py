"""Known answers for fedcredit-privacy's zCDP -> (epsilon, delta) conversion.

Produced with Google's dp-accounting (PyPI `dp-accounting`, version printed
below). A rho-zCDP mechanism is composed into `RdpAccountant` as
`ZCDpEvent(rho)`, i.e. RDP epsilon(alpha) = rho * alpha at every order.
`RdpAccountant.get_epsilon` / `get_delta` call `compute_epsilon` /
`compute_delta`, which (for orders > 1.01) use

    eps(alpha) = r + log1p(-1/alpha) - log(delta * alpha) / (alpha - 1)

(Canonne-Kamath-Steinke 2020, Proposition 12 / Corollary 13 in arXiv
2004.00010v4; Asoodeh et al. 2001.05990 eq. 20). Rearranged, this is exactly
CKS20's  delta = exp((alpha-1)(alpha*rho - eps)) / (alpha-1) * (1-1/alpha)^alpha.
dp-accounting minimises over a *finite* list of orders, so we pass a dense
geometric grid (ratio 1 + 1e-4 between neighbours, alpha in [1.011, 1e6]) to
approximate the infimum over all alpha > 1; the grid's error in epsilon is
O((d alpha)^2) and far below the 1e-6 relative tolerance the Rust tests use.
The (delta from epsilon) direction also takes dp-accounting's KL bound
sqrt(1 - exp(-rho*alpha)) into account; the cases below are chosen where that
bound is not the minimum (printed as a check).

Run:  python3 -m venv /tmp/dpenv && /tmp/dpenv/bin/pip install dp-accounting
      /tmp/dpenv/bin/python privacy/kat/zcdp_kat.py > privacy/kat/zcdp_kat.out
"""

import math
from importlib.metadata import version

import numpy as np
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant as rdp

ORDERS = np.exp(np.arange(math.log(1.011), math.log(1e6), math.log1p(1e-4)))


def accountant(rho, count=1):
    acc = rdp.RdpAccountant(orders=ORDERS)
    acc.compose(dp_event.SelfComposedDpEvent(dp_event.ZCDpEvent(rho), count))
    return acc


def main():
    print(f"# dp-accounting {version('dp-accounting')}, {len(ORDERS)} orders in "
          f"[{ORDERS[0]:.4f}, {ORDERS[-1]:.1f}]")
    print("# epsilon_from_delta: (rho, delta, epsilon, optimal alpha)")
    for rho in [0.001, 0.01, 0.1, 0.5, 1.0, 5.0]:
        for delta in [1e-3, 1e-6, 1e-9]:
            eps, order = accountant(rho).get_epsilon_and_optimal_order(delta)
            assert ORDERS[0] < order < ORDERS[-1], (rho, delta, order)
            print(f"({rho!r}, {delta!r}, {float(eps)!r}, {float(order)!r}),")
    print("# composition: 50 rounds of rho = 0.002, delta = 1e-6 -> epsilon")
    eps = accountant(0.002, count=50).get_epsilon(1e-6)
    print(f"(50, 0.002, 1e-6, {float(eps)!r}),")
    print("# delta_from_epsilon: (rho, epsilon, delta, optimal alpha)")
    for rho, eps in [(0.01, 1.0), (0.1, 2.0), (0.5, 4.0), (1.0, 8.0), (0.05, 0.5)]:
        delta, order = accountant(rho).get_delta_and_optimal_order(eps)
        assert ORDERS[0] < order < ORDERS[-1], (rho, eps, order)
        kl = math.sqrt(-math.expm1(-rho * order))
        assert delta < kl, "KL bound active; pick another case"
        print(f"({rho!r}, {eps!r}, {float(delta)!r}, {float(order)!r}),")


if __name__ == "__main__":
    main()
