"""Hidden checks for 05_normalization_regularization.

Points (as the notebook's test cells): batchnorm_forward 3, batchnorm_backward 4, dropout_forward 3,
dropout_backward 2.

batch norm: the forward against the closed form; the backward runs the student's forward and
backward together inside the sandbox (the cache never leaves it) and is compared with the exact
gradient, which is itself verified against central differences of the trusted forward.
dropout: the generator is seeded from a seed passed in; the mask must follow the documented draw
order ``generator.random(x.shape) >= p``.
"""
from __future__ import annotations

import numpy as np

from autograder.api import load_reference, check, diagnose, expect_array, fail


ref = load_reference(__file__)


def _bn_case(seed, m, d, small_feature=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, d)) * np.linspace(0.5, 3.0, d) + np.linspace(-2.0, 2.0, d)
    if small_feature and d > 1 and m > 1:
        x[:, 0] = 1e-3 * rng.standard_normal(m) + 4.0   # variance ~1e-6 << eps: eps placement matters
    gamma = np.linspace(0.5, 2.0, d)
    beta = np.linspace(-1.0, 1.0, d)
    return x, gamma, beta


_BN_FORWARD = '''
def _bn_forward(x, gamma, beta, eps):
    result = batchnorm_forward(x, gamma, beta) if eps is None else batchnorm_forward(x, gamma, beta, eps=eps)
    if not isinstance(result, tuple) or len(result) != 2:
        return ["bad", type(result).__name__]
    return ["ok", result[0]]
'''

_BN_BACKWARD = '''
def _bn_backward(x, gamma, beta, eps, dout):
    result = batchnorm_forward(x, gamma, beta) if eps is None else batchnorm_forward(x, gamma, beta, eps=eps)
    if not isinstance(result, tuple) or len(result) != 2:
        return ["bad forward", type(result).__name__]
    grads = batchnorm_backward(dout, result[1])
    if not isinstance(grads, tuple) or len(grads) != 3:
        return ["bad backward", type(grads).__name__]
    return ["ok", list(grads)]
'''


def _check_bn_forward(student, x, gamma, beta, eps, case):
    status, out = student.run(_BN_FORWARD, "_bn_forward", x, gamma, beta, eps)
    if status != "ok":
        fail(f"batchnorm_forward should return a pair (out, cache); it returned a {out}.")
    e = 1e-5 if eps is None else eps
    want = ref.batchnorm_forward(x, gamma, beta, e)
    out = expect_array(out, shape=x.shape, dtype_kind="f", name=f"out for {case}")
    if not np.allclose(out, want, rtol=1e-7, atol=1e-9):
        fail(f"batchnorm_forward is wrong for {case}.", got=out, expected=want, hint=diagnose(out, {
            "the unbiased variance (divide by m - 1); batch norm uses the biased one (divide by m)":
                lambda: ref.batchnorm_forward(x, gamma, beta, e, ddof=1),
            "eps outside the square root: use (x - mu) / sqrt(var + eps)":
                lambda: ref.batchnorm_forward(x, gamma, beta, e, eps_outside=True),
            "eps was left out": lambda: ref.batchnorm_forward(x, gamma, beta, e, use_eps=False),
            "normalised over the features of each row (axis=1); normalise each feature over the batch (axis=0)":
                lambda: ref.batchnorm_forward(x, gamma, beta, e, axis=1),
            "gamma and beta were not applied": lambda: ref.batchnorm_forward(x, gamma, beta, e, affine=False),
            "divided by the variance, not the standard deviation":
                lambda: ref.batchnorm_forward(x, gamma, beta, e, no_sqrt=True),
        }, rtol=1e-7, atol=1e-9))


@check("batchnorm_forward", points=1)
def test_batchnorm_forward_closed_form(student):
    x, gamma, beta = _bn_case(0, 8, 4, small_feature=False)
    _check_bn_forward(student, x, gamma, beta, None, "x (8, 4), default eps")
    x, gamma, beta = _bn_case(1, 5, 3, small_feature=False)
    _check_bn_forward(student, x, gamma, beta, 1e-3, "x (5, 3), eps = 1e-3")


@check("batchnorm_forward", points=2)
def test_batchnorm_forward_edge_cases(student):
    x, gamma, beta = _bn_case(2, 6, 5)
    _check_bn_forward(student, x, gamma, beta, None, "x (6, 5) with a feature of variance ~1e-6 (eps matters)")
    x, gamma, beta = _bn_case(3, 2, 1, small_feature=False)
    _check_bn_forward(student, x, gamma, beta, None, "x (2, 1): m = 2, one feature")
    x, gamma, beta = _bn_case(4, 3, 7)
    _check_bn_forward(student, x, gamma, beta, 0.1, "x (3, 7), eps = 0.1")


def _check_bn_backward(student, seed, m, d, eps, case, small_feature=True):
    x, gamma, beta = _bn_case(seed, m, d, small_feature)
    dout = np.random.default_rng(seed + 100).standard_normal((m, d))
    status, grads = student.run(_BN_BACKWARD, "_bn_backward", x, gamma, beta, eps, dout)
    if status == "bad forward":
        fail(f"batchnorm_forward should return a pair (out, cache); it returned a {grads}.")
    if status != "ok":
        fail(f"batchnorm_backward should return a tuple (dx, dgamma, dbeta); it returned a {grads}.")
    e = 1e-5 if eps is None else eps
    want = ref.batchnorm_backward(dout, x, gamma, e)
    if m * d <= 24:   # the trusted reference agrees with finite differences of the trusted forward
        num = ref.numerical_batchnorm_grads(dout, x, gamma, beta, e)
        assert all(np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(want, num)), "reference vs finite differences"
    variants = {
        "the mean terms are missing (mu and var were treated as constants)": "no_mean_terms",
        "the variance term (through var) is missing": "no_var_term",
        "the term through the mean (- mean of dxhat) is missing": "no_mean_term",
        "dgamma should be sum(dout * xhat), not sum(dout)": "dgamma_no_xhat",
        "dbeta should be the SUM of dout over the batch, not the mean": "dbeta_mean",
        "gamma is missing from dx (dxhat = dout * gamma)": "no_gamma",
        "m - 1 in the variance term; the biased variance divides by m": "unbiased_var_term",
    }
    for k, (name, shape) in enumerate([("dx", (m, d)), ("dgamma", (d,)), ("dbeta", (d,))]):
        g = expect_array(grads[k], shape=shape, dtype_kind="f", name=f"{name} for {case}")
        if not np.allclose(g, want[k], rtol=1e-6, atol=1e-8):
            fail(f"{name} is wrong for {case} (compared with the exact gradient of sum(dout * out), "
                 "which matches finite differences).", got=g, expected=want[k],
                 hint=diagnose(g, {desc: (lambda v=v, k=k: ref.batchnorm_backward(dout, x, gamma, e, variant=v)[k])
                                   for desc, v in variants.items()}))


@check("batchnorm_backward", points=1)
def test_batchnorm_backward_small(student):
    _check_bn_backward(student, 10, 4, 3, None, "x (4, 3), default eps", small_feature=False)


@check("batchnorm_backward", points=2)
def test_batchnorm_backward_larger_batch(student):
    _check_bn_backward(student, 11, 16, 5, None, "x (16, 5) with a feature of variance ~1e-6")
    _check_bn_backward(student, 12, 3, 8, 1e-2, "x (3, 8), eps = 1e-2")


@check("batchnorm_backward", points=1)
def test_batchnorm_backward_edge_cases(student):
    _check_bn_backward(student, 13, 2, 1, None, "x (2, 1): m = 2, one feature", small_feature=False)
    _check_bn_backward(student, 14, 6, 6, 0.5, "x (6, 6), eps = 0.5")


# -- dropout -------------------------------------------------------------------------------------

def _check_dropout_forward(student, x, p, seed, train, case):
    kwargs = {} if train is None else {"train": train}
    result = student.call("dropout_forward", x, p, np.random.default_rng(seed), **kwargs)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"dropout_forward should return a pair (out, mask); got {type(result).__name__}.")
    out, mask = result
    is_train = train is None or train
    want_out, want_mask = ref.dropout_forward(x, p, seed, train=is_train)
    mask = expect_array(mask, shape=x.shape, dtype_kind="b", name=f"mask for {case} (a bool array)")
    if not np.array_equal(mask, want_mask):
        r = np.random.default_rng(seed).random(x.shape)
        hint = {True: None}.get(False)
        for desc, cand in [("keep and drop are swapped: p is the DROP probability, keep where r >= p", r < p),
                           ("mask = r < 1 - p keeps the right fraction but not the documented draw: "
                            "use generator.random(x.shape) >= p", r < 1 - p),
                           ("eval mode (train=False) must not drop anything: mask all True",
                            r >= p if not is_train else None)]:
            if cand is not None and np.array_equal(mask, cand):
                hint = desc
                break
        fail(f"the mask is wrong for {case}; expected mask = generator.random(x.shape) >= p.",
             got=mask, expected=want_mask, hint=hint)
    out = expect_array(out, shape=x.shape, dtype_kind="f", name=f"out for {case}")
    if not np.allclose(out, want_out, rtol=1e-12, atol=0):
        fail(f"out is wrong for {case} (the mask is right).", got=out, expected=want_out, hint=diagnose(out, {
            "no rescaling: inverted dropout divides the kept units by 1 - p": lambda: x * mask,
            "scaled by 1 / p instead of 1 / (1 - p) (p is the drop probability)": lambda: x * mask / p,
            "eval mode scaled x by (1 - p); with inverted dropout eval mode returns x unchanged":
                lambda: x * (1 - p),
        }, rtol=1e-12, atol=0))


@check("dropout_forward", points=1)
def test_dropout_forward_mask_draw_order(student):
    x = np.linspace(-2.0, 2.0, 20).reshape(4, 5)
    _check_dropout_forward(student, x, 0.3, 0, None, "x (4, 5), p = 0.3, generator seed 0")
    x3 = np.linspace(0.5, 3.0, 24).reshape(2, 3, 4)
    _check_dropout_forward(student, x3, 0.5, 1, True, "x (2, 3, 4), p = 0.5, train=True, seed 1")
    _check_dropout_forward(student, np.linspace(1.0, 2.0, 7), 0.8, 2, True, "x (7,), p = 0.8, seed 2")


@check("dropout_forward", points=1)
def test_dropout_forward_eval_mode_and_p_zero(student):
    x = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    _check_dropout_forward(student, x, 0.4, 3, False, "train=False (eval mode), p = 0.4")
    _check_dropout_forward(student, x, 0.0, 4, True, "p = 0 (nothing dropped)")


@check("dropout_forward", points=1)
def test_dropout_forward_expectation(student):
    # inverted dropout keeps E[out] = x: on many units the mean of out stays close to x's
    x = np.ones((200, 250))
    for p, seed in [(0.2, 5), (0.6, 6)]:
        out, mask = student.call("dropout_forward", x, p, np.random.default_rng(seed), train=True)
        out = expect_array(out, shape=x.shape, dtype_kind="f", name=f"out for x = ones (200, 250), p = {p}")
        mask = expect_array(mask, shape=x.shape, dtype_kind="b", name=f"mask for p = {p}")
        keep = float(mask.mean())
        if abs(keep - (1 - p)) > 0.01:
            fail(f"with p = {p} (the DROP probability) about {1 - p:.0%} of the units should be kept; "
                 f"your mask keeps {keep:.1%}.")
        if abs(float(out.mean()) - 1.0) > 0.02:
            fail(f"with p = {p}, the mean of dropout(ones) is {float(out.mean()):.4f}; inverted dropout keeps the "
                 "expectation: E[out] = x (divide the kept units by 1 - p).")
        _check_dropout_forward(student, x, p, seed, True, f"x = ones (200, 250), p = {p}, seed {seed}")


def _check_dropout_backward(student, dout, mask, p, case):
    got = expect_array(student.call("dropout_backward", dout, mask, p), shape=dout.shape, dtype_kind="f",
                       name=f"dx for {case}")
    want = ref.dropout_backward(dout, mask, p)
    if not np.allclose(got, want, rtol=1e-12, atol=0):
        fail(f"dropout_backward is wrong for {case}.", got=got, expected=want, hint=diagnose(got, {
            "no rescaling: the gradient of x * mask / (1 - p) is dout * mask / (1 - p)": lambda: dout * mask,
            "the dropped units (~mask) were used": lambda: dout * ~mask / (1 - p),
            "divided by p instead of 1 - p": lambda: dout * mask / p,
            "the mask was ignored": lambda: dout / (1 - p),
        }, rtol=1e-12, atol=0))


@check("dropout_backward", points=1)
def test_dropout_backward(student):
    dout = np.linspace(-3.0, 3.0, 20).reshape(4, 5)
    mask = ref.dropout_mask((4, 5), 0.3, 7)
    _check_dropout_backward(student, dout, mask, 0.3, "dout (4, 5), p = 0.3")


@check("dropout_backward", points=1)
def test_dropout_backward_other_shapes(student):
    dout3 = np.linspace(1.0, 2.0, 24).reshape(2, 3, 4)
    _check_dropout_backward(student, dout3, ref.dropout_mask((2, 3, 4), 0.75, 8), 0.75, "dout (2, 3, 4), p = 0.75")
