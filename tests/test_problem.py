"""Validation of LoraAttention (issue 2, item 3): every malformed input raises InputError naming
the field; .npz storage round-trips; x_k defaults to x_q and x_v to x_k."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from verified_lora import Adapter, InputError, LoraAttention, exact
from verified_lora.examples import random_problem

L, L_K, D_MODEL, D_HEAD, D_V, R = 4, 3, 5, 3, 2, 2


def _arrays(dtype=np.float64, n=None, seed=0):
    rng = np.random.default_rng(seed)
    lead = () if n is None else (n,)

    def draw(*shape):
        return rng.standard_normal(shape).astype(dtype)

    return dict(
        x_q=draw(*lead, L, D_MODEL), y=draw(*lead, L, D_V), w_q=draw(D_MODEL, D_HEAD),
        w_k=draw(D_MODEL, D_HEAD), w_v=draw(D_MODEL, D_V), x_k=draw(*lead, L_K, D_MODEL),
        x_v=draw(*lead, L_K, D_MODEL),
        adapters={"Q": Adapter(a=draw(R, D_HEAD), b=draw(D_MODEL, R)),
                  "K": Adapter(a=draw(R, D_HEAD), b=draw(D_MODEL, R)),
                  "V": Adapter(a=draw(R, D_V), b=draw(D_MODEL, R))},
    )


def _make(**changes):
    fields = _arrays()
    fields.update(changes)
    return LoraAttention(**fields)


def _adapter(key, a=None, b=None):
    """The valid adapter ``key`` of :func:`_arrays` with ``a`` or ``b`` replaced."""
    ads = dict(_arrays()["adapters"])
    base = ads[key]
    ads[key] = Adapter(a=base.a if a is None else a, b=base.b if b is None else b)
    return ads


def _raises(field, **changes):
    with pytest.raises(InputError) as info:
        _make(**changes)
    assert info.value.field == field, str(info.value)
    assert field in str(info.value)
    return info.value


def test_valid_problem_sizes():
    p = _make()
    assert (p.L, p.L_k, p.d_model, p.d_head, p.d_v, p.n_batch) == (L, L_K, D_MODEL, D_HEAD, D_V, 1)
    assert p.adapted == ("Q", "K", "V") and p.is_cross_attention and not p.batched


# ---------------------------------------------------------------------------- shapes
rng = np.random.default_rng(1)


@pytest.mark.parametrize("field, value", [
    ("x_q", rng.standard_normal(D_MODEL)),                    # 1-D
    ("x_q", rng.standard_normal((1, 2, L, D_MODEL))),         # 4-D
    ("w_q", rng.standard_normal((D_MODEL + 1, D_HEAD))),      # rows != d_model
    ("w_q", rng.standard_normal((2, D_MODEL, D_HEAD))),       # per-item weights
    ("w_k", rng.standard_normal((D_MODEL, D_HEAD + 1))),      # d_head differs from w_q
    ("w_k", rng.standard_normal((D_HEAD, D_MODEL))),          # PyTorch (out x in) layout
    ("w_v", rng.standard_normal((D_MODEL - 1, D_V))),
    ("w_v", rng.standard_normal(D_MODEL)),
    ("x_k", rng.standard_normal((L_K, D_MODEL + 1))),         # d_model differs
    ("x_k", rng.standard_normal((2, L_K, D_MODEL))),          # batched while x_q is not
    ("x_v", rng.standard_normal((L_K + 1, D_MODEL))),         # rows differ from x_k
    ("x_v", rng.standard_normal((L_K, D_MODEL - 1))),
    ("y", rng.standard_normal((L + 1, D_V))),
    ("y", rng.standard_normal((L, D_V + 1))),                 # width != d_v
    ("y", rng.standard_normal(L)),
])
def test_wrong_shapes(field, value):
    _raises(field, **{field: value})


@pytest.mark.parametrize("key", ["Q", "K", "V"])
def test_adapter_shapes(key):
    d_out = D_V if key == "V" else D_HEAD
    _raises(f"adapters[{key!r}].b", adapters=_adapter(key, b=rng.standard_normal((D_MODEL + 1, R))))
    _raises(f"adapters[{key!r}].b", adapters=_adapter(key, b=rng.standard_normal(D_MODEL)))
    _raises(f"adapters[{key!r}].a", adapters=_adapter(key, a=rng.standard_normal((R, d_out + 1))))
    if d_out != R:  # PyTorch/PEFT orientation (a transposed) is rejected, not silently accepted
        _raises(f"adapters[{key!r}].a", adapters=_adapter(key, a=rng.standard_normal((d_out, R))))


@pytest.mark.parametrize("key", ["Q", "K", "V"])
def test_rank_mismatch(key):
    d_out = D_V if key == "V" else D_HEAD
    err = _raises(f"adapters[{key!r}].a", adapters=_adapter(key, a=rng.standard_normal((R + 1, d_out))))
    assert "rank" in str(err) or "r" in err.expected


# ---------------------------------------------------------------------------- values
FIELDS = ["x_q", "y", "w_q", "w_k", "w_v", "x_k", "x_v"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("field", FIELDS + ["a", "b"])
def test_non_finite(field, bad):
    if field in ("a", "b"):
        arr = np.array(getattr(_arrays()["adapters"]["K"], field))
        arr[-1, -1] = bad
        err = _raises(f"adapters['K'].{field}", adapters=_adapter("K", **{field: arr}))
    else:
        arr = np.array(_arrays()[field])
        arr.flat[arr.size // 2] = bad
        err = _raises(field, **{field: arr})
    assert "NaN or Inf" in err.got


@pytest.mark.parametrize("dtype, word", [
    (np.complex128, "complex"), (np.int64, "int64"), (np.int32, "int32"), (object, "object"),
    (np.bool_, "bool"), (np.float16, "float16"),
])
@pytest.mark.parametrize("field", ["x_q", "w_k", "y", "x_v"])
def test_bad_dtypes(field, dtype, word):
    arr = _arrays()[field]
    err = _raises(field, **{field: arr.astype(dtype)})
    assert word in err.got


def test_bad_dtype_in_adapter():
    a = _arrays()["adapters"]["V"].a.astype(np.int64)
    _raises("adapters['V'].a", adapters=_adapter("V", a=a))
    b = _arrays()["adapters"]["Q"].b.astype(np.complex64)
    _raises("adapters['Q'].b", adapters=_adapter("Q", b=b))


@pytest.mark.parametrize("field", ["y", "w_q", "x_k"])
def test_mixed_dtypes_name_the_odd_field(field):
    err = _raises(field, **{field: _arrays()[field].astype(np.float32)})
    assert "float32" in err.got and "float64" in err.expected


def test_mixed_dtypes_in_adapter():
    b = _arrays()["adapters"]["K"].b.astype(np.float32)
    _raises("adapters['K'].b", adapters=_adapter("K", b=b))


def test_float32_everywhere_is_accepted():
    fields = _arrays(dtype=np.float32)
    p = LoraAttention(**fields)
    assert p.dtype == np.float32


@pytest.mark.parametrize("field, shape", [
    ("x_q", (0, D_MODEL)), ("x_q", (L, 0)), ("w_q", (D_MODEL, 0)), ("y", (0, D_V)),
    ("x_k", (0, D_MODEL)), ("w_v", (D_MODEL, 0)),
])
def test_empty_arrays(field, shape):
    err = _raises(field, **{field: np.zeros(shape)})
    assert "non-empty" in err.expected


def test_empty_adapter_rank_zero():
    with pytest.raises(InputError) as info:
        _make(adapters={"Q": Adapter(a=np.zeros((0, D_HEAD)), b=np.zeros((D_MODEL, 0)))})
    assert info.value.field.startswith("adapters['Q']")


def test_non_array_inputs():
    _raises("x_q", x_q="not an array")
    _raises("w_v", w_v=None)
    _raises("y", y=3.0)


def test_nested_lists_are_accepted_without_casting():
    fields = _arrays()
    p = LoraAttention(**{**fields, "x_q": fields["x_q"].tolist()})
    assert p.dtype == np.float64
    _raises("x_q", x_q=[[1, 2, 3, 4, 5]] * L)  # lists of ints stay ints: rejected, not cast


# ---------------------------------------------------------------------------- names and scalars
@pytest.mark.parametrize("keys", [{"q": None}, {"O": None}, {"Q": None, "W": None}, {0: None}])
def test_unknown_adapter_keys(keys):
    ads = {k: _arrays()["adapters"]["Q"] for k in keys}
    err = _raises("adapters", adapters=ads)
    assert "unknown" in err.got


def test_adapters_must_be_a_mapping_of_adapters():
    _raises("adapters", adapters=[("Q", _arrays()["adapters"]["Q"])])
    ad = _arrays()["adapters"]["Q"]
    _raises("adapters['Q']", adapters={"Q": (ad.a, ad.b)})


@pytest.mark.parametrize("scaling", ["LoRA", "rs", "", None, "rslora "])
def test_unknown_scaling(scaling):
    _raises("scaling", scaling=scaling)


@pytest.mark.parametrize("name", ["alpha", "beta"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, "3", None, True, 1 + 2j, np.array([1.0])])
def test_bad_alpha_beta(name, value):
    _raises(name, **{name: value})


def test_scalar_alpha_beta_accepted():
    p = _make(alpha=np.float32(2.5), beta=np.int64(2), scaling="rslora")
    assert p.alpha == 2.5 and p.beta == 2.0 and isinstance(p.alpha, float)
    assert p.scale("Q") == pytest.approx(2.5 / np.sqrt(R))
    assert _make(alpha=3.0).scale("V") == 3.0 / R


# ---------------------------------------------------------------------------- batches
def test_batch_valid():
    p = LoraAttention(**_arrays(n=3))
    assert p.batched and p.n_batch == 3 and len(list(p.items())) == 3


@pytest.mark.parametrize("field, shape", [
    ("y", (L, D_V)),                   # unbatched target for a batched input
    ("y", (2, L, D_V)),                # batch size differs
    ("x_k", (2, L_K, D_MODEL)),
    ("x_v", (4, L_K, D_MODEL)),
    ("x_k", (L_K, D_MODEL)),           # unbatched keys for batched queries
    ("w_q", (3, D_MODEL, D_HEAD)),     # weights are shared, never batched
])
def test_batch_inconsistencies(field, shape):
    fields = _arrays(n=3)
    fields[field] = np.ones(shape)
    with pytest.raises(InputError) as info:
        LoraAttention(**fields)
    assert info.value.field == field


def test_unbatched_query_with_batched_target():
    fields = _arrays()
    fields["y"] = np.ones((1, L, D_V))
    with pytest.raises(InputError) as info:
        LoraAttention(**fields)
    assert info.value.field == "y"


# ---------------------------------------------------------------------------- error object
def test_error_message_names_field_expected_got_fix():
    err = _raises("w_k", w_k=rng.standard_normal((D_HEAD, D_MODEL)))
    text = str(err)
    assert text.startswith("w_k: expected") and "got" in text
    err2 = _raises("x_q", x_q=_arrays()["x_q"].astype(np.int64))
    assert err2.fix and "Fix:" in str(err2)
    clone = pickle.loads(pickle.dumps(err2))
    assert isinstance(clone, InputError) and str(clone) == str(err2)
    assert isinstance(err2, ValueError)


def test_arrays_are_private_read_only_copies():
    fields = _arrays()
    p = LoraAttention(**fields)
    before = exact.loss_and_grads(p).loss
    fields["x_q"][...] = np.nan          # the caller's array changes: the problem does not
    fields["adapters"]["Q"].a[...] = 0.0
    assert np.isfinite(p.x_q).all() and exact.loss_and_grads(p).loss == before
    with pytest.raises(ValueError):
        p.w_q[0, 0] = 1.0


def test_replace_revalidates():
    p = _make()
    with pytest.raises(InputError) as info:
        p.replace(beta=float("nan"))
    assert info.value.field == "beta"
    assert p.replace(alpha=5.0).alpha == 5.0


# ---------------------------------------------------------------------------- x_k / x_v defaults
def test_default_keys_and_values_are_the_queries():
    fields = _arrays()
    fields.pop("x_k"), fields.pop("x_v")
    p = LoraAttention(**fields)
    assert p.x_k is p.x_q and p.x_v is p.x_q and not p.is_cross_attention and p.L_k == L
    explicit = LoraAttention(**fields, x_k=fields["x_q"].copy(), x_v=fields["x_q"].copy())
    a, b = exact.loss_and_grads(p), exact.loss_and_grads(explicit)
    assert a.loss == b.loss
    for k in a.grads:
        np.testing.assert_array_equal(a.grads[k], b.grads[k])


def test_only_x_k_given_x_v_defaults_to_x_k():
    """Documented semantics: x_k defaults to x_q and x_v to x_k (the paper's cross-attention, Remark 2.1)."""
    fields = _arrays()
    fields.pop("x_v")
    p = LoraAttention(**fields)
    assert p.x_v is p.x_k and p.is_cross_attention and p.L_k == L_K
    explicit = LoraAttention(**fields, x_v=fields["x_k"].copy())
    a, b = exact.loss_and_grads(p), exact.loss_and_grads(explicit)
    assert a.loss == b.loss
    for k in a.grads:
        np.testing.assert_array_equal(a.grads[k], b.grads[k])
    fields["x_k"] = np.ones((L + 1, D_MODEL))      # x_v follows x_k, so its rows follow too
    assert LoraAttention(**fields).x_v.shape == (L + 1, D_MODEL)


def test_defaulted_x_v_round_trips_through_npz_and_replace(tmp_path):
    fields = _arrays()
    fields.pop("x_v")
    p = LoraAttention(**fields)
    p.save_npz(tmp_path / "p.npz")
    assert "x_v" not in np.load(tmp_path / "p.npz").files
    q = LoraAttention.load_npz(tmp_path / "p.npz")
    assert q.x_v is q.x_k
    moved = p.replace(x_k=np.zeros((L_K, D_MODEL)))
    assert moved.x_v is moved.x_k


# ---------------------------------------------------------------------------- .npz storage
def _assert_same_problem(p, q):
    for name in ("x_q", "y", "w_q", "w_k", "w_v", "x_k", "x_v"):
        a, b = getattr(p, name), getattr(q, name)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert p.adapted == q.adapted
    for key in p.adapted:
        np.testing.assert_array_equal(p.adapters[key].a, q.adapters[key].a)
        np.testing.assert_array_equal(p.adapters[key].b, q.adapters[key].b)
    assert (p.alpha, p.beta, p.scaling) == (q.alpha, q.beta, q.scaling)
    assert p.is_cross_attention == q.is_cross_attention
    assert exact.loss_and_grads(p).loss == exact.loss_and_grads(q).loss


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(L_k=5, adapters=("Q", "V"), scaling="rslora", beta=-0.75),
    dict(n_batch=2, adapters=("K",), alpha=0.5),
    dict(adapters=(), dtype="float32"),
    dict(L=1, L_k=1, d_model=1, d_head=1, d_v=1, r=1),
])
def test_npz_round_trip(tmp_path, kwargs):
    p = random_problem(7, **kwargs)
    path = str(tmp_path / "p.npz")
    p.save_npz(path)
    q = LoraAttention.load_npz(path)
    _assert_same_problem(p, q)
    if not p.is_cross_attention:
        assert set(np.load(path).files).isdisjoint({"x_k", "x_v"})


def _write(tmp_path, **data):
    path = str(tmp_path / "bad.npz")
    np.savez(path, **data)
    return path


def _good_data():
    p = random_problem(3, adapters=("Q",))
    return {"x_q": p.x_q, "y": p.y, "w_q": p.w_q, "w_k": p.w_k, "w_v": p.w_v,
            "a_q": p.adapters["Q"].a, "b_q": p.adapters["Q"].b}


def _load_raises(path, field_part):
    with pytest.raises(InputError) as info:
        LoraAttention.load_npz(path)
    assert field_part in info.value.field, str(info.value)
    return info.value


def test_npz_defaults(tmp_path):
    p = LoraAttention.load_npz(_write(tmp_path, **_good_data()))
    assert (p.alpha, p.beta, p.scaling) == (1.0, 1.0, "lora") and p.adapted == ("Q",)


def test_npz_unknown_key(tmp_path):
    err = _load_raises(_write(tmp_path, **_good_data(), a_x=np.ones(2)), "bad.npz")
    assert "a_x" in err.got


def test_npz_missing_key(tmp_path):
    data = _good_data()
    del data["w_k"]
    err = _load_raises(_write(tmp_path, **data), "bad.npz")
    assert "w_k" in err.got


def test_npz_half_an_adapter(tmp_path):
    data = _good_data()
    del data["b_q"]
    err = _load_raises(_write(tmp_path, **data), "bad.npz")
    assert "a_q" in err.expected and "b_q" in err.expected


def test_npz_non_scalar_alpha(tmp_path):
    _load_raises(_write(tmp_path, **_good_data(), alpha=np.ones(2)), "alpha")


def test_npz_bad_values_name_the_field(tmp_path):
    data = _good_data()
    data["w_v"] = data["w_v"].copy()
    data["w_v"][0, 0] = np.nan
    _load_raises(_write(tmp_path, **data), "w_v")
    _load_raises(_write(tmp_path, **_good_data(), scaling=np.str_("qlora")), "scaling")
    _load_raises(_write(tmp_path, **_good_data(), beta=np.float64(np.inf)), "beta")
    data = _good_data()
    data["a_q"] = data["a_q"].astype(np.float32)
    _load_raises(_write(tmp_path, **data), "adapters['Q'].a")


def test_npz_non_numeric_scalar(tmp_path):
    _load_raises(_write(tmp_path, **_good_data(), alpha=np.str_("three")), "alpha")


def test_npz_not_an_npz_file(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not a zip archive")
    _load_raises(str(path), "garbage.npz")


def test_npz_missing_file(tmp_path):
    _load_raises(str(tmp_path / "absent.npz"), "absent.npz")


def test_npz_pickled_object_array_is_refused(tmp_path):
    path = str(tmp_path / "obj.npz")
    np.savez(path, **_good_data(), x_k=np.array([None, 1], dtype=object))
    _load_raises(path, "obj.npz")


def test_npz_single_npy_array_is_refused(tmp_path):
    path = str(tmp_path / "one.npy")
    np.save(path, np.ones(3))
    _load_raises(path, "one.npy")


def test_npz_truncated_archive(tmp_path):
    good = _write(tmp_path, **_good_data())
    data = open(good, "rb").read()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[: len(data) // 2])
    _load_raises(str(path), "cut.npz")
