"""BRGAN as a whole: shapes, gradients per step, ablation switches, predict, overfit, seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

from brgan_core.model import BRGAN, PRESETS, Batch, BRGANConfig, Prediction, build_model
from tests.brgan_core.model.helpers import synthetic_pairs

GENERATOR_KEYS = {
    "vanilla": {"cls"},
    "sbf": {"cls"},
    "gan": {"cls", "gan_t2c"},
    "gan_single_mask": {"cls", "gan_t2c", "gan_c2t", "cyc_t"},
    "gan_double_mask": {"cls", "gan_t2c", "gan_c2t", "cyc_t", "cyc_c"},
    "gan_double_re": {"cls", "gan_t2c", "gan_c2t", "cyc_t", "cyc_c", "re", "aux_pm"},
    "brgan": {"cls", "gan_t2c", "gan_c2t", "cyc_t", "cyc_c", "re", "aux_pm"},
    "brgan_paired": {"cls", "gan_t2c", "gan_c2t", "cyc_t", "cyc_c", "re", "aux_pm"},
    "brgan_bilateral": {"cls", "gan_t2c", "gan_c2t", "cyc_t", "cyc_c", "re", "aux_pm"},
    "cyclegan_healthy": {"cls", "gan_t2c", "gan_c2t", "cyc_t", "cyc_c"},
}


def tiny(name: str = "brgan", **overrides: object) -> BRGAN:
    torch.manual_seed(0)
    return build_model(BRGANConfig.preset(name, backbone="tiny", **overrides))


def module_names(model: BRGAN) -> set[str]:
    names = ("g_t2c", "d_c", "g_c2t", "d_t", "p_m")
    return {name for name in names if getattr(model, name) is not None}


def perturb_zero_inits(model: BRGAN) -> None:
    """Give the generators' zero-initialised last convs some weight (as after training)."""
    gen = torch.Generator().manual_seed(1)
    for g in (model.g_t2c, model.g_c2t):
        if g is not None:
            with torch.no_grad():
                last = g.block[-1]
                last.weight.copy_(0.1 * torch.randn(last.weight.shape, generator=gen))


# -- structure: each switch builds exactly what it should ---------------------------------------
@pytest.mark.parametrize(
    ("name", "modules", "classifier_in"),
    [
        ("vanilla", set(), 64),
        ("sbf", set(), 128),
        ("gan", {"g_t2c", "d_c"}, 128),
        ("gan_single_mask", {"g_t2c", "d_c", "g_c2t", "d_t"}, 128),
        ("gan_double_mask", {"g_t2c", "d_c", "g_c2t", "d_t"}, 128),
        ("gan_double_re", {"g_t2c", "d_c", "g_c2t", "d_t", "p_m"}, 128),
        ("brgan", {"g_t2c", "d_c", "g_c2t", "d_t", "p_m"}, 128),
        ("brgan_paired", {"g_t2c", "d_c", "g_c2t", "d_t", "p_m"}, 128),
        ("brgan_bilateral", {"g_t2c", "d_c", "g_c2t", "d_t", "p_m"}, 192),
        ("cyclegan_healthy", {"g_t2c", "d_c", "g_c2t", "d_t"}, 128),
    ],
)
def test_switches_build_modules(name: str, modules: set[str], classifier_in: int) -> None:
    model = tiny(name)
    assert module_names(model) == modules
    assert model.classifier.fc.in_features == classifier_in
    assert model.has_discriminators == ("d_c" in modules)


def test_g_c2t_input_follows_residual_preserved() -> None:
    assert tiny("brgan").g_c2t.block[0].in_channels == 128  # type: ignore[union-attr]
    assert tiny("cyclegan_healthy").g_c2t.block[0].in_channels == 64  # type: ignore[union-attr]


def test_bottleneck_default_and_override() -> None:
    cfg = BRGANConfig(backbone="resnet50")
    assert BRGAN(cfg).g_t2c.block[0].out_channels == 256  # type: ignore[union-attr]
    assert tiny(bottleneck=8, disc_width=4).d_c.net[0].out_channels == 4  # type: ignore[union-attr]


@pytest.mark.parametrize("name", list(PRESETS))
def test_forward_train_shapes_and_loss_keys(name: str, pairs: Batch) -> None:
    model = tiny(name)
    out = model.forward_batch(pairs)
    assert out["logits"].shape == (4, 2)
    assert out["f_t"].shape == (4, 64, 8, 7)
    for key in ("f_c", "f_h", "f_p", "f_t_rec", "f_c2t", "f_c_rec"):
        if key in out:
            assert out[key].shape == (4, 64, 8, 7), key
    assert out["sel_t"].shape == (4, 1, 8, 7)
    g = model.generator_loss(out)
    assert set(g) == GENERATOR_KEYS[name] | {"total"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in g.values())
    d = model.discriminator_loss(out)
    expected_d = {k for k in ("d_c", "d_t") if getattr(model, k) is not None}
    assert set(d) == expected_d | {"total"}


def test_total_is_the_weighted_sum(pairs: Batch) -> None:
    weights = {"weight_cls": 2.0, "weight_re": 0.5, "weight_cyc_c": 0.0, "weight_gan_t2c": 3.0}
    model = tiny(**weights)
    perturb_zero_inits(model)
    g = model.generator_loss(pairs)
    w = model.loss_weights()
    expected = sum(w[k] * v for k, v in g.items() if k != "total")
    torch.testing.assert_close(g["total"], expected)
    assert w["cls"] == 2.0 and w["cyc_c"] == 0.0


def test_mask_off_gives_raw_residual(pairs: Batch) -> None:
    model = tiny("gan_double_re")
    perturb_zero_inits(model)
    out = model.forward_batch(pairs)
    torch.testing.assert_close(out["f_p"], out["f_t"] - out["f_h"])
    masked = tiny("brgan")
    perturb_zero_inits(masked)
    out = masked.forward_batch(pairs)
    torch.testing.assert_close(out["f_p"], out["f_t"] * out["attention"])
    torch.testing.assert_close(out["attention"].mean(dim=(2, 3)), torch.ones(4, 64))


def test_single_vs_double_toggles_only_l_c_c(pairs: Batch) -> None:
    single, double = tiny("gan_single_mask"), tiny("gan_double_mask")
    double.load_state_dict(single.state_dict())  # same weights: the difference is the switch
    perturb_zero_inits(single)
    perturb_zero_inits(double)
    gs, gd = single.generator_loss(pairs), double.generator_loss(pairs)
    assert set(gd) - set(gs) == {"cyc_c"}
    for key in gs:
        if key != "total":
            torch.testing.assert_close(gs[key], gd[key])
    torch.testing.assert_close(gd["total"], gs["total"] + gd["cyc_c"])


def test_residual_embedding_off_removes_l_re(pairs: Batch) -> None:
    g = tiny("gan_double_mask").generator_loss(pairs)
    assert "re" not in g and "aux_pm" not in g
    on = tiny("brgan").generator_loss(pairs)
    assert on["re"] > 0 and on["aux_pm"] > 0


def test_sbf_classifier_sees_contralateral(pairs: Batch) -> None:
    model = tiny("sbf")
    a = model(pairs.target, pairs.contralateral)
    b = model(pairs.target, torch.zeros_like(pairs.contralateral))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="contralateral"):
        model(pairs.target)


def test_vanilla_and_gan_ignore_the_contralateral_at_inference(pairs: Batch) -> None:
    for name in ("vanilla", "brgan"):
        model = tiny(name).eval()
        perturb_zero_inits(model)
        with torch.no_grad():
            torch.testing.assert_close(
                model(pairs.target, pairs.contralateral), model(pairs.target, None)
            )


def test_paired_generator_uses_the_contralateral_at_inference(pairs: Batch) -> None:
    model = tiny("brgan_paired").eval()
    perturb_zero_inits(model)
    assert model.g_t2c is not None and model.g_t2c.block[0].in_channels == 128
    with torch.no_grad():
        a = model(pairs.target, pairs.contralateral)
        b = model(pairs.target, torch.zeros_like(pairs.contralateral))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="paired_generator needs the contralateral"):
        model(pairs.target)
    with pytest.raises(ValueError, match="paired_generator"):
        BRGANConfig.preset("sbf", paired_generator=True)


def test_contralateral_branch_uses_it_when_given_and_scores_without_it(pairs: Batch) -> None:
    """brgan_bilateral (issue 11 §4): concat[f_T − f_H, f_T, f_T − f_C]; without a
    contralateral the branch is zeros, which is what a contralateral identical to the target
    gives (f_T − f_C = 0)."""
    model = tiny("brgan_bilateral").eval()
    perturb_zero_inits(model)
    assert model.config.needs_contralateral_at_inference
    assert not model.config.requires_contralateral_at_inference
    with torch.no_grad():
        a = model(pairs.target, pairs.contralateral)
        b = model(pairs.target, torch.zeros_like(pairs.contralateral))
        alone = model(pairs.target, None)
        same = model(pairs.target, pairs.target)
        pred = model.predict(pairs.target, None)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(alone, same)
    assert pred.p_malignant.shape == (pairs.target.shape[0],)
    assert pred.cam.shape[0] == pairs.target.shape[0]


def test_contralateral_dropout_zeroes_the_branch_in_training_only() -> None:
    model = tiny("brgan_bilateral", contralateral_dropout=0.5)
    batch = synthetic_pairs(32)
    seen: list[Tensor] = []
    hook = model.classifier.register_forward_hook(lambda m, i, o: seen.append(i[0].detach()))
    try:
        torch.manual_seed(3)
        model.train()
        model.forward_batch(batch)
        model.eval()
        with torch.no_grad():
            model.forward_batch(batch)
    finally:
        hook.remove()
    channels = model.feature_channels
    trained, evaluated = (x[:, 2 * channels :].abs().flatten(1).amax(dim=1) for x in seen)
    dropped = int((trained == 0).sum())
    assert 4 <= dropped <= 28, dropped  # about half of 32 (binomial, p = 0.5)
    assert bool((evaluated > 0).all()), "no dropout outside training"


def test_contralateral_branch_config_is_checked() -> None:
    with pytest.raises(ValueError, match="contralateral_dropout must be in"):
        BRGANConfig.preset("brgan_bilateral", contralateral_dropout=1.0)
    with pytest.raises(ValueError, match="only the contralateral_branch can be dropped"):
        BRGANConfig.preset("brgan", contralateral_dropout=0.2)
    with pytest.raises(ValueError, match="contralateral_branch"):
        BRGANConfig.preset("sbf", contralateral_branch=True)
    with pytest.raises(ValueError, match="use one of the two"):
        BRGANConfig.preset("brgan_bilateral", paired_generator=True)
    cfg = BRGANConfig.preset("brgan_bilateral")
    assert BRGANConfig.from_dict(cfg.to_dict()) == cfg


def test_paired_generator_cycle_passes_the_reference(pairs: Batch) -> None:
    """L_c^C's second G_T2C pass gets f_C as reference: G_T2C(G_C2T([f_C, f_P]) | f_C)."""
    model = tiny("brgan_paired")
    perturb_zero_inits(model)
    refs: list[Tensor] = []
    assert model.g_t2c is not None
    model.g_t2c.register_forward_hook(lambda _m, inputs, _o: refs.append(inputs[1]))
    out = model.forward_batch(pairs)
    assert len(refs) == 2
    for ref in refs:
        torch.testing.assert_close(ref, out["f_c"])


def test_malignant_contralateral_leaves_d_c_real_set(pairs: Batch) -> None:
    model = tiny("gan")
    out = model.forward_batch(pairs)
    all_real = model.discriminator_loss(out)["d_c"]
    excluded = dict(out, real_c_weight=torch.tensor([1.0, 0.0, 0.0, 0.0]))
    assert not torch.allclose(model.discriminator_loss(excluded)["d_c"], all_real)
    bad = Batch(**{**pairs.__dict__, "contralateral_label": torch.tensor([0, 1, 1, 1])})
    torch.testing.assert_close(model.forward_batch(bad)["real_c_weight"], excluded["real_c_weight"])


def test_cycle_losses_use_the_breast_mask(pairs: Batch) -> None:
    model = tiny()
    perturb_zero_inits(model)
    full = model.generator_loss(pairs)
    no_mask = Batch(pairs.target, pairs.contralateral, pairs.label)
    unmasked = model.generator_loss(no_mask)
    assert not torch.allclose(full["cyc_t"], unmasked["cyc_t"])
    torch.testing.assert_close(full["cls"], unmasked["cls"])


def test_input_shapes_are_checked(pairs: Batch) -> None:
    model = tiny()
    with pytest.raises(ValueError, match=r"target must be \[B, 1, H, W\]"):
        model.forward_train(pairs.target[:, 0], pairs.contralateral, pairs.label)
    with pytest.raises(ValueError, match="must match target"):
        model.forward_train(pairs.target, pairs.contralateral[:, :, :32], pairs.label)


# -- gradients reach the right parameters in the right step -----------------------------------
def grads(model: nn.Module) -> dict[str, Tensor | None]:
    return {name: p.grad for name, p in model.named_parameters()}


@pytest.mark.parametrize("name", list(PRESETS))
def test_gradients_per_step(name: str, pairs: Batch) -> None:
    model = tiny(name)
    perturb_zero_inits(model)
    disc = {id(p) for p in model.discriminator_parameters()}
    out = model.forward_batch(pairs)

    model.generator_loss(out)["total"].backward()
    for pname, p in model.named_parameters():
        if id(p) in disc:
            assert p.grad is None, f"generator step reached discriminator {pname}"
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for {pname}"

    model.zero_grad(set_to_none=True)
    if not model.has_discriminators:
        assert not model.discriminator_loss(out)["total"].requires_grad
        return
    model.discriminator_loss(out)["total"].backward()
    for pname, p in model.named_parameters():
        if id(p) in disc:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for {pname}"
        else:
            assert p.grad is None, f"discriminator step reached {pname}"


def test_generator_step_leaves_discriminators_trainable(pairs: Batch) -> None:
    model = tiny()
    model.generator_loss(pairs)
    assert all(p.requires_grad for p in model.discriminator_parameters())
    ids = {id(p) for p in model.discriminator_parameters()}
    assert ids.isdisjoint(id(p) for p in model.generator_parameters())
    assert len(ids) + len(model.generator_parameters()) == len(list(model.parameters()))


# -- predict -----------------------------------------------------------------------------------
def record_calls(model: BRGAN) -> dict[str, int]:
    calls: dict[str, int] = {}
    for name in ("backbone", "g_t2c", "d_c", "g_c2t", "d_t", "p_m", "classifier"):
        module = getattr(model, name)
        if module is not None:
            calls[name] = 0

            def hook(_m: nn.Module, _i: object, _o: object, name: str = name) -> None:
                calls[name] += 1

            module.register_forward_hook(hook)
    return calls


@pytest.mark.parametrize("name", list(PRESETS))
def test_predict_runs_no_training_only_module(name: str, pairs: Batch) -> None:
    model = tiny(name)
    calls = record_calls(model)
    pred = model.predict(pairs.target, pairs.contralateral)
    for training_only in ("d_c", "d_t", "g_c2t", "p_m"):
        assert calls.get(training_only, 0) == 0, training_only
    assert calls["backbone"] == 1 and calls["classifier"] == 1
    assert calls.get("g_t2c", 0) == (1 if model.g_t2c is not None else 0)
    assert isinstance(pred, Prediction)
    assert pred.p_malignant.shape == (4,)
    assert pred.cam.shape == pred.residual_map.shape == (4, 8, 7)
    assert pred.logits.shape == (4, 2)
    for maps in (pred.cam, pred.residual_map):
        assert maps.min() >= 0 and maps.max() <= 1
    assert pred.cam.amax(dim=(1, 2)).eq(1).all()
    assert not pred.p_malignant.requires_grad


def test_predict_encodes_only_the_target_for_gan(pairs: Batch) -> None:
    model = tiny()
    sizes: list[int] = []
    model.backbone.register_forward_hook(lambda _m, i, _o: sizes.append(i[0].shape[0]))
    model.predict(pairs.target, pairs.contralateral)
    sbf = tiny("sbf")
    sbf.backbone.register_forward_hook(lambda _m, i, _o: sizes.append(i[0].shape[0]))
    sbf.predict(pairs.target, pairs.contralateral)
    paired = tiny("brgan_paired")
    paired.backbone.register_forward_hook(lambda _m, i, _o: sizes.append(i[0].shape[0]))
    paired.predict(pairs.target, pairs.contralateral)
    assert sizes == [4, 8, 8]


def test_predict_eval_mode_restored_and_matches_forward(pairs: Batch) -> None:
    model = tiny()
    model.train()
    model.backbone[1].eval()  # e.g. a frozen BatchNorm: its mode must survive predict
    pred = model.predict(pairs.target, pairs.contralateral)
    assert model.training and model.classifier.training
    assert not model.backbone[1].training
    model.eval()
    with torch.no_grad():
        logits = model(pairs.target, pairs.contralateral)
    torch.testing.assert_close(pred.logits, logits)
    torch.testing.assert_close(pred.p_malignant, logits.softmax(1)[:, 1])


def test_cam_is_the_normalised_class_activation_map(pairs: Batch) -> None:
    model = tiny().eval()
    perturb_zero_inits(model)
    pred = model.predict(pairs.target, pairs.contralateral)
    with torch.no_grad():
        f_t = model.encode(pairs.target)
        fused = torch.cat([f_t - model.generate_healthy(f_t), f_t], dim=1)
        raw = torch.einsum("k,bkhw->bhw", model.classifier.fc.weight[1], fused)
    low = raw.flatten(1).min(1).values[:, None, None]
    high = raw.flatten(1).max(1).values[:, None, None]
    torch.testing.assert_close(pred.cam, (raw - low) / (high - low))


def test_temperature_scales_logits(pairs: Batch) -> None:
    model = tiny()
    base = model.predict(pairs.target, pairs.contralateral)
    model.set_temperature(2.0)
    hot = model.predict(pairs.target, pairs.contralateral)
    torch.testing.assert_close(hot.logits, base.logits / 2)
    torch.testing.assert_close(hot.cam, base.cam)
    assert "temperature" in model.state_dict()
    with pytest.raises(ValueError, match="temperature"):
        model.set_temperature(0.0)


def test_vanilla_residual_map_is_zero(pairs: Batch) -> None:
    pred = tiny("vanilla").predict(pairs.target, pairs.contralateral)
    assert torch.equal(pred.residual_map, torch.zeros(4, 8, 7))


def test_prediction_upsampled(pairs: Batch) -> None:
    pred = tiny().predict(pairs.target, pairs.contralateral).upsampled((64, 52))
    assert pred.cam.shape == pred.residual_map.shape == (4, 64, 52)
    assert pred.p_malignant.shape == (4,)


# -- state, determinism, learning --------------------------------------------------------------
def test_state_dict_round_trips_through_safetensors(tmp_path: Path, pairs: Batch) -> None:
    from safetensors.torch import load_file, save_file

    model = tiny()
    perturb_zero_inits(model)
    model.set_temperature(1.7)
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    other = build_model(model.config.to_dict())
    other.load_state_dict(load_file(str(path)), strict=True)
    a = model.predict(pairs.target, pairs.contralateral)
    b = other.predict(pairs.target, pairs.contralateral)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.cam, b.cam)


def train(model: BRGAN, batch: Batch, steps: int, lr: float = 1e-3) -> list[float]:
    """The alternating CycleGAN-style step: generator/classifier, then discriminators."""
    opt_g = torch.optim.Adam(model.generator_parameters(), lr=lr)
    opt_d = (
        torch.optim.Adam(model.discriminator_parameters(), lr=lr)
        if model.has_discriminators
        else None
    )
    history = []
    model.train()
    for _ in range(steps):
        out = model.forward_batch(batch)
        g = model.generator_loss(out)
        opt_g.zero_grad(set_to_none=True)
        g["total"].backward()
        opt_g.step()
        if opt_d is not None:
            d = model.discriminator_loss(out)
            opt_d.zero_grad(set_to_none=True)
            d["total"].backward()
            opt_d.step()
        history.append(float(g["cls"].detach()))
    return history


def auc(model: BRGAN, batch: Batch) -> float:
    p = model.predict(batch.target, batch.contralateral).p_malignant
    return float(roc_auc_score(batch.label.numpy(), p.numpy()))


def test_tiny_brgan_overfits_16_pairs() -> None:
    batch = synthetic_pairs(16)
    model = tiny()
    history = train(model, batch, steps=200)
    assert auc(model, batch) == 1.0
    assert history[-1] < 0.5 * history[0]


def seeded_run(seed: int) -> tuple[dict[str, Tensor], Prediction]:
    torch.manual_seed(seed)
    model = build_model(BRGANConfig(backbone="tiny"))
    batch = synthetic_pairs(4)
    train(model, batch, steps=3)
    return model.state_dict(), model.predict(batch.target, batch.contralateral)


def test_determinism_with_a_fixed_seed() -> None:
    state_a, pred_a = seeded_run(7)
    state_b, pred_b = seeded_run(7)
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert torch.equal(pred_a.logits, pred_b.logits)
    state_c, _ = seeded_run(8)
    assert not all(torch.equal(state_a[k], state_c[k]) for k in state_a)


def test_build_model_from_dict_and_type_check() -> None:
    model = build_model({"backbone": "tiny", **PRESETS["sbf"]})
    assert model.config.bilateral == "sbf"
    with pytest.raises(ValueError, match="colour"):
        build_model({"colour": 1})
    with pytest.raises(TypeError):
        BRGAN({"backbone": "tiny"})  # type: ignore[arg-type]
