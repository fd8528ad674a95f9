"""The compute policy: its choices from fake cost tables of both kinds of CPU (no timing here), its cache file,
overrides, and every kernel's values against materialized attention."""

import dataclasses
import json
import math

import pytest
import torch
from fake_costs import AMX_BF16_TRAIN_SECONDS, FAST_BF16, H200, NO_BF16_UNITS, SLOW_BF16

from omniperceiver.core import attend, causal_mask, key_padding_mask
from omniperceiver.core.kernels import KERNELS, AttentionCall, CostTable, Policy, calibration, use_policy
from omniperceiver.core.kernels import policy as policy_module
from omniperceiver.core.kernels.calibration import SHAPES, _fit, _fits, _floor


def call(dtype="bf16", grad=False, bh=8, queries=512, keys=512, d=128, dv=128, mask="none", dropout=False):
    return AttentionCall("cpu", dtype, grad, bh, queries, keys, d, dv, mask, dropout)


VISION_LATENTS = dict(bh=8, queries=512, keys=512, d=128, dv=128)  # vision-perceiver-fourier, batch 1
VISION_CROSS = dict(bh=1, queries=512, keys=50176, d=256, dv=256, mask="mask")  # (261 padded by the projection)
LANGUAGE_LATENTS = dict(bh=8 * 8, queries=256, keys=256, d=32, dv=160)  # language-perceiver, batch 8


@pytest.mark.parametrize(
    ("table", "shape", "dtype", "grad", "kernel"),
    [
        # fast bf16 GEMMs: bf16 attention as two plain GEMMs, where the map is small enough for training
        (FAST_BF16, VISION_LATENTS, "bf16", False, "materialized"),
        (FAST_BF16, VISION_LATENTS, "bf16", True, "sdpa"),  # no materialized map (larger than q, k and v); chunked
        # is predicted 5% faster only: within MARGIN, the default stays
        (FAST_BF16, VISION_CROSS, "bf16", False, "chunked"),  # a map larger than a chunked block: in blocks
        (FAST_BF16, VISION_CROSS, "bf16", True, "materialized"),  # no larger than q, k and v: kept for backward
        (FAST_BF16, VISION_LATENTS, "fp32", False, "sdpa"),
        # slow bf16 GEMMs: bf16 products on the fp32 units
        (SLOW_BF16, VISION_LATENTS, "bf16", False, "sdpa-fp32"),
        (SLOW_BF16, LANGUAGE_LATENTS, "bf16", True, "chunked-fp32"),
        (SLOW_BF16, VISION_CROSS, "bf16", False, "chunked-fp32"),  # masked: not the fp32 flash kernel
        (SLOW_BF16, VISION_LATENTS, "fp32", False, "sdpa"),
        # no table: the documented default
        (None, VISION_LATENTS, "bf16", False, "sdpa"),
        (None, LANGUAGE_LATENTS, "bf16", True, "chunked"),
        (None, LANGUAGE_LATENTS, "fp32", False, "chunked"),
    ],
)
def test_the_cheapest_kernel_that_can_serve_is_picked(table, shape, dtype, grad, kernel):
    choice = Policy(table).attention(call(dtype, grad, **shape))
    assert choice.name == kernel, choice.reason


def test_choices_say_why():
    choice = Policy(FAST_BF16).attention(call("bf16", **VISION_LATENTS))
    assert choice.reason.startswith("cheapest by the cost table: ") and "vs chunked " in choice.reason
    assert "sdpa " in choice.reason and "sdpa-fp32 " in choice.reason
    assert Policy().attention(call()).reason == "the default (no cost table)"


def test_fitted_on_the_calibration_shapes_amx_training_times_pick_two_gemms_for_a_wide_head_over_many_pixels():
    """The vision model's cross-attention in bf16 training (one head of 512 latents over 50,176 pixels, batch 8)
    took 1.88 s with SDPA and 1.00 s materialized on the AMX CPU. Fitted on the calibration's shapes, the table
    costs SDPA there at least 1.5x the materialized kernel (1.77x; without the wide head over 4,096 keys among
    the shapes, 1.28x: from those a calibration run costed both alike, and the policy kept SDPA)."""
    attention = {}
    for kernel, seconds in AMX_BF16_TRAIN_SECONDS.items():
        points = [(call("bf16", True, *shape), seconds[shape]) for shape in SHAPES if shape in seconds]
        attention[f"{kernel}/bf16/train"] = _fit(points)
        assert _fits(points, attention[f"{kernel}/bf16/train"]), kernel
    table = CostTable("cpu:amx", "test", {"fp32": 354.0, "bf16": 2155.0}, attention)
    cross = call("bf16", True, bh=8, queries=512, keys=50176, d=261, dv=261)
    assert table.cost("sdpa", cross) >= 1.5 * table.cost("materialized", cross)
    choice = Policy(table).attention(cross)
    assert choice.name == "materialized", choice.reason


FLOW_ENCODER = dict(bh=1, queries=2048, keys=182528, d=322, dv=322)  # optical-flow-perceiver's cross-attention


def test_the_chunked_kernel_is_costed_with_k_and_v_read_again_for_each_block_of_query_rows():
    """One head of 2,048 latents over 182,528 pixels: blocks of 22 query rows, k and v read 94 times. On an AMX
    CPU in bf16 the chunked kernel took 1.8-2.4 s there and SDPA 0.43-0.55 s, while the map and products alone cost
    the chunked kernel less than SDPA: with the term read again set to 0 it is picked (the mis-pick that ran the
    flow model's forward 2.3x slower)."""
    encoder = call("bf16", **FLOW_ENCODER)
    as_run = KERNELS["chunked"].runs_as(encoder, 0)
    assert as_run.reread_mvalues == (94 - 1) * 182528 * (322 + 322) / 1e6
    assert KERNELS["chunked"].runs_as(call("bf16", **VISION_LATENTS), 0).reread_mvalues == 0  # one block per head
    assert KERNELS["sdpa"].runs_as(encoder, 0).reread_mvalues == 0
    costs = {"sdpa/bf16/fwd": (4.2e-5, 7.2e-4, 2.4e-4, 0.0), "chunked/bf16/fwd": (1.1e-4, 4e-4, 4.3e-4, 1.7e-4)}
    table = CostTable("cpu:amx", "test", {"fp32": 354.0, "bf16": 2155.0}, costs)
    choice = Policy(table).attention(encoder)
    assert choice.name == "sdpa" and "vs chunked 2.21e+03" in choice.reason, choice.reason
    without_rereads = {**costs, "chunked/bf16/fwd": (*costs["chunked/bf16/fwd"][:3], 0.0)}
    assert Policy(dataclasses.replace(table, attention=without_rereads)).attention(encoder).name == "chunked"


def test_the_calibration_measures_the_shapes_that_read_k_and_v_again_with_the_chunked_kernels_only(monkeypatch):
    measured = []

    def step(kernel, shape, dtype, device, train):
        measured.append((kernel, shape))
        return shape

    monkeypatch.setattr(calibration, "_attention_step", step)
    monkeypatch.setattr(calibration, "_seconds", lambda shape, device, runs=calibration.RUNS: 1e-3)
    monkeypatch.setattr(calibration, "gemm_gflops", lambda device, dtype: 100.0)
    calibration.calibrate(torch.device("cpu"), budget_s=1e9)
    for shape in calibration.REREAD_SHAPES:
        assert {kernel for kernel, measured_shape in measured if measured_shape == shape} == {"chunked", "chunked-fp32"}
    assert {kernel for kernel, _ in measured} == set(KERNELS)


def test_the_shapes_a_fit_misses_are_measured_once_more(monkeypatch):
    """Every kernel's times follow the cost model but the first measurement of one shape, 3x slow (a process's
    first run of a shape at times is): that shape is measured again and the kernel fitted, not left at a floor
    (the materialized kernel's bf16 training, which the policy picks for the vision model's cross-attention)."""
    truth = (30e-6, 1 / 400, 2e-3, 1e-4)
    disturbed, measured = ("materialized", SHAPES[1], torch.bfloat16, True), []

    def seconds(step, device, runs=calibration.RUNS):
        kernel, shape, dtype, train = step
        names = {torch.float32: "fp32", torch.bfloat16: "bf16"}
        as_run = KERNELS[kernel].runs_as(call(names[dtype], train, *shape), 0)
        measured.append(step)
        return as_run.seconds(truth) * (3 if measured.count(disturbed) == 1 and step == disturbed else 1)

    monkeypatch.setattr(calibration, "_attention_step", lambda kernel, shape, dtype, device, train: (kernel, shape,
                        dtype, train))  # fmt: skip
    monkeypatch.setattr(calibration, "_seconds", seconds)
    monkeypatch.setattr(calibration, "gemm_gflops", lambda device, dtype: 100.0)
    table = calibration.calibrate(torch.device("cpu"), budget_s=1e9)
    assert measured.count(disturbed) == 2
    assert "materialized/bf16/train" in table.attention and not table.floors


def test_the_calibration_starts_no_measurement_that_would_end_past_its_budget(monkeypatch):
    """On a clock that each run advances by 1 s per product GFLOP (the larger shapes: 1.6 to 17 s a run, four runs
    each), a 5 s budget is overrun by at most the smallest shape's runs, never by a large shape's."""
    clock = [0.0]

    def gflop(shape) -> float:
        return call("fp32", False, *shape).product_gflop

    def seconds(shape, device, runs=calibration.RUNS):
        clock[0] += (runs + 1) * gflop(shape)
        return gflop(shape)

    monkeypatch.setattr(calibration, "_attention_step", lambda kernel, shape, dtype, device, train: shape)
    monkeypatch.setattr(calibration, "_seconds", seconds)
    monkeypatch.setattr(calibration, "gemm_gflops", lambda device, dtype: 100.0)
    monkeypatch.setattr(calibration.time, "perf_counter", lambda: clock[0])
    calibration.calibrate(torch.device("cpu"), budget_s=5.0)
    assert 4.0 < clock[0] <= 5.0 + (calibration.RUNS + 1) * min(map(gflop, SHAPES))


def test_a_kernel_replaces_the_default_only_where_the_table_holds_the_defaults_cost():
    measured = {key: terms for key, terms in FAST_BF16.attention.items() if not key.startswith("sdpa/")}
    without_sdpa = dataclasses.replace(FAST_BF16, attention=measured)
    choice = Policy(without_sdpa).attention(call("bf16", **VISION_LATENTS))
    assert choice == policy_module.Choice("sdpa", "the default (not in the table)")


def test_an_uncosted_bf16_call_runs_on_the_fp32_units_where_the_linear_layers_do():
    """A table without the bf16 kernels' costs (a CPU without bf16 units, whose calibration did not reach them
    within its budget) keeps the default kernel, on the fp32 units where the GEMM rates put Linear layers there:
    its bf16 products would run at the emulated bf16 GEMM's 1 GFLOP/s."""
    fp32_only = {key: terms for key, terms in NO_BF16_UNITS.attention.items() if "/fp32/" in key}
    table = dataclasses.replace(NO_BF16_UNITS, attention=fp32_only, floors={})
    narrow = dict(bh=8, queries=256, keys=256, d=32, dv=160)  # the language model's latent attention
    for grad in (False, True):
        assert Policy(table).attention(call("bf16", grad, **narrow)) == policy_module.Choice(
            "chunked-fp32", "chunked (the default, not in the table) on the fp32 units"
        )
        assert Policy(table).attention(call("bf16", grad, **VISION_LATENTS)).name == "sdpa-fp32"
        assert Policy(table).attention(call("fp32", grad, **narrow)).name == "chunked"
    fast = dataclasses.replace(table, gemm_gflops=FAST_BF16.gemm_gflops)  # (bf16 GEMMs the faster: as before)
    assert Policy(fast).attention(call("bf16", **narrow)).name == "chunked"


def test_a_default_kernel_without_a_fit_is_costed_at_its_floor_and_replaced_where_another_is_cheaper():
    """On the AVX2 CPU, SDPA's bf16 training (no fit, a floor) gives way to the fp32-units kernel (5x faster)."""
    latents = call("bf16", True, **VISION_LATENTS)
    choice = Policy(NO_BF16_UNITS).attention(latents)
    assert choice.name == "chunked-fp32" and choice.reason.endswith("(vs sdpa at least 221)"), choice.reason
    without_floors = dataclasses.replace(NO_BF16_UNITS, floors={})  # (SDPA uncosted: its fp32-units kernel)
    assert Policy(without_floors).attention(latents).name == "sdpa-fp32"
    # a floor serves the default only: the same costs as a floor of chunked-fp32 never pick it
    swapped = dataclasses.replace(NO_BF16_UNITS, attention={"sdpa/bf16/train": (0.1, 0, 0, 0)},
                                  floors={"chunked-fp32/bf16/train": (0, 0, 0, 0)})  # fmt: skip
    assert Policy(swapped).attention(latents).name == "sdpa"
    # where the floor is cheaper than the other kernel by less than MARGIN, the default stays
    cheap_floor = dataclasses.replace(NO_BF16_UNITS, floors={"sdpa/bf16/train": (0.0, 0.0, 0.0, 0.0)})
    assert Policy(cheap_floor).attention(latents).name == "sdpa"


def gpu_call(dtype="fp32", grad=False, bh=1, queries=512, keys=50176, d=261, dv=261):
    """The vision model's cross-attention at batch 1 on a GPU, by default."""
    return AttentionCall("cuda", dtype, grad, bh, queries, keys, d, dv, "none", False)


def test_a_gpus_fused_kernel_takes_as_long_for_a_few_heads_as_for_enough_to_fill_it():
    one_head = gpu_call()  # 8 thread blocks of 64 query rows
    assert one_head.filling(132).batch_heads == 17  # ceil(132 / 8): as long as 17 heads would take
    assert gpu_call(bh=64).filling(132) == gpu_call(bh=64)
    assert one_head.filling(0) == one_head


@pytest.mark.parametrize("keys", [50176, 262144])
def test_on_the_h200_one_head_over_many_inputs_runs_in_blocks_rather_than_in_sdpa(keys):
    """Measured there: SDPA 10.0 and 50.9 ms, the chunked kernel 0.93 and 4.3 ms."""
    choice = Policy(H200).attention(gpu_call(keys=keys))
    assert choice.name == "chunked", choice.reason
    unfilled = dataclasses.replace(H200, multiprocessors=0)  # the same costs, blind to the idle multiprocessors
    assert Policy(unfilled).attention(gpu_call(keys=keys)).name == "sdpa"


def test_on_the_h200_attention_that_fills_the_gpu_stays_in_sdpa():
    assert Policy(H200).attention(gpu_call(bh=64, keys=512, d=128, dv=128)).name == "sdpa"  # latents at batch 8


def test_a_gpu_takes_larger_blocks_of_the_map():
    """The vision model's cross-attention map (512 x 50,176 scores) is one block on a GPU, 7 on the CPU."""
    on_cpu = dataclasses.replace(gpu_call(), device="cpu")
    assert KERNELS["materialized"].refuses(on_cpu) and KERNELS["materialized"].refuses(gpu_call()) is None
    assert KERNELS["chunked"].refuses(dataclasses.replace(on_cpu, grad=True))
    assert KERNELS["chunked"].refuses(gpu_call(grad=True)) is None


def test_materialized_is_refused_where_its_map_would_outweigh_q_k_and_v():
    big = call("bf16", True, **VISION_LATENTS)  # (B·H, O, M) 8·512·512 probabilities, q, k, v 8·512·(128 + 256)
    assert "probabilities" in KERNELS["materialized"].refuses(big)
    assert KERNELS["materialized"].refuses(call("bf16", False, **VISION_LATENTS)) is None
    small = dict(bh=8, queries=64, keys=64, d=32, dv=32, mask="none")  # 8·64·64 probabilities, q, k, v 8·64·96
    assert KERNELS["materialized"].refuses(call("bf16", True, **small)) is None
    cross = call("bf16", False, **VISION_CROSS)  # 512·50,176 scores: more than a chunked block, which bounds memory
    assert "maps of at most 4,194,304 scores" in KERNELS["materialized"].refuses(cross)
    assert KERNELS["materialized"].refuses(call("bf16", True, **VISION_CROSS)) is None
    assert Policy(FAST_BF16).attention(cross).name == "chunked"


def test_chunked_trains_only_maps_of_at_most_one_block_per_head():
    """Beyond a block per head its backward sums k and v gradients over row blocks (3x materialized's time)."""
    assert "per head" in KERNELS["chunked"].refuses(call("bf16", True, **VISION_CROSS))
    assert KERNELS["chunked"].refuses(call("bf16", False, **VISION_CROSS)) is None
    assert KERNELS["chunked"].refuses(call("bf16", True, **LANGUAGE_LATENTS)) is None


def test_linear_units_follow_the_gemm_rates():
    cpu = torch.device("cpu")
    assert Policy(SLOW_BF16).linear(cpu).name == "fp32"
    assert Policy(FAST_BF16).linear(cpu).name == "bf16"
    assert Policy().linear(cpu).name == "bf16"
    assert Policy(SLOW_BF16).linear(torch.device("meta")).name == "bf16"
    assert Policy(FAST_BF16, linear_units="fp32").linear(cpu) == policy_module.Choice("fp32", "forced by the override")


def test_an_override_forces_a_kernel_where_it_can_serve():
    forced = Policy(FAST_BF16, attention_kernel="sdpa")
    assert forced.attention(call("bf16", **VISION_LATENTS)).name == "sdpa"
    choice = Policy(FAST_BF16, attention_kernel="chunked").attention(call("bf16", dropout=True, **VISION_LATENTS))
    assert choice.name == "materialized" and "the override 'chunked' cannot serve it: no dropout" in choice.reason
    with pytest.raises(ValueError, match=r"unknown attention kernel 'flash'; expected one of \['chunked'"):
        Policy(attention_kernel="flash")


def test_the_environment_sets_overrides_and_can_turn_calibration_off(monkeypatch):
    monkeypatch.setenv("OMNIPERCEIVER_CALIBRATION", "off")
    monkeypatch.setenv("OMNIPERCEIVER_ATTENTION", "materialized")
    monkeypatch.setenv("OMNIPERCEIVER_LINEAR_UNITS", "fp32")
    policy = policy_module.policy_from_environment(torch.device("cpu"))
    assert policy.table is None and policy.attention_kernel == "materialized" and policy.linear_units == "fp32"
    monkeypatch.setenv("OMNIPERCEIVER_CALIBRATION", "sometimes")
    with pytest.raises(ValueError, match="OMNIPERCEIVER_CALIBRATION must be 'auto' or 'off', got 'sometimes'"):
        policy_module.policy_from_environment(torch.device("cpu"))


def test_the_same_table_gives_the_same_choices_after_a_round_trip_through_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    kind = policy_module.device_kind(torch.device("cpu"))
    table = CostTable(kind, torch.__version__, FAST_BF16.gemm_gflops, FAST_BF16.attention, multiprocessors=7)
    path = policy_module.save_table(table)
    assert path.parent == tmp_path / "omniperceiver" and [p.name for p in path.parent.iterdir()] == [path.name]
    loaded = policy_module.load_table(kind)
    assert loaded == table
    calls = [call(dtype, grad, **shape) for dtype in ("fp32", "bf16") for grad in (False, True)
             for shape in (VISION_LATENTS, VISION_CROSS, LANGUAGE_LATENTS)]  # fmt: skip
    assert [Policy(loaded).attention(c) for c in calls] == [Policy(table).attention(c) for c in calls]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "Expecting property name"),
        ('{"version": VERSION, "device_kind": "KIND", "torch_version": "TORCH", "gemm_gflops": {"fp32": -1},'
         ' "attention": {}}', r"gemm_gflops.fp32 must be a finite number >= 0, got -1"),
        ('{"version": VERSION, "device_kind": "KIND", "torch_version": "TORCH", "gemm_gflops": {},'
         ' "attention": {"__import__(\'os\')/bf16/fwd": [0, 0, 0]}}', "attention: bad key"),
        ('{"version": VERSION, "device_kind": "other", "torch_version": "TORCH", "gemm_gflops": {}, "attention": {}}',
         "it is for other"),
        ('["version", VERSION]', f"expected an object with version {policy_module.TABLE_VERSION}"),
        ('{"version": VERSION, "device_kind": "KIND", "torch_version": "TORCH", "gemm_gflops": {}, "attention": {},'
         ' "floors": {"sdpa/bf16/both": [0, 0, 0]}}', "floors: bad key 'sdpa/bf16/both'"),
        ('{"version": VERSION, "device_kind": "KIND", "torch_version": "TORCH", "gemm_gflops": [],'
         ' "attention": {}}', r"gemm_gflops must be an object, got \[\]"),
        ('{"version": VERSION, "device_kind": "KIND", "torch_version": "TORCH", "gemm_gflops": {}, "attention": {},'
         ' "multiprocessors": -132}', "multiprocessors must be an integer >= 0, got -132"),
    ],
)  # fmt: skip
def test_a_bad_cache_file_is_ignored_with_one_line(monkeypatch, tmp_path, content, message):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    kind = policy_module.device_kind(torch.device("cpu"))
    path = policy_module.cache_path(kind)
    path.parent.mkdir(parents=True)
    path.write_text(
        content.replace("KIND", kind)
        .replace("TORCH", torch.__version__)
        .replace("VERSION", str(policy_module.TABLE_VERSION))
    )
    with pytest.warns(UserWarning, match=message) as warned:
        assert policy_module.load_table(kind) is None
    assert str(path) in str(warned[0].message) and "\n" not in str(warned[0].message)


def test_an_older_releases_cache_file_is_measured_again_without_a_warning(monkeypatch, tmp_path, recwarn):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    kind = policy_module.device_kind(torch.device("cpu"))
    path = policy_module.cache_path(kind)
    path.parent.mkdir(parents=True)
    old = {
        **SLOW_BF16.to_json(),
        "version": policy_module.TABLE_VERSION - 1,
        "device_kind": kind,
        "torch_version": torch.__version__,
    }
    path.write_text(json.dumps(old))
    assert policy_module.load_table(kind) is None and not recwarn.list


def _rank_policy(rank: int, init: str, caches: list[str], results: str) -> None:
    """One rank of test_rank_0_decides_for_every_rank: its own cache folder, its policy's GEMM rates written out."""
    import os

    os.environ.update(XDG_CACHE_HOME=caches[rank], OMNIPERCEIVER_CALIBRATION="auto")
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        table = policy_module.policy_from_environment(torch.device("cpu")).table
    finally:
        torch.distributed.destroy_process_group()
    with open(f"{results}/{rank}.json", "w") as file:
        json.dump(table.gemm_gflops, file)


def test_rank_0_decides_for_every_rank(monkeypatch, tmp_path):
    """Rank 0 reads its cached table and broadcasts it; rank 1, whose cache folder is empty, takes it (and
    neither calibrates: rank 1 would time its own kernels without the broadcast)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "rank0"))
    kind = policy_module.device_kind(torch.device("cpu"))
    policy_module.save_table(CostTable(kind, torch.__version__, SLOW_BF16.gemm_gflops, SLOW_BF16.attention))
    caches = [str(tmp_path / "rank0"), str(tmp_path / "rank1")]
    init = f"file://{tmp_path / 'rendezvous'}"
    torch.multiprocessing.spawn(_rank_policy, args=(init, caches, str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        assert json.loads((tmp_path / f"{rank}.json").read_text()) == SLOW_BF16.gemm_gflops
    assert not (tmp_path / "rank1").exists()


def test_the_cost_model_fit_recovers_its_coefficients():
    truth = (30e-6, 1 / 400, 2e-3, 0.0)
    calls = [call(bh=b, queries=o, keys=m, d=d, dv=dv) for b, o, m, d, dv in ((8, 64, 64, 32, 32),
             (8, 128, 128, 128, 128), (8, 128, 128, 32, 160), (1, 128, 1024, 256, 256))]  # fmt: skip
    points = [(c, c.seconds(truth)) for c in calls]
    for fitted, want in zip(_fit(points), truth, strict=True):
        assert math.isclose(fitted, want, rel_tol=1e-6, abs_tol=1e-12)
    assert _fits(points, _fit(points))
    # the chunked kernel's calls with maps beyond a block read k and v again: that term is fitted too
    chunked = KERNELS["chunked"].runs_as
    rereading = [*calls, *(chunked(call(bh=1, queries=o, keys=m, d=64, dv=64), 0) for o, m in ((4096, 2048),
                 (512, 65536), (256, 262144)))]  # fmt: skip
    assert [c.reread_mvalues > 0 for c in rereading] == [False] * 4 + [True] * 3
    with_rereads = (*truth[:3], 1e-4)
    for fitted, want in zip(_fit([(c, c.seconds(with_rereads)) for c in rereading]), with_rereads, strict=True):
        assert math.isclose(fitted, want, rel_tol=1e-6)
    no_overhead = [(c, c.seconds(truth) - truth[0] - 1e-6) for c in calls]
    assert min(_fit(no_overhead)) >= 0  # a negative term is dropped, not kept
    noisy = [(c, seconds * (3 if i == 1 else 1)) for i, (c, seconds) in enumerate(points)]
    assert not _fits(noisy, _fit(noisy))  # one run 3x slower (another process on the cores): no model of this kernel
    floor = CostTable("cpu", "test", {}, {}, floors={"chunked/bf16/fwd": _floor(noisy, _fit(noisy))})
    predicted = [floor.cost("chunked", c, floor=True) for c, _ in noisy]
    assert all(p <= s * (1 + 1e-9) for p, (_, s) in zip(predicted, noisy, strict=True))  # never above a measurement
    assert any(math.isclose(p, s) for p, (_, s) in zip(predicted, noisy, strict=True))  # and as high as it can be
    assert floor.cost("chunked", noisy[0][0]) is None  # (a floor only where asked for)


def materialized(q, k, v, mask=None):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


MASKS = {
    "none": lambda: None,
    "key padding": lambda: key_padding_mask(torch.arange(12) < torch.tensor([[12], [5], [0]]), 3, 12),
    "causal": lambda: causal_mask(10, 12),
}


@pytest.mark.parametrize("mask_kind", list(MASKS))
@pytest.mark.parametrize("widths", [(8, 8), (4, 12)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_every_kernel_equals_materialized_attention(kernel, dtype, widths, mask_kind, single_thread):
    """Values and gradients through ``attend`` with the kernel forced, against materialized attention in fp64
    (bf16: of the bf16 values, to bf16's precision); a fully masked example gives zeros."""
    torch.manual_seed(0)
    d, dv = widths
    q, k, v = (torch.randn(3, 2, n, w, dtype=dtype, requires_grad=True) for n, w in ((10, d), (12, d), (12, dv)))
    mask = MASKS[mask_kind]()
    policy = Policy(attention_kernel=kernel)
    with use_policy(policy), policy.record() as calls:
        out, _ = attend(q, k, v, mask=mask)
    served = policy.attention(calls[0]).name == kernel
    if not served:
        assert KERNELS[kernel].refuses(calls[0]) is not None
        pytest.skip(f"{kernel} cannot serve this call: {KERNELS[kernel].refuses(calls[0])}")
    wide = [t.detach().double().requires_grad_() for t in (q, k, v)]
    visible = None if mask is None else mask.any(-1, keepdim=True)
    expected = materialized(*wide, None if mask is None else mask | ~visible)
    if visible is not None:
        expected = expected * visible
    tolerance = dict(atol=1e-12, rtol=1e-10) if dtype == torch.float64 else dict(atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(out.double(), expected, **tolerance)
    grad_out = torch.randn_like(expected)
    grads = torch.autograd.grad(out, (q, k, v), grad_out.to(dtype))
    for grad, want in zip(grads, torch.autograd.grad(expected, wide, grad_out), strict=True):
        assert grad.dtype == dtype
        torch.testing.assert_close(
            grad.double(), want, **(tolerance if dtype == torch.float64 else dict(atol=5e-2, rtol=5e-2))
        )


def test_info_lists_the_policy_of_each_attention(capsys, monkeypatch, tmp_path):
    from omniperceiver import zoo
    from omniperceiver.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    zoo.create("language-perceiver", reduced=True).save_pretrained(tmp_path / "model")
    assert main(["info", str(tmp_path / "model"), "--compute"]) == 0
    out = capsys.readouterr().out
    assert "compute policy: the default policy (no cost table)" in out
    assert "  encoder.cross_attentions.0.attention: BH=4 O=16 M=48 d=8 dv=16 mask=none\n" in out
    assert "    bf16 train  chunked       the default (no cost table)\n" in out
    kind = policy_module.device_kind(torch.device("cpu"))
    policy_module.save_table(CostTable(kind, torch.__version__, SLOW_BF16.gemm_gflops, SLOW_BF16.attention))
    monkeypatch.setenv("OMNIPERCEIVER_CALIBRATION", "auto")
    assert main(["info", str(tmp_path / "model"), "--compute"]) == 0
    out = capsys.readouterr().out
    assert "cost table of cpu:" in out and "Linear under bf16 autocast: fp32 units" in out
    assert "    bf16 train  " in out and "  cheapest by the cost table: " in out


def test_a_model_config_forces_the_kernel_of_every_attention(single_thread):
    import dataclasses

    from omniperceiver import PerceiverIOConfig, zoo

    model = zoo.create("vision-perceiver-fourier", reduced=True).eval()
    config = dataclasses.replace(model.config, attention_kernel="materialized")
    assert PerceiverIOConfig.from_json(config.to_json()) == config
    forced = config.build().eval()
    forced.load_state_dict(model.state_dict())
    policy = Policy(FAST_BF16, attention_kernel="sdpa")  # the environment's override yields to the config's
    images = torch.randn(1, 3, 16, 16)

    def operators(model):
        with use_policy(policy), torch.no_grad(), torch.profiler.profile() as profile:
            out = model(images)
        return {event.key for event in profile.key_averages()}, out

    ran, out = operators(forced)
    assert "aten::_softmax" in ran and "aten::_scaled_dot_product_flash_attention_for_cpu" not in ran
    ran, expected = operators(model)
    assert "aten::_softmax" not in ran and "aten::_scaled_dot_product_flash_attention_for_cpu" in ran
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"attention_kernel.*'flash'.*one of \['chunked'"):
        dataclasses.replace(model.config, attention_kernel="flash")


def test_the_command_prints_a_bad_cache_file_as_one_line(tmp_path):
    """Through the real command: the warning is its own line, without Python's file:line prefix."""
    import os
    import subprocess
    import sys

    from omniperceiver import zoo

    zoo.create("language-perceiver", reduced=True).save_pretrained(tmp_path / "model")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "OMNIPERCEIVER_CALIBRATION": "auto"}
    code = "import torch; from omniperceiver.core.kernels import policy as p; torch.set_num_threads(1); "
    code += "path = p.cache_path(p.device_kind(torch.device('cpu'))); path.parent.mkdir(parents=True); "
    code += "path.write_text('{not json'); print(path)"
    command = [sys.executable, "-c", code]
    path = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout.strip()
    command = [sys.executable, "-m", "omniperceiver.cli", "info", str(tmp_path / "model"), "--compute"]
    done = subprocess.run(command, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"omniperceiver: ignoring the compute cache {path}: ")
    assert len(done.stderr.splitlines()) == 1 and "Warning" not in done.stderr
